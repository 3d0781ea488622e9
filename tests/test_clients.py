"""The clients probes share: PostgreSQL's read-only pool, remembered failures, closing, leftover threads."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import psycopg
import pytest
from k8s_fake import Servers, production, write_kubeconfig
from test_probes_postgres import proxied
from waiting import wait_until

import checks.clients as clients_mod
from checks.backends import BackendUnavailable
from checks.clients import Clients, _Lazy
from checks.config import PostgresConfig, TargetConfig
from checks.model import Evidence, Item, Kind, Severity, Status
from checks.registry import Catalog, load_catalog
from checks.runner import run_checks
from checks.sessions import PostgresSession

CATALOG = load_catalog()


def _clients(timeout_s: float = 5.0, **sections: Any) -> Clients:
    return Clients("t", TargetConfig.model_validate(sections), timeout_s=timeout_s)


def _item(item_id: str, probe: str) -> Item:
    return Item(
        id=item_id, section="1", title=item_id, seed=item_id, kind=Kind.PROBE, required=False,
        severity=Severity.HIGH, remediation="fix", probe=probe,
    )  # fmt: skip


# --- PostgreSQL: one round trip a query, read-only either way -------------------------------------


@pytest.mark.parametrize("refuse_options", [False, True], ids=["startup-options", "pooler-refuses-them"])
def test_postgres_session_is_read_only_and_time_bounded_on_both_paths(postgres_url, refuse_options):
    with proxied(postgres_url, refuse_options=refuse_options) as (url, fwd):
        session = PostgresSession(PostgresConfig(url=url), timeout_s=0.5)
        try:
            assert session.round_trips_per_query == (4 if refuse_options else 1)
            assert bool(fwd.refused) is refuse_options
            assert session.query("SHOW transaction_read_only") == [{"transaction_read_only": "on"}]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                session.query("CREATE TABLE lsr_never (x int)")
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                session.query("SELECT pg_sleep(5)")
            assert time.monotonic() - started < 2
            assert session.query("SELECT 1 AS one") == [{"one": 1}]  # the connection is still usable
        finally:
            session.close()


def test_startup_options_the_server_silently_drops_fall_back_to_a_transaction_per_query(
    postgres_url, monkeypatch
):
    monkeypatch.setattr(PostgresSession, "_settings_applied", lambda self, conn: False)
    session = PostgresSession(PostgresConfig(url=postgres_url), timeout_s=2)
    try:
        assert session.round_trips_per_query == 4
        assert session.query("SHOW statement_timeout") == [{"statement_timeout": "2s"}]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.query("CREATE TABLE lsr_never (x int)")
    finally:
        session.close()


def test_the_url_options_are_kept_next_to_lsreadys(postgres_url):
    sep = "&" if "?" in postgres_url else "?"
    session = PostgresSession(PostgresConfig(url=f"{postgres_url}{sep}options=-c%20work_mem%3D7MB"), 2)
    try:
        assert session.query("SHOW work_mem") == [{"work_mem": "7MB"}]
        assert session.round_trips_per_query == 1
    finally:
        session.close()


def test_a_query_that_finds_every_connection_busy_fails_saying_so(postgres_url):
    session = PostgresSession(PostgresConfig(url=postgres_url), timeout_s=0.5, pool_size=1)
    held = session._acquire()
    try:
        with pytest.raises(BackendUnavailable, match=r"no PostgreSQL connection came free within 0.5 s"):
            session.query("SELECT 1")
    finally:
        session._release(held)
    assert session.query("SELECT 1 AS one") == [{"one": 1}]
    session.close()


def test_a_probe_timed_out_waiting_for_a_connection_is_told_apart_from_a_slow_server(postgres_url):
    def sleeps(clients, params):
        clients.postgres.query("SELECT pg_sleep(1.5)")
        return Evidence(Status.PASS, "slept")

    catalog = Catalog(items=tuple(_item(f"p.s{i}", "sleeps") for i in range(5)), probes={"sleeps": sleeps})
    clients = _clients(3, postgres={"url": postgres_url})
    try:  # the run ends before the pool's 3 s wait for a free connection does
        report = run_checks(catalog, clients, deadline_s=0.8)
    finally:
        clients.close()
    assert all(r.status is Status.UNKNOWN for r in report.results)
    summaries = sorted(r.summary for r in report.results)
    on_pool = [s for s in summaries if "still waiting for a free PostgreSQL connection" in s]
    on_server = [s for s in summaries if "the backend is slow or unreachable" in s]
    assert (len(on_pool), len(on_server)) == (2, 3), summaries


def test_close_cuts_a_query_the_server_never_answers(postgres_url):
    with proxied(postgres_url) as (url, fwd):
        session = PostgresSession(PostgresConfig(url=url), timeout_s=5)
        fwd.freeze()
        failed: list[BaseException] = []

        def query() -> None:
            try:
                session.query("SELECT 1")
            except BaseException as exc:
                failed.append(exc)

        worker = threading.Thread(target=query, daemon=True)
        worker.start()
        assert fwd.holding.wait(10), "the query never reached the server"
        assert worker.is_alive()  # the answer is held back: the query waits on a silent server
        session.close()
        worker.join(2)
        assert not worker.is_alive() and isinstance(failed[0], psycopg.OperationalError)
        assert session._count == 0  # every connection closed, the cut one included


# --- Remembered failures ---------------------------------------------------------------------------


def test_a_remembered_failure_is_a_fresh_exception_for_every_caller():
    calls = []

    def build() -> Any:
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    lazy: _Lazy[Any] = _Lazy(build)
    caught: list[BaseException] = []

    def get() -> None:
        try:
            lazy.get()
        except BaseException as exc:
            caught.append(exc)

    threads = [threading.Thread(target=get) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(20):
        get()
    assert len(calls) == 1 and len(caught) == 36
    assert len({id(e) for e in caught}) == 36
    for exc in caught:
        assert isinstance(exc, BackendUnavailable)
        assert str(exc) == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert exc.__cause__ is None and exc.__suppress_context__
    # Each traceback is its own caller's: raised in _Lazy.get, caught in get(), never grown by others.
    assert {len(traceback.extract_tb(e.__traceback__)) for e in caught} == {2}


def test_an_unreachable_postgres_is_reported_with_its_reason_by_every_probe(unused_port):
    def one(clients, params):
        clients.postgres.query("SELECT 1")
        return Evidence(Status.PASS, "reached")

    catalog = Catalog(items=tuple(_item(f"p.{i}", "one") for i in range(4)), probes={"one": one})
    clients = _clients(2, postgres={"url": f"postgresql://u:hunter22@127.0.0.1:{unused_port}/db"})
    report = run_checks(catalog, clients)
    clients.close()
    summaries = {r.summary for r in report.results}
    # Said once for the run, naming where and why; each item points to it.
    assert summaries == {"Could not tell: PostgreSQL could not be reached (see 'Could not reach')."}
    (down,) = report.unreachable
    assert down.line == f"PostgreSQL at 127.0.0.1:{unused_port}: connection refused"
    assert down.items == ("p.0", "p.1", "p.2", "p.3") and "hunter22" not in str(report.to_dict())


# --- Closing every client ----------------------------------------------------------------------------


def test_close_closes_every_client_but_the_shared_embedded_clickhouse(
    monkeypatch, tmp_path, redis_url, postgres_url, clickhouse, s3_endpoint
):
    import botocore.client
    import clickhouse_connect
    import kubernetes.client
    import redis

    closed: list[str] = []

    def spy(cls: Any, name: str) -> None:
        original = cls.close

        def close(self: Any, *args: Any, **kwargs: Any) -> Any:
            closed.append(name)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "close", close)

    spy(redis.Redis, "redis")
    spy(kubernetes.client.ApiClient, "kubernetes")
    spy(botocore.client.BaseClient, "blob")
    servers = Servers(tmp_path)
    try:
        section = servers.kubernetes_section(production(), "live")
        clients = _clients(
            5,
            redis={"url": redis_url},
            postgres={"url": postgres_url},
            clickhouse={"url": clickhouse[0]},
            kubernetes=section,
            blob={"bucket": "b", "endpoint_url": s3_endpoint, "access_key_id": "k", "secret_access_key": "s"},
        )
        clients.redis.ping()
        session = clients.postgres
        clients.postgres.query("SELECT 1")
        clients.cluster.objects("nodes")
        clients.blob.client.list_buckets()
        embedded = clients.clickhouse
        embedded.query("t", "SELECT 1 AS x")
        spy(type(embedded.client), "embedded clickhouse")
        clients.close()
    finally:
        servers.close()
    assert sorted(closed) == ["blob", "kubernetes", "redis"]
    assert session._count == 0 and session._closed
    assert embedded.query("t", "SELECT 1 AS x") == [{"x": 1}]  # the process's engine stays open

    http: list[str] = []

    class FakeHttpClient:
        def close(self) -> None:
            http.append("closed")

    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kwargs: FakeHttpClient())
    remote = _clients(5, clickhouse={"url": "http://ch.example:8123/default"})
    assert not remote.clickhouse.embedded
    remote.close()
    assert http == ["closed"]


# --- A hung backend does not collect threads run after run -----------------------------------------


def test_probes_of_a_black_holed_redis_do_not_pile_up_run_after_run(blackhole):
    url = f"redis://127.0.0.1:{blackhole.port}/0"
    items = [i for i in CATALOG.items if i.probe and i.probe.startswith("redis.")]
    key = clients_mod._identity("redis", TargetConfig.model_validate({"redis": {"url": url}}).redis)
    leftovers = []
    for _ in range(2):
        clients = _clients(0.3, redis={"url": url})
        report = run_checks(CATALOG, clients, items=items, deadline_s=2)
        clients.close()  # cuts the commands still waiting on the black hole
        leftovers.append(clients_mod.leftover_probes(key))
        assert all(r.status is Status.UNKNOWN for r in report.results)
    assert 1 <= leftovers[-1] <= len(items), leftovers
    wait_until(
        lambda: not clients_mod.leftover_probes(key),
        timeout=3,
        what="the probe threads of a closed Redis client ending",
    )


def test_no_more_probes_start_against_a_backend_earlier_runs_still_hang_on(tmp_path, blackhole):
    kubeconfig = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{blackhole.port}")
    section = {"kubeconfig": str(kubeconfig)}
    key = clients_mod._identity("kubernetes", TargetConfig.model_validate({"kubernetes": section}).kubernetes)
    items = [i for i in CATALOG.items if i.probe and i.probe.startswith("kubernetes.")]
    cap = clients_mod.MAX_LEFTOVER_PROBES
    leftovers, refused = [], []
    for _ in range(3):
        # A request waits up to 3 s on the silent API; the run's deadline gives up on it after 0.3 s.
        clients = _clients(3, kubernetes=section)
        started = time.monotonic()
        report = run_checks(CATALOG, clients, items=items, deadline_s=0.3)
        clients.close()
        assert time.monotonic() - started < 1.5
        leftovers.append(clients_mod.leftover_probes(key))
        said = [u for u in report.unreachable if "a previous probe of kubernetes" in u.why]
        refused.append([r for r in report.results if said and r.item.id in said[0].items])
        assert all(r.status in (Status.UNKNOWN, Status.MANUAL) for r in report.results)
    assert leftovers[0] >= cap, leftovers  # every probe of the first run still hangs
    assert len(refused[1]) == len(refused[2]) == len(items), leftovers
    assert "could not be reached" in refused[1][0].summary
    assert leftovers[2] <= leftovers[0], leftovers  # refused probes start no request: no growth
