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

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from checks import endpoints
from checks.config import ClickHouseConfig, PostgresConfig, RedisConfig, TargetConfig
from checks.errors import LsreadyError, NotConfigured

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_LEFTOVER_PROBES = 8  # per backend, process-wide: probe threads that outlived their run
POSTGRES_POOL_SIZE = 3


class BackendUnavailable(LsreadyError):
    """A backend cannot be used: its client failed to open, or earlier probes still hang on it."""

    def __init__(self, message: str, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend  # which one, when known: the run says it once (checks.reach)


def describe(exc: BaseException) -> str:
    """A short, single-line explanation of an error: our own messages as they are, others with their type."""
    if isinstance(exc, LsreadyError):
        return str(exc)
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{exc.__class__.__name__}: {text}"


# --- What a probe thread is waiting for, so a timeout can say it -------------------------------

_WAITS: dict[int, str] = {}
_WAITS_LOCK = threading.Lock()


@contextlib.contextmanager
def waiting_for(what: str) -> Iterator[None]:
    """Marks the calling thread as waiting for `what` (a noun phrase) until the block ends."""
    ident = threading.get_ident()
    with _WAITS_LOCK:
        previous = _WAITS.get(ident)
        _WAITS[ident] = what
    try:
        yield
    finally:
        with _WAITS_LOCK:
            if previous is None:
                _WAITS.pop(ident, None)
            else:
                _WAITS[ident] = previous


def waiting_on(thread: threading.Thread | None) -> str | None:
    """What `thread` is waiting for inside a client (not the server), if anything."""
    if thread is None or thread.ident is None:
        return None
    with _WAITS_LOCK:
        return _WAITS.get(thread.ident)


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


# --- PostgreSQL ----------------------------------------------------------------------------------

# How a pooler or proxy refuses startup options: PgBouncer ("unsupported startup parameter: options"),
# RDS Proxy ("doesn't support command-line options").
_OPTIONS_REFUSED = re.compile(r"(?i)startup parameter|command[- ]line option|\boptions\b")


class _PgConn:
    """One connection, and how a query runs on it."""

    def __init__(self, conn: Any, direct: bool) -> None:
        self.conn = conn
        self.direct = direct
        # Our own handle on the socket: shutting it down wakes a query a hung server never answers,
        # from another thread, without freeing libpq's connection under it.
        try:
            self._sock: socket.socket | None = socket.socket(fileno=os.dup(conn.pgconn.socket))
        except Exception:  # no socket to hold: close() then leaves a running query to its timeouts
            self._sock = None

    @property
    def round_trips(self) -> int:
        return 1 if self.direct else 4

    def run(self, sql: str, params: Any, timeout_ms: int) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        if self.direct:
            # Autocommit in a read-only session with statement_timeout set at startup: one round trip.
            with self.conn.cursor(row_factory=dict_row) as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        # BEGIN READ ONLY, SET LOCAL, the statement and COMMIT: four round trips.
        with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def reusable(self) -> bool:
        from psycopg.pq import TransactionStatus

        return not self.conn.closed and self.conn.info.transaction_status == TransactionStatus.IDLE

    def interrupt(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()


class PostgresSession:
    """A few read-only connections shared by the probes; each query takes whichever is free.

    Each connection starts with `options=-c default_transaction_read_only=on -c statement_timeout=<ms>`
    and autocommit: the session is read-only and every statement bounded by the server, and a query is
    one round trip. The first connection reads both settings back. A pooler or proxy that refuses
    startup options (PgBouncer without `ignore_startup_parameters = options`, RDS Proxy) gets a second
    attempt without them, and one that drops them silently is detected by that read: either way the
    session falls back to a read-only transaction per query with `SET LOCAL statement_timeout`
    (BEGIN, SET, the statement, COMMIT: four round trips), which is safe in any pool mode.

    Up to `pool_size` connections, opened together with the first so the probes that count sessions
    see none appear during their sample; one that breaks is replaced on demand. A probe waits at most
    the timeout for a free connection, then fails saying so.
    """

    def __init__(self, cfg: PostgresConfig, timeout_s: float, pool_size: int = POSTGRES_POOL_SIZE) -> None:
        self.timeout_s = timeout_s
        self.timeout_ms = int(timeout_s * 1000)
        self.pool_size = max(1, pool_size)
        self._url = cfg.url
        self._options: bool | None = None  # None until the first connection tells
        self._cond = threading.Condition()
        self._idle: list[_PgConn] = []
        self._busy: set[_PgConn] = set()
        self._count = 0  # open connections and those being opened
        self._limit = self.pool_size  # lowered when the server refuses another connection
        self._closed = False
        first = self._open()
        self.round_trips_per_query = first.round_trips
        with self._cond:
            self._idle.append(first)
            self._count = 1
        growers = [
            threading.Thread(target=self._grow, name="postgres-connect", daemon=True)
            for _ in range(self.pool_size - 1)
        ]
        for t in growers:
            t.start()
        until = time.monotonic() + timeout_s
        for t in growers:
            t.join(max(0.0, until - time.monotonic()))

    # -- connections --

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": max(1, int(self.timeout_s)),
            "application_name": "lsready",
            # Bounds a server that accepted the connection and then went silent.
            "tcp_user_timeout": self.timeout_ms,
            "keepalives": 1,
            "keepalives_idle": max(1, int(self.timeout_s)),
        }

    def _startup_options(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        ours = f"-c default_transaction_read_only=on -c statement_timeout={self.timeout_ms}"
        theirs = str(conninfo_to_dict(self._url).get("options") or "").strip()  # e.g. Neon's endpoint id
        return f"{theirs} {ours}" if theirs else ours

    def _open(self) -> _PgConn:
        import psycopg

        if self._options is not False:
            try:
                conn = psycopg.connect(
                    self._url, autocommit=True, options=self._startup_options(), **self._connect_kwargs()
                )
            except psycopg.OperationalError as exc:
                if self._options or not _OPTIONS_REFUSED.search(str(exc)):
                    raise
                log.info("PostgreSQL refused startup options; using a read-only transaction per query")
                self._options = False
            else:
                try:
                    applied = bool(self._options) or self._settings_applied(conn)
                    if not applied:
                        log.info("PostgreSQL ignored startup options; a read-only transaction per query")
                        conn.autocommit = False
                        conn.read_only = True
                except BaseException:
                    conn.close()
                    raise
                self._options = applied
                return _PgConn(conn, direct=applied)
        conn = psycopg.connect(self._url, autocommit=False, **self._connect_kwargs())
        conn.read_only = True
        return _PgConn(conn, direct=False)

    def _settings_applied(self, conn: Any) -> bool:
        row = conn.execute(
            "SELECT current_setting('default_transaction_read_only') AS ro,"
            " (SELECT setting FROM pg_settings WHERE name = 'statement_timeout') AS timeout_ms"
        ).fetchone()
        return row is not None and row[0] == "on" and str(row[1]) == str(self.timeout_ms)

    def _open_counted(self) -> _PgConn | None:
        """A new connection for a slot already counted; None (slot given back) when it failed."""
        try:
            conn = self._open()
        except Exception:
            with self._cond:
                self._count -= 1
                others = self._count
                if others > 0:  # e.g. too many clients: make do with the connections there are
                    self._limit = others
                self._cond.notify_all()
            if others > 0:
                log.debug("another PostgreSQL connection failed; the pool stays smaller", exc_info=True)
                return None
            raise
        with self._cond:
            if not self._closed:
                return conn
            self._count -= 1
        conn.close()
        return None

    def _grow(self) -> None:
        with self._cond:
            if self._closed or self._count >= self._limit:
                return
            self._count += 1
        conn = self._open_counted()
        if conn is not None:
            with self._cond:
                self._idle.append(conn)
                self._cond.notify()

    def _acquire(self) -> _PgConn:
        deadline = time.monotonic() + self.timeout_s
        while True:
            with self._cond:
                if not self._idle and self._count >= self._limit:
                    what = (
                        f"a free PostgreSQL connection (all {self._count} were busy with other probes' "
                        "queries: the server answers, but slowly)"
                    )
                    with waiting_for(what):
                        while not self._closed and not self._idle and self._count >= self._limit:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                raise BackendUnavailable(
                                    f"no PostgreSQL connection came free within {self.timeout_s:g} s: all "
                                    f"{self._count} were busy with other probes' queries"
                                )
                            self._cond.wait(left)
                if self._closed:
                    raise BackendUnavailable("the PostgreSQL session was closed when its run ended")
                if self._idle:
                    conn = self._idle.pop()
                    self._busy.add(conn)
                    return conn
                self._count += 1  # a slot is free: a connection broke, or one more is allowed
            new = self._open_counted()
            if new is not None:
                with self._cond:
                    self._busy.add(new)
                return new

    def _release(self, conn: _PgConn) -> None:
        with self._cond:
            self._busy.discard(conn)
            keep = not self._closed and conn.reusable()
            if keep:
                self._idle.append(conn)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            conn.close()

    # -- public --

    def backend_pids(self) -> list[int]:
        """Server process ids of the session's own connections, to leave them out of what probes count."""
        with self._cond:
            conns = [*self._idle, *self._busy]
        return [int(c.conn.info.backend_pid) for c in conns if not c.conn.closed]

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        conn = self._acquire()
        try:
            return conn.run(sql, params, self.timeout_ms)
        finally:
            self._release(conn)

    def close(self) -> None:
        """Close the idle connections; cut the queries still running, whose connections close on return."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            for conn in self._busy:
                conn.interrupt()
            self._cond.notify_all()
        for conn in idle:
            conn.close()


# --- ClickHouse ----------------------------------------------------------------------------------

_CHDB_CLIENTS: dict[str, Any] = {}
_CHDB_LOCK = threading.Lock()


def _chdb_client(path: str) -> Any:
    # The embedded engine opens one data path per process, for the life of the process.
    import clickhouse_connect

    with _CHDB_LOCK:
        if path not in _CHDB_CLIENTS:
            _CHDB_CLIENTS[path] = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        return _CHDB_CLIENTS[path]


class ClickHouseSession:
    """Read-only, time-bounded queries; each starts with `-- lsready:<probe>` for query_log."""

    READONLY_CODE = "Code: 164"

    def __init__(self, cfg: ClickHouseConfig, timeout_s: float) -> None:
        self.cfg = cfg
        self.timeout_s = timeout_s
        self.database = cfg.database
        self.cluster = cfg.cluster
        self._send_settings = True
        ep = endpoints.clickhouse(cfg.url)
        if ep.embedded_path is not None:
            self.client = _chdb_client(ep.embedded_path)
            self.embedded = True
        else:
            import clickhouse_connect

            self.client = clickhouse_connect.get_client(
                host=ep.host or "localhost",
                port=ep.port,
                username=ep.user,
                password=ep.password,
                database=self.database,
                secure=ep.tls,
                connect_timeout=timeout_s,
                send_receive_timeout=timeout_s,
                autogenerate_session_id=False,
            )
            self.embedded = False

    def query(self, probe: str, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        text = f"-- lsready:{probe}\n{sql}"
        # log_comment also marks the secondary queries a clusterAllReplicas read starts on replicas.
        settings = {
            "readonly": 2,
            "max_execution_time": max(1, int(self.timeout_s)),
            "log_comment": f"lsready:{probe}",
        }
        try:
            result = self.client.query(
                text, parameters=parameters, settings=settings if self._send_settings else None
            )
        except Exception as exc:
            # A user whose profile is readonly=1 may not change settings; it is read-only already.
            if self._send_settings and self.READONLY_CODE in str(exc):
                self._send_settings = False
                result = self.client.query(text, parameters=parameters)
            else:
                raise
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        """Close the HTTP client; the embedded engine is shared by the process and stays open."""
        if not self.embedded:
            self.client.close()


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
    from checks.cluster import open_cluster

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

    def __init__(self, target_name: str, target: TargetConfig, timeout_s: float = 5.0) -> None:
        self.target_name = target_name
        self.target = target
        self.timeout_s = timeout_s
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
