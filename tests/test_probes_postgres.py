"""PostgreSQL probes against real servers, run as the pg_monitor role of deploy/grants/postgres.sql.

The session server is shared by the whole suite, so tests here leave no role, table, connection
or setting behind. States that need a restart (archive_mode) or server-wide settings use a private
server that only this module starts, reachable over TCP.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from waiting import wait_until

from checks import endpoints
from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.probes.common import quantity
from checks.probes.postgres.connections import backend_ages, pooling_verdict
from checks.probes.postgres.server import (
    POOLER_PORT,
    REQUIRED_EXTENSIONS,
    ROUND_TRIPS_PER_QUERY,
    ServerFacts,
    host_placement,
    server_provider,
)
from checks.probes.postgres.storage import Archiving, backup_verdict, disk_verdict
from checks.registry import load_catalog
from checks.runner import run_checks
from runbooks.demo.engines import free_port

ROOT = Path(__file__).resolve().parent.parent
GRANTS = ROOT / "deploy" / "grants" / "postgres.sql"
CATALOG = load_catalog()


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:{password}@{hostport}", parts.path, parts.query, ""))


@contextmanager
def lsready_role(admin_url: str) -> Iterator[str]:
    """A URL for a fresh role made by the grants file (renamed, so a real `lsready` is untouched)."""
    name, password = f"lsready_t{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(re.sub(r"\blsready\b", name, GRANTS.read_text()))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    try:
        yield with_user(admin_url, name, password)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def lsr_url(postgres_url: str) -> Iterator[str]:
    with lsready_role(postgres_url) as url:
        yield url


@pytest.fixture
def admin(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def clients_for(url: str) -> Clients:
    return Clients("t", TargetConfig.model_validate({"postgres": {"url": url}}), timeout_s=5)


def run(probe: str, url: str, **overrides: Any) -> Any:
    item_id = next(i.id for i in CATALOG.items if i.probe == probe)
    clients = clients_for(url)
    try:
        return CATALOG.probes[probe](clients, {**CATALOG.get(item_id).thresholds, **overrides})
    finally:
        clients.close()


def table_name() -> str:
    return f"lsr_t_{uuid.uuid4().hex[:10]}"


# --- A private server and a TCP forwarder -----------------------------------------------------


@dataclass
class PrivatePostgres:
    """A throwaway server with WAL archiving on, listening on 127.0.0.1."""

    directory: Path
    port: int
    server: Any

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def broken_flag(self) -> Path:
        return self.directory / "archive_broken"


@pytest.fixture(scope="module")
def private_pg(session_dir: Path) -> Iterator[PrivatePostgres]:
    import pgserver

    directory = session_dir / f"pa{uuid.uuid4().hex[:4]}"
    server = pgserver.get_server(directory, cleanup_mode="delete")
    pg = PrivatePostgres(directory, free_port(), server)
    # The archiver fails while the flag file exists, so a test can break archiving on purpose.
    command = f"test ! -e {pg.broken_flag} && mkdir -p {directory}/wal && cp %p {directory}/wal/%f"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_mode = 'on'")
        conn.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
    options = f"-h 127.0.0.1 -p {pg.port} -k {directory}"
    pgserver.pg_ctl(["-w", "-m", "fast", "-o", options, "-l", str(directory / "log"), "restart"],
                    pgdata=directory, user=server.system_user)  # fmt: skip
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pgserver.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=directory, user=server.system_user)
        server.cleanup()


# PostgreSQL's FATAL reply to a startup packet it will not take, as PgBouncer sends it for `options`.
_REFUSE_OPTIONS = b"".join(
    [b"SFATAL\0", b"VFATAL\0", b"C08P01\0", b"Munsupported startup parameter: options\0", b"\0"]
)
_STARTUP_V3 = (196608).to_bytes(4, "big")


class Forwarder:
    """A TCP forwarder to PostgreSQL that delays every server->client chunk by `delay_s`.

    `target` is a port on 127.0.0.1, a (host, port) pair or a Unix socket path. With
    `refuse_options`, a startup packet that carries `options` is refused the way PgBouncer does;
    after `freeze()`, nothing reaches the client (a server that went silent mid-query) and
    `holding` is set once an answer is being held back.
    """

    def __init__(
        self,
        target: int | str | tuple[str, int],
        delay_s: float = 0.0,
        refuse_options: bool = False,
        listen: int = 0,
    ) -> None:
        self.target = ("127.0.0.1", target) if isinstance(target, int) else target
        self.delay_s, self.refuse_options = delay_s, refuse_options
        self._thawed = threading.Event()
        self._thawed.set()
        self.holding = threading.Event()
        self.refused = 0
        self.sock = socket.create_server(("127.0.0.1", listen))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            return upstream
        return socket.create_connection(self.target)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = self._upstream()
            self.conns += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.delay_s), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self.refuse_options and data[4:8] == _STARTUP_V3 and b"\0options\0" in data:
                    self.refused += 1
                    src.sendall(b"E" + (len(_REFUSE_OPTIONS) + 4).to_bytes(4, "big") + _REFUSE_OPTIONS)
                    src.shutdown(socket.SHUT_RDWR)
                    dst.shutdown(socket.SHUT_RDWR)
                    return
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _pump(self, src: socket.socket, dst: socket.socket, delay_s: float) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                time.sleep(delay_s)  # a slow network, on purpose
                if not self._thawed.is_set():
                    self.holding.set()
                    self._thawed.wait()
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def freeze(self) -> None:
        self._thawed.clear()

    def close(self) -> None:
        self._thawed.set()
        self.sock.close()
        for conn in self.conns:
            conn.close()


def upstream_of(url: str) -> tuple[str, int] | str:
    """Where a PostgreSQL URL leads: (host, port), or the Unix socket path (pgserver's)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    host, port = str(info.get("host") or "localhost"), int(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


@contextmanager
def proxied(url: str, delay_s: float = 0.0, refuse_options: bool = False) -> Iterator[tuple[str, Forwarder]]:
    """`url` rewritten to reach its server (TCP or Unix socket) through a Forwarder on 127.0.0.1."""
    fwd = Forwarder(upstream_of(url), delay_s, refuse_options)
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    query = "&".join(q for q in parts.query.split("&") if q and not q.startswith(("host=", "port=")))
    query = "&".join(filter(None, [query, "sslmode=disable", "gssencmode=disable"]))
    try:
        yield urlunsplit((parts.scheme, f"{auth}127.0.0.1:{fwd.port}", parts.path, query, "")), fwd
    finally:
        fwd.close()


@contextmanager
def forwarded(url: str, port: int, delay_s: float = 0.0, listen: int = 0) -> Iterator[str]:
    """`url` rewritten to reach the server through a Forwarder (on port `listen`, 0: any)."""
    fwd = Forwarder(port, delay_s, listen=listen)
    try:
        yield url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{fwd.port}")
    finally:
        fwd.close()


@pytest.fixture(scope="module")
def private_lsr_url(private_pg: PrivatePostgres) -> Iterator[str]:
    with lsready_role(private_pg.url) as url:
        yield url


# --- postgres.managed / postgres.not_embedded -------------------------------------------------


def test_local_server_without_contrib_is_not_passed_as_managed(lsr_url, admin):
    ev = run("postgres.managed", lsr_url)
    available = {r[0] for r in admin.execute("SELECT name FROM pg_available_extensions").fetchall()}
    expected = Status.WARN if not set(REQUIRED_EXTENSIONS) <= available else Status.MANUAL
    assert ev.status is expected, ev.summary
    assert ev.observed["placement"] == "local" and ev.observed["server_version"].startswith("1")
    assert set(ev.observed["extensions"]["unavailable"]) == set(REQUIRED_EXTENSIONS) - available


def test_server_below_minimum_version_fails(lsr_url):
    ev = run("postgres.managed", lsr_url, min_version=99)
    assert ev.status is Status.FAIL and "below LangSmith's minimum 99" in ev.summary


def test_local_single_server_without_standby_needs_a_person(lsr_url):
    ev = run("postgres.not_embedded", lsr_url)
    assert ev.status is Status.MANUAL and ev.observed["streaming_standbys"] == 0
    assert "no streaming standby" in ev.summary


@pytest.mark.parametrize(
    ("url", "kind", "provider"),
    [
        ("postgresql://u:pw@ls.abc123.us-east-1.rds.amazonaws.com:5432/ls", "managed", "AWS RDS"),
        ("postgresql://u@ls.cluster-abc123.us-east-1.rds.amazonaws.com/ls", "managed", "AWS Aurora"),
        ("postgresql://u@ls.proxy-abc123.us-east-1.rds.amazonaws.com/ls", "managed", "AWS RDS Proxy"),
        ("postgresql://u@ls.postgres.database.azure.com/ls", "managed", "Azure Database for PostgreSQL"),
        ("postgresql://u@/ls?host=/cloudsql/proj:us-central1:ls", "managed", "Google Cloud SQL"),
        ("postgresql://u:pw@langsmith-postgres:5432/postgres", "in-cluster", None),
        ("postgresql://u@langsmith-postgres.langsmith.svc.cluster.local/postgres", "in-cluster", None),
        ("postgresql://u@pg-postgresql.db/postgres", "in-cluster", None),
        ("postgresql://u@localhost:5432/postgres", "local", None),
        ("postgresql://u@/postgres?host=/var/run/postgresql", "local", None),
        ("postgresql://u@10.0.3.4:5432/postgres", "unknown", None),
        ("postgresql://u@db1.example.com:5432,db2.example.com:5432/postgres", "unknown", None),
    ],
)
def test_placement_from_the_configured_url(url, kind, provider):
    place = host_placement(endpoints.postgres(url))
    assert (place.kind, place.provider) == (kind, provider)


@pytest.mark.parametrize(
    ("settings", "rds_superuser", "aurora", "provider"),
    [
        (["rds.extensions", "rds.force_ssl"], True, None, "AWS RDS"),
        ([], True, None, "AWS RDS"),
        (["rds.extensions"], True, "16.4.0", "AWS Aurora"),
        (["cloudsql.iam_authentication"], False, None, "Google Cloud SQL"),
        (["azure.extensions"], False, None, "Azure Database for PostgreSQL"),
        ([], False, None, None),
    ],
)
def test_provider_from_server_settings_roles_and_functions(settings, rds_superuser, aurora, provider):
    assert server_provider(settings, rds_superuser, aurora)[0] == provider


# --- postgres.storage_latency ----------------------------------------------------------------


def test_fast_server_round_trip_passes(lsr_url):
    ev = run("postgres.storage_latency", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    assert ev.observed["roundtrip_ms"] < 20 and "not an IOPS measurement" in ev.summary
    assert ev.observed["track_io_timing"] in ("on", "off")
    assert ev.observed["round_trips_per_query"] == ROUND_TRIPS_PER_QUERY == 1


def test_slow_network_round_trip_warns(private_pg, private_lsr_url):
    with forwarded(private_lsr_url, private_pg.port, delay_s=0.03) as slow_url:
        ev = run("postgres.storage_latency", slow_url)
    assert ev.status is Status.WARN, ev.summary
    # One round trip per query: the median query takes about the 30 ms the network adds, no more.
    assert ev.observed["round_trips_per_query"] == 1
    assert 20 < ev.observed["roundtrip_ms"] < 60, ev.observed


def test_round_trip_is_measured_per_round_trip_behind_a_pooler_that_refuses_options(lsr_url):
    with proxied(lsr_url, delay_s=0.03, refuse_options=True) as (slow_url, fwd):
        ev = run("postgres.storage_latency", slow_url)
    assert fwd.refused >= 1
    # BEGIN, SET LOCAL, the statement and COMMIT: four delayed round trips per query, divided by four.
    assert ev.observed["round_trips_per_query"] == 4
    assert ev.observed["query_ms_median"] > 100, ev.observed
    assert 20 < ev.observed["roundtrip_ms"] < 60, ev.observed
    assert ev.status is Status.WARN, ev.summary


def test_every_postgres_item_gets_a_verdict_over_a_slow_network(lsr_url):
    """60 ms per round trip: the probes share a small pool, one round trip a query, within 5 s."""
    items = [i for i in CATALOG.items if i.probe and i.probe.startswith("postgres.")]
    with proxied(lsr_url, delay_s=0.06) as (slow_url, _):
        clients = clients_for(slow_url)
        started = time.monotonic()
        try:
            report = run_checks(CATALOG, clients, items=items, deadline_s=30)
        finally:
            clients.close()
        elapsed = time.monotonic() - started
    assert len(items) == 10
    unknown = {r.item.id: r.summary for r in report.results if r.status is Status.UNKNOWN}
    assert not unknown, f"the server answered, yet: {unknown}"
    assert elapsed < 5.5, f"the run took {elapsed:.1f} s"


# --- postgres.backups -------------------------------------------------------------------------


def test_archive_mode_off_fails(lsr_url):
    ev = run("postgres.backups", lsr_url)
    assert ev.status is Status.FAIL and "archive_mode off" in ev.summary


def _archiver(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT archived_count, failed_count FROM pg_stat_archiver").fetchone()
    return {"archived": row[0], "failed": row[1]}


def _switch_wal_and_wait(url: str, key: str, minimum: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        name = table_name()
        conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        conn.execute("SELECT pg_switch_wal()")
    wait_until(lambda: _archiver(url)[key] >= minimum, what=f"the archiver reaching {key} >= {minimum}")


def test_recent_wal_archiving_passes_and_a_newer_failure_fails(private_pg, private_lsr_url):
    _switch_wal_and_wait(private_pg.url, "archived", 1)
    ok = run("postgres.backups", private_lsr_url)
    assert ok.status is Status.PASS, ok.summary
    assert ok.observed["archiver"] == "test" and ok.observed["last_archived_age_s"] < 60
    assert "mkdir" not in str(ok.observed)  # only the program name of archive_command is shown

    private_pg.broken_flag.touch()
    try:
        _switch_wal_and_wait(private_pg.url, "failed", 1)
        broken = run("postgres.backups", private_lsr_url)
    finally:
        private_pg.broken_flag.unlink()
    assert broken.status is Status.FAIL and "is failing" in broken.summary


def test_managed_service_backups_need_a_person():
    facts = ServerFacts(
        endpoint=endpoints.postgres("postgresql://u@ls.abc.us-east-1.rds.amazonaws.com/ls"),
        placement=host_placement(endpoints.postgres("postgresql://u@ls.abc.us-east-1.rds.amazonaws.com/ls")),
        version_num=160004, server_version="16.4", version="PostgreSQL 16.4", database="ls",
        server_port=5432, in_recovery=False,
    )  # fmt: skip
    arch = Archiving("on", "/etc/rds/dbbin/pgscripts/rds_wal_archive %p", "", 10, 0, 30.0, False)
    status, summary = backup_verdict(facts, arch, [], 86400)
    assert status is Status.MANUAL and "managed by the provider" in summary


# --- postgres.pooling ---------------------------------------------------------------------------


def test_direct_connection_without_pooler_warns(lsr_url):
    ev = run("postgres.pooling", lsr_url)
    assert ev.status is Status.WARN and "ASYNCPG_POOL_MAX_SIZE 3" in ev.summary


def test_pooler_role_on_the_server_needs_a_person(lsr_url, admin):
    role = f"lsr_t_{uuid.uuid4().hex[:6]}_pgbouncer"
    admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        ev = run("postgres.pooling", lsr_url)
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert ev.status is Status.MANUAL and role in ev.observed["pooler_roles"]


def test_connection_through_a_proxy_port_needs_a_person(private_pg, private_lsr_url):
    with forwarded(private_lsr_url, private_pg.port) as proxied:
        ev = run("postgres.pooling", proxied)
    assert ev.status is Status.MANUAL and "sits in between" in ev.summary
    assert ev.observed["server_port"] == private_pg.port != ev.observed["url_port"]


def test_connection_through_pgbouncers_port_passes(private_pg, private_lsr_url):
    try:
        context = forwarded(private_lsr_url, private_pg.port, listen=POOLER_PORT)
        proxied = context.__enter__()
    except OSError:
        pytest.skip(f"port {POOLER_PORT} is taken on this machine")
    try:
        ev = run("postgres.pooling", proxied)
    finally:
        context.__exit__(None, None, None)
    assert ev.status is Status.PASS and "port 6432, PgBouncer's port" in ev.summary
    assert ev.observed["url_port"] == 6432 and ev.observed["server_port"] == private_pg.port


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("postgresql://u@ls.proxy-abc.us-east-1.rds.amazonaws.com:5432/ls", Status.PASS),
        ("postgresql://u@langsmith-pgbouncer:5432/ls", Status.PASS),
        ("postgresql://u@db.example.com:6432/ls", Status.PASS),
        ("postgresql://u@db.example.com:5432/ls", Status.WARN),
    ],
)
def test_pooler_in_lsreadys_own_path_passes(url, status):
    assert pooling_verdict(endpoints.postgres(url), 5432, [], 3)[0] is status


# --- postgres.connection_reuse ------------------------------------------------------------------


def test_steady_connections_pass(lsr_url, postgres_url):
    # Steady means no client backend is young: wait until the sessions earlier tests opened (and
    # this one's own watcher) are older than the limit, or have gone, before sampling.
    with psycopg.connect(postgres_url, autocommit=True) as watcher:

        def none_young() -> bool:
            young = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " AND backend_start > now() - interval '1 second'"
            ).fetchone()[0]
            watcher.execute("SELECT pg_stat_clear_snapshot()")
            return young == 0

        wait_until(none_young, what="no client backend younger than 1 s")
        ev = run("postgres.connection_reuse", lsr_url, sample_seconds=0.5, short_lived_seconds=1)
    assert ev.status is Status.PASS, ev.summary
    assert ev.observed["new_sessions_per_s"] < 1


def test_lsreadys_own_pooled_connections_are_not_counted_as_client_backends(lsr_url, admin):
    clients = clients_for(lsr_url)
    try:
        pg = clients.postgres
        own = pg.backend_pids()
        assert len(own) == 3
        ages = backend_ages(pg)
        others = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND backend_start IS NOT NULL AND pid <> ALL(%s)",
            [own],
        ).fetchone()[0]
    finally:
        clients.close()
    assert len(ages) == others


