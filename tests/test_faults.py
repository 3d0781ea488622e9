"""Fault injection: backends killed, black-holed, babbling or restarted; a store that cannot be written.

Every fault must end as `unknown` or a clear one-line message within the timeouts, the process
must keep serving afterwards (the bot still acks the next signed request), and no acknowledgement
may be lost. Loopback only; each test bounds its own time and count. Time bounds here are
correctness bounds (a hang would blow through them), not benchmarks: those live in bench/.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from slack_fake import BotHarness
from waiting import wait_until

from bot.cli import cli
from checks.engine import check
from checks.model import Kind, Status
from conftest import make_config
from runbooks import measure
from runbooks.demo.engines import RedisServer
from runbooks.demo.schema import build_redis
from runbooks.model import DiagnosisKind
from runbooks.triage import triage

NOBODY = 65534


# --- Misbehaving servers ---------------------------------------------------------------------


class Garbage:
    """A TCP server that answers every read with random bytes, forever."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._babble, args=(conn,), daemon=True).start()

    def _babble(self, conn: socket.socket) -> None:
        rng = random.Random(conn.fileno())
        with conn:
            conn.settimeout(0.5)
            while not self._stop.is_set():
                try:
                    conn.sendall(rng.randbytes(256))
                    conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class NotClickHouse(BaseHTTPRequestHandler):
    """HTTP 200 with a web page for every request: a proxy or an ingress in front of the wrong thing."""

    def _page(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def garbage() -> Iterator[Garbage]:
    server = Garbage()
    yield server
    server.close()


@pytest.fixture
def not_clickhouse() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotClickHouse)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/default"
    server.shutdown()
    server.server_close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be killed and restarted (on the same port)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process is not None:
        server.process.kill()
        server.process.wait(5)


def _unknown_of(report: Any, backend: str) -> list[Any]:
    """Items probed through `backend` that are not unknown (a manual item stays manual): should be none."""
    return [
        r
        for r in _probed(report, backend)
        if r.status is not (Status.MANUAL if r.item.kind is Kind.MANUAL else Status.UNKNOWN)
    ]


def _probed(report: Any, backend: str) -> list[Any]:
    return [r for r in report.results if (r.item.probe or "").startswith(backend + ".")]


