"""Connections to one target's backends, opened lazily, shared by its probes, bounded by timeouts.

Every probe receives a `Clients`; it never opens connections itself. A backend that fails to
connect fails once: the error is remembered and every later probe of that backend gets it at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from checks.config import ClickHouseConfig, PostgresConfig, RedisConfig, TargetConfig
from checks.errors import NotConfigured

T = TypeVar("T")


class _Lazy(Generic[T]):
    """Builds a value once on first use; a failure is remembered and raised again."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._build()
                except Exception as exc:
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        return self._value if self._done else None


class PostgresSession:
    """One shared connection; every query runs in a read-only transaction with a statement timeout."""

    def __init__(self, cfg: PostgresConfig, timeout_s: float) -> None:
        import psycopg

        self.timeout_ms = int(timeout_s * 1000)
        self._lock = threading.Lock()
        self.conn = psycopg.connect(
            cfg.url,
            connect_timeout=max(1, int(timeout_s)),
            autocommit=False,
            application_name="lsready",
            # Bounds a server that accepted the connection and then went silent.
            tcp_user_timeout=int(timeout_s * 1000),
            keepalives=1,
            keepalives_idle=max(1, int(timeout_s)),
        )
        self.conn.read_only = True

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._lock, self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SET LOCAL statement_timeout = {self.timeout_ms}")
            cur.execute(sql, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        # A probe still waiting on a hung server holds the lock; leave that connection to exit.
        if self._lock.acquire(timeout=0.1):
            try:
                self.conn.close()
            finally:
                self._lock.release()


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
        parts = urlsplit(cfg.url)
        if parts.scheme == "chdb":
            self.client = _chdb_client(parts.path)
            self.embedded = True
        else:
            import clickhouse_connect

            secure = parts.scheme == "https"
            self.client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if secure else 8123),
                username=unquote(parts.username) if parts.username else "default",
                password=unquote(parts.password) if parts.password else "",
                database=self.database,
                secure=secure,
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


class Clients:
    """The backends of one target; probes ask for what they need."""

    def __init__(self, target_name: str, target: TargetConfig, timeout_s: float = 5.0) -> None:
        self.target_name = target_name
        self.target = target
        self.timeout_s = timeout_s
        self._redis = _Lazy(lambda: _redis(self._need("redis"), timeout_s))
        self._postgres = _Lazy(lambda: PostgresSession(self._need("postgres"), timeout_s))
        self._clickhouse = _Lazy(lambda: ClickHouseSession(self._need("clickhouse"), timeout_s))
        self._cluster = _Lazy(lambda: _cluster(self._need("kubernetes"), timeout_s))
        self._blob = _Lazy(lambda: _blob(self._need("blob"), timeout_s))

    def _need(self, backend: str) -> Any:
        section = getattr(self.target, backend)
        if section is None:
            raise NotConfigured(backend, self.target_name)
        return section

    def has(self, backend: str) -> bool:
        return getattr(self.target, backend, None) is not None

    @property
    def redis(self) -> Any:
        return self._redis.get()

    @property
    def postgres(self) -> PostgresSession:
        return self._postgres.get()

    @property
    def clickhouse(self) -> ClickHouseSession:
        return self._clickhouse.get()

    @property
    def cluster(self) -> Any:
        """Kubernetes objects of the target: live API (kubeconfig or in-cluster) or a snapshot dir."""
        return self._cluster.get()

    @property
    def blob(self) -> Any:
        """The object store client for the target's bucket."""
        return self._blob.get()

    def close(self) -> None:
        """Close what was opened; the embedded ClickHouse engine stays open for the process."""
        for opened in (self._postgres.peek(), self._redis.peek()):
            if opened is not None:
                with contextlib.suppress(Exception):
                    opened.close()