def test_per_request_connections_during_the_sample_fail(lsr_url, postgres_url):
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            with psycopg.connect(postgres_url) as conn:
                conn.execute("SELECT 1")

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        ev = run("postgres.connection_reuse", lsr_url, sample_seconds=1)
    finally:
        stop.set()
        worker.join(5)
    assert ev.status is Status.FAIL, ev.summary
    assert ev.observed["new_sessions_per_s"] > 5 and "per-request connections" in ev.summary


def test_many_young_backends_warn(lsr_url, postgres_url):
    held = [psycopg.connect(postgres_url) for _ in range(6)]
    try:
        for conn in held:
            # The new sessions reach pg_stat_database as this command ends, before the first sample,
            # so the probe sees young backends, not a burst of new sessions.
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.rollback()
        ev = run("postgres.connection_reuse", lsr_url, sample_seconds=0.3)
    finally:
        for conn in held:
            conn.close()
    assert ev.status is Status.WARN, ev.summary
    assert ev.observed["short_lived"] >= 6


# --- postgres.monitoring ------------------------------------------------------------------------


def test_missing_pg_stat_statements_warns(lsr_url, admin):
    if admin.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone():
        pytest.skip("pg_stat_statements is installed on this server")
    ev = run("postgres.monitoring", lsr_url)
    assert ev.status is Status.WARN and "install it" in ev.summary
    assert ev.observed["connections"] >= 1 and ev.observed["max_connections"] > 0