def _connections_to(port: int) -> int:
    """Established TCP connections to `port` on 127.0.0.1 (the kernel completes them for a stopped server)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                remote, state = row.split()[2:4]
                found += state == "01" and int(remote.rsplit(":", 1)[1], 16) == port
    return found


# --- Backends --------------------------------------------------------------------------------


def test_redis_killed_mid_check_makes_its_items_unknown_and_the_rest_answer(
    own_redis, postgres_url, clickhouse
):
    ch_url, admin, db = clickhouse
    admin.command(f"CREATE TABLE `{db}`.schema_migrations (version Int64, dirty UInt8, sequence UInt64) "
                  "ENGINE = MergeTree ORDER BY sequence")  # fmt: skip
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (7, 0, 1)")
    target = {
        "redis": {"url": own_redis.url},
        "postgres": {"url": postgres_url},
        "clickhouse": {"url": ch_url},
    }
    config = make_config({"t": target}, timeouts={"probe_s": 3, "run_s": 10})
    own_redis.process.send_signal(signal.SIGSTOP)  # the probes connect, then wait on a frozen server
    found: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: found.update(report=check(config)))
    started = time.monotonic()
    worker.start()
    wait_until(lambda: _connections_to(own_redis.port), what="a probe connected to the frozen Redis")
    own_redis.process.kill()  # mid-run: every open connection is reset
    own_redis.process.wait(5)
    own_redis.process = None
    worker.join(15)
    assert not worker.is_alive() and time.monotonic() - started < 5
    report = found["report"]
    assert _probed(report, "redis") and _unknown_of(report, "redis") == []
    assert all(r.summary for r in _probed(report, "redis"))
    by_id = {r.item.id: r for r in report.results}
    assert by_id["postgres.max_connections"].status is not Status.UNKNOWN
    assert by_id["clickhouse.migrations"].status is Status.PASS

    own_redis.start()  # the same port: the next run reads it again
    again = check(config, selector="redis")
    assert any(r.status is not Status.UNKNOWN for r in _probed(again, "redis"))


def test_black_holed_backends_are_unknown_within_the_probe_timeout(blackhole):
    silent = f"127.0.0.1:{blackhole.port}"
    target = {"redis": {"url": f"redis://{silent}/0"}, "postgres": {"url": f"postgresql://u@{silent}/postgres"},
              "clickhouse": {"url": f"http://{silent}/default"}}  # fmt: skip
    config = make_config({"t": target}, timeouts={"probe_s": 1, "run_s": 5})
    started = time.monotonic()
    report = check(config)
    assert time.monotonic() - started < 3.5
    for backend in ("redis", "postgres", "clickhouse"):
        assert _probed(report, backend) and _unknown_of(report, backend) == [], backend


def test_backends_answering_random_bytes_are_unknown_with_a_reason(garbage):
    babble = f"127.0.0.1:{garbage.port}"
    target = {"redis": {"url": f"redis://{babble}/0"}, "postgres": {"url": f"postgresql://u@{babble}/postgres"},
              "clickhouse": {"url": f"http://{babble}/default"}}  # fmt: skip
    config = make_config({"t": target}, timeouts={"probe_s": 1, "run_s": 5})
    started = time.monotonic()
    report = check(config)
    assert time.monotonic() - started < 6
    for backend in ("redis", "postgres", "clickhouse"):
        assert _unknown_of(report, backend) == [], backend
        assert all(r.summary and "Traceback" not in r.summary for r in _probed(report, backend))
    result = triage(config, sample_interval_s=0.2)
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE


def test_an_http_200_page_on_the_clickhouse_url_is_unknown_not_a_crash(not_clickhouse):
    config = make_config({"t": {"clickhouse": {"url": not_clickhouse}}}, timeouts={"probe_s": 2, "run_s": 5})
    report = check(config, selector="clickhouse")
    assert report.results and _unknown_of(report, "clickhouse") == []
    result = triage(config, runbook="merge-pressure")
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE
    assert all(s.status is Status.UNKNOWN and s.summary for s in result.steps)


def test_redis_restarted_during_the_queue_sample_gives_unknown_or_a_clear_reading(
    own_redis, clickhouse, monkeypatch
):
    import redis

    r = redis.Redis.from_url(own_redis.url)
    build_redis(r, queued=5)
    r.close()
    config = make_config({"t": {"redis": {"url": own_redis.url}, "clickhouse": {"url": clickhouse[0]}}},
                         timeouts={"probe_s": 2, "run_s": 8})  # fmt: skip

    # The restart comes once the first sample is read, while the runbook waits for the second.
    first_sampled = threading.Event()
    read_queues = measure.READERS["redis.queues"]

    def sample_and_say(clients: Any, params: Any) -> Any:
        try:
            return read_queues(clients, params)
        finally:
            first_sampled.set()

    monkeypatch.setitem(measure.READERS, "redis.queues", sample_and_say)

    def restart() -> None:
        assert first_sampled.wait(10), "the first queue sample was never read"
        own_redis.stop()
        own_redis.start()

    bouncer = threading.Thread(target=restart)
    bouncer.start()
    started = time.monotonic()
    result = triage(config, "t", "queue-depth", sample_interval_s=1.0)
    bouncer.join(15)
    assert time.monotonic() - started < 8 + 1
    drain = result.steps[0]
    assert drain.step_id == "queue-drain" and drain.summary.endswith(".")
    assert "Traceback" not in drain.summary
    if drain.status is Status.UNKNOWN:
        assert drain.summary.startswith(("Could not tell", "No answer"))
    # The runbook still works against the restarted server.
    assert triage(config, "t", "queue-depth", sample_interval_s=0.2).steps[0].status is not Status.UNKNOWN


# --- The acknowledgement store ---------------------------------------------------------------


def _as_nobody(fn: Any, timeout: float = 30) -> Any:
    """`fn()` in a forked child running as uid 65534, where file permissions apply (tests run as root).

    The interpreter lives under /root, which nobody may not read, so the child is forked from this
    already-running process rather than started afresh; `fn` must only use modules already imported.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, run, report through the pipe, never return
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with os.fdopen(write, "w") as out:
                json.dump(fn(), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        wait_until(lambda: os.waitpid(pid, os.WNOHANG) != (0, 0), timeout=timeout, what="the child finishing")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    with os.fdopen(read) as got:
        text = got.read()
    assert text, "the child running as nobody reported nothing"
    return json.loads(text)


@pytest.fixture
def store_dir() -> Iterator[Path]:
    """A directory nobody can traverse (pytest's tmp dirs are root-only), removed after."""
    path = Path(tempfile.mkdtemp(prefix="lsr-ro-"))
    path.chmod(0o755)
    yield path
    path.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def _cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={})


