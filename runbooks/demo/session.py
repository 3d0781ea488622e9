"""One demo session: the embedded engines, LangSmith's shape on them, an incident, the target reading them.

`lsready demo`, the benchmarks and the test suite all get their engines here. Each engine starts
the first time it is asked for, unless its URL was given: an external server, or for ClickHouse
a chdb data path this process already opened (chdb opens one data path per process for the life
of the process, so tests share one path and isolate by database). `stop` ends what the session
started, and only that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from checks.config import Config, validate
from runbooks.demo.cluster import NS, RELEASE, chart_defaults, write_snapshot
from runbooks.demo.engines import PostgresServer, RedisServer, chdb_url
from runbooks.demo.scenarios import Scenario, Stage, play
from runbooks.demo.schema import build_clickhouse, build_postgres, build_redis

KEEP_ENV = "LSREADY_KEEP_DEMO"  # set: the session's directory is left on disk, for a look after


class DemoSession:
    """Redis, PostgreSQL and ClickHouse for `lsready demo`, the benchmarks and the tests."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        redis_url: str | None = None,
        postgres_url: str | None = None,
        clickhouse_url: str | None = None,
        database: str = "default",
    ) -> None:
        # Short path: a Unix socket path must stay under ~100 characters.
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="lsready-")) if root is None else root
        self._given = {"redis": redis_url, "postgres": postgres_url, "clickhouse": clickhouse_url}
        self.database = database  # the ClickHouse database it shapes, plays in and points the target at
        self._servers: dict[str, RedisServer | PostgresServer] = {}
        self._admin: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> DemoSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the engines, each started on first use ----------------------------------------------------

    @property
    def redis_url(self) -> str:
        """The given Redis URL, else that of a redis-server on loopback started now."""
        return self._server_url("redis", lambda: RedisServer(self._dir("redis")).start())

    @property
    def postgres_url(self) -> str:
        """The given PostgreSQL URL, else that of a pgserver on a Unix socket started now."""
        return self._server_url("postgres", lambda: PostgresServer(self._dir("pg")).start())

    def _server_url(self, name: str, start: Callable[[], RedisServer | PostgresServer]) -> str:
        with self._lock:
            given = self._given[name]
            if given:
                return given
            if name not in self._servers:
                self._servers[name] = start()
            return self._servers[name].url

    @property
    def clickhouse_url(self) -> str:
        """The given ClickHouse URL, else chdb on this session's path (opened on first connect)."""
        return self._given["clickhouse"] or chdb_url(self.clickhouse_dir)

    @property
    def clickhouse_dir(self) -> Path:
        """The chdb data path of this session's own ClickHouse (for a process that opens it instead)."""
        return self._dir("ch")

    def database_url(self, database: str) -> str:
        """The ClickHouse URL with `database` as the default database."""
        base = self.clickhouse_url
        if base.startswith("chdb://"):
            return f"{base.split('?')[0]}?database={database}"
        return base.rsplit("/", 1)[0] + f"/{database}"

    def clickhouse_client(self, database: str | None = None) -> Any:
        import clickhouse_connect

        url = self.clickhouse_url if database is None else self.database_url(database)
        return clickhouse_connect.get_client(dsn=url)

    @property
    def admin(self) -> Any:
        """One ClickHouse client kept for setting things up (schema, scenarios), from one thread at a time."""
        with self._lock:
            if self._admin is None:
                self._admin = self.clickhouse_client()
            return self._admin

    @property
    def pids(self) -> list[int]:
        """The processes this session started and has not stopped (the chdb engine runs in this one)."""
        return [pid for server in self._servers.values() if (pid := server.pid) is not None]

    def stop(self) -> None:
        """Stop the engines this session started; remove its directory if it made it."""
        with self._lock, contextlib.ExitStack() as stopping:  # each is stopped even if another fails to
            while self._servers:
                stopping.callback(self._servers.popitem()[1].stop)
        if self._own_root and os.environ.get(KEEP_ENV) is None:
            shutil.rmtree(self.root, ignore_errors=True)

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- LangSmith's shape, and incidents ----------------------------------------------------------

    def shape(self, *, redis: bool = True, postgres: bool = True, clickhouse: bool = True) -> None:
        """Give the engines LangSmith's tables and queue keys, with a few jobs waiting and recent runs.

        Leave `clickhouse` out when another process opens this session's chdb path.
        """
        import redis as redis_lib

        if redis:
            with contextlib.closing(redis_lib.Redis.from_url(self.redis_url)) as r:
                build_redis(r)
        if postgres:
            build_postgres(self.postgres_url)
        if clickhouse:
            build_clickhouse(self.admin, self.database)

    def stage(self, database: str | None = None, redis: Any = None) -> Stage:
        """Where a scenario plays: `database` (else the session's) and `redis` (else a client of its own)."""
        import redis as redis_lib

        db = database or self.database
        client = redis if redis is not None else redis_lib.Redis.from_url(self.redis_url)
        return Stage(self.admin, db, client, lambda: self.clickhouse_client(db))

    @contextlib.contextmanager
    def play(self, name: str, stage: Stage | None = None) -> Iterator[Scenario]:
        """Create the incident `name` on `stage` (else the session's own); it runs until the block ends."""
        own = stage is None
        stage = stage or self.stage()
        try:
            with play(name, stage) as scenario:
                yield scenario
        finally:
            if own:
                stage.redis.close()

    # -- the target ------------------------------------------------------------------------------

    def target(self, *, postgres: bool = True, cluster: bool = True) -> dict[str, Any]:
        """A target reading these engines; with `cluster`, a snapshot of a chart-defaults install."""
        target: dict[str, Any] = {"redis": {"url": self.redis_url}}
        if postgres:
            target["postgres"] = {"url": self.postgres_url}
        default = self.database == "default"
        target["clickhouse"] = {"url": self.clickhouse_url if default else self.database_url(self.database)}
        if cluster:
            snapshot = write_snapshot(chart_defaults(), self.root / "k8s")
            target["kubernetes"] = {"namespace": NS, "release": RELEASE, "snapshot_dir": str(snapshot)}
            # There is no cluster DNS to reach LangSmith's own queue endpoints through: reading them
            # would only ever say they did not answer.
            target["queue_endpoints"] = {"enabled": False}
        return target

    def config(self, thresholds: dict[str, Any] | None = None, **target: Any) -> Config:
        """A config whose one target, `demo`, reads these engines (`target` as for `target()`)."""
        raw: dict[str, Any] = {"default_target": "demo", "targets": {"demo": self.target(**target)}}
        if thresholds:
            raw["thresholds"] = thresholds
        return validate(raw, "demo")