def test_loaded_pg_stat_statements_passes_with_slow_queries(lsr_url, admin):
    preload = admin.execute("SHOW shared_preload_libraries").fetchone()[0]
    available = admin.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
    ).fetchone()
    if not available or "pg_stat_statements" not in preload:
        pytest.skip("this server cannot load pg_stat_statements (pgserver ships no contrib)")
    created = not admin.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    if created:
        admin.execute("CREATE EXTENSION pg_stat_statements")
    try:
        admin.execute("SELECT pg_sleep(0.05), 'secret-literal'")
        ev = run("postgres.monitoring", lsr_url)
    finally:
        if created:
            admin.execute("DROP EXTENSION pg_stat_statements")
    assert ev.status is Status.PASS and ev.observed["slow_queries"]
    assert all(len(q["query"]) <= 120 for q in ev.observed["slow_queries"])
    assert "secret-literal" not in str(ev.observed)


# --- postgres.disk ------------------------------------------------------------------------------


def test_sizes_without_volume_capacity_need_a_person(lsr_url):
    ev = run("postgres.disk", lsr_url)
    assert ev.status is Status.MANUAL and "not visible over SQL" in ev.summary
    assert ev.observed["databases"]["postgres"] > 0 and ev.observed["wal_bytes"] > 0


@pytest.mark.parametrize(("used_gib", "status"), [(1, Status.PASS), (7.5, Status.WARN), (9, Status.FAIL)])
def test_disk_usage_graded_against_known_capacity(used_gib, status):
    params = CATALOG.get("postgres.disk").thresholds
    pvc = {"name": "data-langsmith-postgres-0", "capacity_bytes": quantity("10Gi")}
    assert disk_verdict(used_gib * 2**30, pvc, params)[0] is status


