"""PostgreSQL probes against a server with contrib modules: the system PostgreSQL, when it is installed.

pgserver's wheel ships no contrib, so pg_stat_statements and LangSmith's extensions are exercised
here on the distribution's server, started by the test as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from test_probes_postgres import lsready_role, run
from waiting import wait_until

from checks.model import Status

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _contrib_available() -> bool:
    if not BIN or not Path(BIN[-1], "postgres").exists():
        return False
    lib = Path(BIN[-1]).parent / "lib" / "pg_stat_statements.so"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return lib.exists()


pytestmark = pytest.mark.skipif(not _contrib_available(), reason="no system PostgreSQL with contrib here")


def _as_postgres(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    user = pwd.getpwnam("postgres")

    def drop() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    preexec = drop if os.geteuid() == 0 else None
    return subprocess.run(
        args, preexec_fn=preexec, capture_output=True, text=True, check=True, timeout=60, **kw
    )


@pytest.fixture(scope="module")
def contrib_url() -> Iterator[str]:
    """A throwaway system PostgreSQL with pg_stat_statements preloaded, on a Unix socket."""
    root = Path(tempfile.mkdtemp(prefix="lsr-pgc-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    user = pwd.getpwnam("postgres")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(sock, user.pw_uid, user.pw_gid)
    bindir = BIN[-1]
    _as_postgres([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    options = f"-c shared_preload_libraries=pg_stat_statements -c listen_addresses='' -k {sock}"
    _as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-w", "-o", options, "-l", str(root / "log"), "start"])
    url = f"postgresql://postgres@/postgres?host={sock}"

    def answers() -> bool:
        psycopg.connect(url, connect_timeout=2).close()
        return True

    try:
        wait_until(
            answers,
            timeout=20,
            what="the contrib server accepting connections",
            ignoring=(psycopg.OperationalError,),
        )
        yield url
    finally:
        _as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-w", "-m", "fast", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def test_loaded_pg_stat_statements_passes_and_shows_slow_queries_without_literals(contrib_url):
    with psycopg.connect(contrib_url, autocommit=True) as admin, lsready_role(contrib_url) as lsr_url:
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        admin.execute("SELECT pg_sleep(0.05), 'secret-literal'")
        ev = run("postgres.monitoring", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    assert ev.observed["slow_queries"]
    assert all(len(q["query"]) <= 120 for q in ev.observed["slow_queries"])
    assert "secret-literal" not in str(ev.observed)


def test_server_with_langsmiths_extensions_is_not_faulted_for_them(contrib_url):
    with lsready_role(contrib_url) as lsr_url:
        ev = run("postgres.managed", lsr_url)
    assert "cannot install LangSmith's required extensions" not in ev.summary
    assert ev.status is not Status.PASS  # a local socket is no managed service


def test_a_server_with_a_streaming_standby_is_not_the_embedded_single_node(contrib_url):
    """A real standby, streaming from the server over replication: postgres.not_embedded passes."""
    bindir, primary_sock = BIN[-1], contrib_url.split("host=", 1)[1]
    root = Path(tempfile.mkdtemp(prefix="lsr-pgs-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    user = pwd.getpwnam("postgres")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(sock, user.pw_uid, user.pw_gid)
    _as_postgres([f"{bindir}/pg_basebackup", "-h", primary_sock, "-U", "postgres", "-D", str(data), "-R"])
    options = f"-c listen_addresses='' -k {sock}"
    _as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-w", "-o", options, "-l", str(root / "log"), "start"])
    try:
        with psycopg.connect(contrib_url, autocommit=True) as admin:
            standbys = "SELECT count(*) FROM pg_stat_replication"
            wait_until(lambda: admin.execute(standbys).fetchone()[0], timeout=20, what="a standby streaming")
        with lsready_role(contrib_url) as lsr_url:
            ev = run("postgres.not_embedded", lsr_url)
        assert ev.status is Status.PASS, ev.summary
        assert "1 streaming standby" in ev.summary and ev.observed["streaming_standbys"] == 1
    finally:
        _as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-w", "-m", "fast", "stop"])
        shutil.rmtree(root, ignore_errors=True)
