"""The one demo session (`lsready demo`, bench and tests start engines through it) and stopping processes."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import redis as redis_lib
from waiting import wait_until

from bench.engines import demo_engines, fleet_config
from checks.engine import check
from checks.model import Status
from runbooks.demo.processes import stop_process
from runbooks.demo.scenarios import Stage
from runbooks.demo.session import DemoSession
from runbooks.model import DiagnosisKind
from runbooks.triage import triage

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "runbooks", "checks", "storage")  # what `pip install` ships


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_session_shapes_its_own_engines_checks_them_and_leaves_no_process_or_directory_behind(
    demo_session: DemoSession, clickhouse: tuple[str, Any, str]
) -> None:
    _, admin, db = clickhouse
    # Its own Redis and PostgreSQL; this process's chdb path (one per process), its own database.
    with DemoSession(clickhouse_url=demo_session.clickhouse_url, database=db) as demo:
        demo.shape()
        pids, root = demo.pids, demo.root
        assert len(pids) == 2 and all(_running(p) for p in pids), pids
        assert admin.query(f"SELECT count() FROM `{db}`.runs").result_rows[0][0] > 0
        with psycopg.connect(demo.postgres_url) as conn:
            assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == ("alembic_version",)
        report = check(demo.config(), selector="clickhouse.migrations")
        assert [(r.item.id, r.status) for r in report.results] == [("clickhouse.migrations", Status.PASS)]
    for pid in pids:
        wait_until(lambda pid=pid: not _running(pid), what=f"process {pid} ending")
    assert demo.pids == [] and not root.exists()


def test_a_session_stops_only_what_it_started(redis_url: str, tmp_path: Path) -> None:
    with DemoSession(tmp_path, redis_url=redis_url) as demo:
        assert demo.redis_url == redis_url and demo.pids == []
        assert demo.postgres_url  # one engine of its own
        (own,) = demo.pids
    wait_until(lambda: not _running(own), what="the session's own PostgreSQL ending")
    with redis_lib.Redis.from_url(redis_url) as r:
        assert r.ping()  # the suite's Redis, given to the session, still answers
    assert tmp_path.exists()  # a directory it was given is the caller's


def test_the_demo_target_reads_no_queue_endpoints_it_cannot_reach(
    demo_session: DemoSession, stage: Stage, redis_url: str
) -> None:
    """The demo's triage said LangSmith's queue endpoints 'did not answer': there is no cluster DNS."""
    ch = demo_session.clickhouse_url
    with (
        DemoSession(redis_url=redis_url, clickhouse_url=ch, database=stage.db) as demo,
        demo.play("healthy", stage),
    ):
        result = triage(demo.config(postgres=False), sample_interval_s=0.3)
    assert result.diagnosis.kind is DiagnosisKind.HEALTHY, result.diagnosis.reasons
    drain = next(s for s in result.steps if s.step_id == "queue-drain")
    assert "langsmith_endpoints" not in drain.evidence, drain.evidence
    assert "did not answer" not in drain.summary and "not read" not in drain.summary, drain.summary


def test_bench_engines_come_from_the_demo_session_and_are_gone_after() -> None:
    # Without ClickHouse: chdb opens one data path per process, and this one has the suite's.
    with demo_engines(clickhouse=False) as demo:
        assert isinstance(demo, DemoSession)
        pids, root = demo.pids, demo.root
        assert len(pids) == 2 and all(_running(p) for p in pids)
        with redis_lib.Redis.from_url(demo.redis_url) as r:
            assert r.llen("saq:default:queued") == 3  # `lsready demo`'s shape
        fleet = fleet_config(demo, 3)
        assert {t.redis.url for t in fleet.targets.values()} == {demo.redis_url}  # type: ignore[union-attr]
    for pid in pids:
        wait_until(lambda pid=pid: not _running(pid), what=f"process {pid} ending")
    assert not root.exists()


def _engines_under(path: Path) -> list[int]:
    """Running processes whose working directory or command line is under `path`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if (cwd.startswith(str(path)) or str(path) in args) and _running(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_lsready_demo_leaves_no_engine_process_or_directory_behind(tmp_path: Path) -> None:
    temp = Path(tempfile.mkdtemp(prefix="lsd-"))  # short: PostgreSQL's socket lives under it
    try:
        env = {**os.environ, "TMPDIR": str(temp)}
        out = subprocess.run(
            [sys.executable, "-m", "bot.cli", "demo", "--format", "json"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)["results"]) == 69
        # redis-server runs in its data directory, postgres names its own on its command line.
        wait_until(lambda: not _engines_under(temp), what="the demo's engines ending")
        assert [p.name for p in temp.iterdir() if p.name.startswith("lsready-")] == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_lsready_demo_stopped_by_sigterm_stops_its_engines(tmp_path: Path) -> None:
    """`docker stop`, systemd and Kubernetes end a process with SIGTERM, not Ctrl-C."""
    temp = Path(tempfile.mkdtemp(prefix="lsd-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo", "--scenario", "queue-backlog"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp)},
    )  # fmt: skip
    try:
        engines = wait_until(
            lambda: [found for found in [_engines_under(temp)] if len(found) >= 2],
            timeout=60,
            what="the demo's redis-server and postgres running",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM, proc.stderr.read()  # type: ignore[union-attr]
        for pid in engines[0]:
            wait_until(lambda pid=pid: not _running(pid), what=f"engine {pid} ending")
        assert _engines_under(temp) == []
    finally:
        stop_process(proc, grace=1)
        for pid in _engines_under(temp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


# --- stopping a child process ---------------------------------------------------------------------

_STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _stubborn(**popen: Any) -> tuple[subprocess.Popen[str], int]:
    """A process that ignores SIGTERM, with a child of its own; both pids once it is ready."""
    proc = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE, text=True, **popen)
    child = int(proc.stdout.readline())  # type: ignore[union-attr]
    return proc, child


def test_stop_process_kills_what_ignores_sigterm_after_the_grace_and_reaps_it() -> None:
    proc, child = _stubborn()
    try:
        assert stop_process(proc, grace=0.2) == -signal.SIGKILL
        assert not _running(proc.pid)  # reaped: not even a zombie
    finally:
        stop_process(proc, 0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_stop_process_of_a_group_ends_what_the_leader_started() -> None:
    proc, child = _stubborn(start_new_session=True)
    assert stop_process(proc, grace=0.2, group=True) == -signal.SIGKILL
    wait_until(lambda: not _running(child), what="the leader's child ending")


def test_stop_process_of_an_ended_process_returns_its_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(10)
    assert stop_process(proc) == 3 and stop_process(None) is None


# --- the shipped demo holds only what it uses -----------------------------------------------------


def _used_names(tree: ast.AST) -> set[str]:
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


def test_every_name_the_shipped_demo_defines_is_used_by_shipped_code() -> None:
    """A 185-line production() cluster lived in runbooks/demo/cluster.py, used by tests only."""
    trees = {p: ast.parse(p.read_text()) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    used = set().union(*map(_used_names, trees.values()))
    unused = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path, tree in trees.items()
        if path.parent.name == "demo"
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name not in used
    ]
    assert unused == [], "test-only code belongs under tests/"