def test_kubernetes_quantities_parse():
    assert quantity("8Gi") == 8 * 2**30
    assert quantity("500M") == 500e6
    assert quantity("lots") is None


# --- postgres.autovacuum ------------------------------------------------------------------------


def test_healthy_vacuum_state_passes(lsr_url):
    ev = run("postgres.autovacuum", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    assert ev.observed["settings"] == {"autovacuum": "on", "track_counts": "on"}


def test_table_with_stale_dead_tuples_warns(lsr_url, postgres_url):
    name = table_name()
    ident = sql.Identifier(name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int) WITH (autovacuum_enabled = false)").format(ident))
        conn.execute(sql.SQL("INSERT INTO {} SELECT generate_series(1, 5000)").format(ident))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id > 1000").format(ident))
    # Closing the connection flushes its table statistics; the probe sees them once they land.
    try:
        ev = wait_until(
            lambda: (e := run("postgres.autovacuum", lsr_url)).status is not Status.PASS and e,
            timeout=10,
            what="the dead tuples reaching the statistics",
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(ident))
    assert ev.status is Status.WARN, ev.summary
    top = ev.observed["top_tables"][0]
    assert (
        top["name"] == f"public.{name}"
        and top["dead"] == 4000
        and "autovacuum_enabled=false" in top["reloptions"]
    )


def test_xid_age_over_thresholds_warns_then_fails(lsr_url):
    assert run("postgres.autovacuum", lsr_url, xid_age_warn=1).status is Status.WARN
    assert run("postgres.autovacuum", lsr_url, xid_age_warn=1, xid_age_fail=2).status is Status.FAIL


def _reload_autovacuum(url: str, change: str, expect: str) -> None:
    """ALTER SYSTEM `change`, reload, and return once a new session sees autovacuum = `expect`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM {change}")
        conn.execute("SELECT pg_reload_conf()")

    def applied() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SHOW autovacuum").fetchone()[0] == expect

    wait_until(applied, what=f"the reloaded configuration (autovacuum = {expect})")


def test_autovacuum_off_fails(private_pg, private_lsr_url):
    _reload_autovacuum(private_pg.url, "SET autovacuum = off", "off")
    try:
        ev = run("postgres.autovacuum", private_lsr_url)
    finally:
        _reload_autovacuum(private_pg.url, "RESET autovacuum", "on")
    assert ev.status is Status.FAIL and "autovacuum off" in ev.summary.replace(" and track_counts", "")


# --- least privilege ---------------------------------------------------------------------------


def test_role_without_pg_monitor_is_unknown_naming_the_privilege(postgres_url):
    with lsready_role(postgres_url) as url:
        role = urlsplit(url).username
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE pg_monitor FROM {}").format(sql.Identifier(role)))
        clients = clients_for(url)
        report = run_checks(CATALOG, clients, items=[CATALOG.get("postgres.disk")])
        clients.close()
    result = report.results[0]
    assert result.status is Status.UNKNOWN and "permission denied" in result.summary
