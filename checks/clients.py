"""Connections to one target's backends, opened lazily, shared by its probes, bounded by timeouts.

Every probe receives a `Clients`; it never opens connections itself. A backend that fails to
connect fails once: the reason is remembered and every later probe of that backend gets it at once,
each as a fresh `BackendUnavailable`.

Probes run on `ProbeThread`s. One still running when its run ends (the runner reported it
`unknown` and moved on) is a leftover, counted per backend for the whole process: once
MAX_LEFTOVER_PROBES leftovers still wait on a backend, later runs start no more probes against it.
The bot runs for months; a hung backend must not collect threads and connections run after run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from checks.backends import BackendUnavailable, describe, waiting_for
from checks.config import RedisConfig, TargetConfig, Timeouts
from checks.errors import NotConfigured
from checks.sessions import ClickHouseSession, PostgresSession

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_LEFTOVER_PROBES = 8  # per backend, process-wide: probe threads that outlived their run
DEFAULT_TIMEOUT_S = Timeouts().probe_s  # a Clients built without one times out as a default config
# A probe that waits on reads of its own (one per store, one per endpoint) stops waiting at this
# share of its timeout, never under MIN_INNER_S, so it can still say which read did not answer
# before the runner gives up on the probe.
INNER_SHARE = 0.8
MIN_INNER_S = 0.5


# --- Probe threads that outlive their run -------------------------------------------------------


class ProbeThread(threading.Thread):
    """A thread that runs one probe; if it is still running when its run ends it is a leftover."""


_LEFTOVERS: dict[str, set[threading.Thread]] = {}
_LEFTOVERS_LOCK = threading.Lock()


def leftover_probes(key: str) -> int:
    """Probe threads of earlier runs still running that used the backend with identity `key`."""
    with _LEFTOVERS_LOCK:
        return len(_live_leftovers(key))


def _live_leftovers(key: str) -> set[threading.Thread]:
    live = {t for t in _LEFTOVERS.get(key, ()) if t.is_alive()}
    if live:
        _LEFTOVERS[key] = live
    else:
        _LEFTOVERS.pop(key, None)
    return live


def _mask(url: str) -> str:
    from checks.secrets import mask_url

    return mask_url(url)


# --- Lazily built clients ------------------------------------------------------------------------


class _Lazy(Generic[T]):
    """Builds a value once on first use; a failure is remembered and raised again, fresh each time."""

    def __init__(
        self, build: Callable[[], T], what: str = "the client to open", backend: str | None = None
    ) -> None:
        self._build = build
        self._what = what
        self._backend = backend
        self._lock = threading.Lock()
        self._value: T | None = None
        self._reason: str | None = None
        self._done = False

    def get(self) -> T:
        if not self._lock.acquire(blocking=False):
            with waiting_for(self._what):  # another probe is building it
                self._lock.acquire()
        try:
            if not self._done:
                try:
                    with waiting_for(self._what):
                        self._value = self._build()
                except Exception as exc:
                    log.debug("building a client failed", exc_info=True)
                    self._reason = describe(exc)
                self._done = True
        finally:
            self._lock.release()
        if self._reason is not None:
            # A new exception per caller: one instance raised in many threads grows a shared traceback.
            raise BackendUnavailable(self._reason, self._backend) from None
        return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        return self._value if self._done else None


# --- The others ----------------------------------------------------------------------------------


def _redis(cfg: RedisConfig, timeout_s: float) -> Any:
    import redis

    return redis.Redis.from_url(
        cfg.url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        decode_responses=True,
        client_name="lsready",
    )


def _cluster(cfg: Any, timeout_s: float) -> Any:
    from checks.cluster_api import open_cluster

    return open_cluster(cfg, timeout_s)


def _blob(cfg: Any, timeout_s: float) -> Any:
    from checks.objectstore import open_objectstore

    return open_objectstore(cfg, timeout_s)


def _identity(backend: str, section: Any) -> str:
    """Which server a backend section points at, for counting leftovers across runs (never shown)."""
    if backend == "kubernetes":
        where = section.snapshot_dir or ("in-cluster" if section.in_cluster else section.kubeconfig or "~")
        return f"kubernetes {where} {section.context or ''}".strip()
    if backend == "blob":
        return f"blob {section.endpoint_url or 's3'} {section.bucket}"
    return f"{backend} {_mask(section.url)}"


_WHAT = {
    "redis": "the Redis client to open",
    "postgres": "PostgreSQL to accept lsready's connections",
    "clickhouse": "the ClickHouse client to open",
    "kubernetes": "the Kubernetes credentials to load (a kubeconfig exec plugin or auth provider may hang)",
    "blob": "the object store client to open",
}


class Clients:
    """The backends of one target; probes ask for what they need."""

    def __init__(self, target_name: str, target: TargetConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.target_name = target_name
        self.target = target
        self.timeout_s = timeout_s  # the probe timeout: every socket's, and the runner's wait
        self._lazy: dict[str, _Lazy[Any]] = {
            "redis": _Lazy(lambda: _redis(self._need("redis"), timeout_s), _WHAT["redis"], "redis"),
            "postgres": _Lazy(
                lambda: PostgresSession(self._need("postgres"), timeout_s), _WHAT["postgres"], "postgres"
            ),
            "clickhouse": _Lazy(
                lambda: ClickHouseSession(self._need("clickhouse"), timeout_s),
                _WHAT["clickhouse"],
                "clickhouse",
            ),
            "kubernetes": _Lazy(
                lambda: _cluster(self._need("kubernetes"), timeout_s), _WHAT["kubernetes"], "kubernetes"
            ),
            "blob": _Lazy(lambda: _blob(self._need("blob"), timeout_s), _WHAT["blob"], "blob"),
        }
        self._users: dict[str, set[threading.Thread]] = {}  # backend -> probe threads that used it

    @property
    def inner_timeout_s(self) -> float:
        """How long a probe may wait on reads of its own: its timeout less a margin to report them."""
        return max(MIN_INNER_S, self.timeout_s * INNER_SHARE)

    def _need(self, backend: str) -> Any:
        section = getattr(self.target, backend)
        if section is None:
            raise NotConfigured(backend, self.target_name)
        return section

    def has(self, backend: str) -> bool:
        return getattr(self.target, backend, None) is not None

    def _get(self, backend: str) -> Any:
        section = self._need(backend)
        me = threading.current_thread()
        if isinstance(me, ProbeThread):
            key = _identity(backend, section)
            with _LEFTOVERS_LOCK:
                users = self._users.setdefault(backend, set())
                if me not in users:
                    stuck = len(_live_leftovers(key))
                    if stuck >= MAX_LEFTOVER_PROBES:
                        raise BackendUnavailable(
                            f"a previous probe of {backend} is still waiting on it ({stuck} from earlier "
                            "runs); not starting another",
                            backend,
                        )
                    users.add(me)
        return self._lazy[backend].get()

    @property
    def redis(self) -> Any:
        return self._get("redis")

    @property
    def postgres(self) -> PostgresSession:
        return self._get("postgres")  # type: ignore[no-any-return]

    @property
    def clickhouse(self) -> ClickHouseSession:
        return self._get("clickhouse")  # type: ignore[no-any-return]

    @property
    def cluster(self) -> Any:
        """Kubernetes objects of the target: live API (kubeconfig or in-cluster) or a snapshot dir."""
        return self._get("kubernetes")

    @property
    def blob(self) -> Any:
        """The object store client for the target's bucket."""
        return self._get("blob")

    def close(self) -> None:
        """Close every client opened; probes still running become leftovers of their backends.

        The embedded ClickHouse engine stays open for the process. A PostgreSQL query still running
        is cut, so its thread ends and its connection closes.
        """
        me = threading.current_thread()
        with _LEFTOVERS_LOCK:
            for backend, threads in self._users.items():
                alive = {t for t in threads if t is not me and t.is_alive()}
                if alive:
                    key = _identity(backend, self._need(backend))
                    _LEFTOVERS.setdefault(key, set()).update(alive)
            self._users.clear()
        for backend, lazy in self._lazy.items():
            opened = lazy.peek()
            if opened is None:
                continue
            try:
                if backend == "blob":
                    opened.client.close()  # the boto3 client's HTTP connections
                else:
                    opened.close()
            except Exception:
                log.debug("closing the %s client failed", backend, exc_info=True)