def test_cli_ack_on_a_read_only_store_is_one_line_exit_2_and_loses_nothing(store_dir):
    config = store_dir / "lsready.yaml"
    db = store_dir / "lsready.db"
    config.write_text(f"targets: {{prod: {{}}}}\nstorage: {{path: '{db}'}}\n")
    assert (
        _cli(config, "ack", "diag.har_capture", "--by", "alice").exit_code == 0
    )  # also imports all it needs
    files = [db, *store_dir.glob("lsready.db-*")]
    for f in files:
        f.chmod(0o444)
    store_dir.chmod(0o555)
    try:

        def attempt() -> dict[str, Any]:
            out = _cli(config, "ack", "diag.log_collection", "--by", "bob")
            return {"code": out.exit_code, "output": out.output}

        got = _as_nobody(attempt)
    finally:
        store_dir.chmod(0o755)
        for f in files:
            f.chmod(0o644)
    lines = got["output"].strip().splitlines()
    assert got["code"] == 2, got
    assert len(lines) == 1 and lines[0].startswith("lsready: ") and "Traceback" not in got["output"]
    assert "read" in lines[0] and str(db) in lines[0]
    listed = json.loads(_cli(config, "acks", "--format", "json").output)
    assert [a["item_id"] for a in listed] == ["diag.har_capture"]  # the earlier one is intact
    assert _cli(config, "ack", "diag.log_collection", "--by", "bob").exit_code == 0  # writable again


def test_running_bot_answers_clearly_while_its_store_cannot_be_opened_and_loses_no_ack(tmp_path):
    db = tmp_path / "lsready.db"
    config = make_config({"prod": {}}, timeouts={"probe_s": 1, "run_s": 2})
    with BotHarness(config, db) as bot:
        bot.readiness.acknowledge("prod", "diag.har_capture", "U0000001", note="before the fault")
        moved = tmp_path / "lsready.db.moved"
        db.rename(moved)
        db.mkdir()  # the store's path is now something SQLite cannot open
        try:
            reply = bot.command("ack diag.log_collection shipped")
            assert reply.status == 200
            told = bot.fake.wait_for("respond")[0]
            assert told["response_type"] == "ephemeral" and "database" in told["text"]
            assert "Traceback" not in told["text"]
            assert bot.command("help").status == 200  # still acking
            bot.fake.wait_for("respond", count=2)
        finally:
            db.rmdir()
            moved.rename(db)
        assert bot.command("ack diag.log_collection shipped").status == 200
        bot.fake.wait_for("respond", lambda r: r.get("response_type") == "in_channel")
        assert set(bot.readiness.acks.active("prod")) == {"diag.har_capture", "diag.log_collection"}


def test_hung_triages_never_delay_the_ack_of_the_next_command(tmp_path, blackhole):
    silent = {"clickhouse": {"url": f"http://127.0.0.1:{blackhole.port}/default"}}
    config = make_config({"prod": silent}, timeouts={"probe_s": 4, "run_s": 4})
    with BotHarness(config, tmp_path / "lsready.db") as bot:
        replies = [bot.command("triage prod") for _ in range(18)]  # more than the bot's workers
        helped = bot.command("help")
        assert [r.status for r in replies] == [200] * 18
        assert helped.status == 200 and helped.elapsed < 2.5  # Slack gives up at 3 s
        bot.fake.wait_for("respond", lambda r: "/langsmith triage" in json.dumps(r.get("blocks")))
