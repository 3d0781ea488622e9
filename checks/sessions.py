"""Read-only PostgreSQL and ClickHouse sessions: bounded, tagged queries, every wait named."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from checks import endpoints
from checks.backends import BackendUnavailable, waiting_for
from checks.config import ClickHouseConfig, PostgresConfig

log = logging.getLogger(__name__)
POSTGRES_POOL_SIZE = 3
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
