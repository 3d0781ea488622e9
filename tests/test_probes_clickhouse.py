"""ClickHouse probes on the real engine: each in a passing and a failing state made by real operations.

In-process tests use the session's embedded engine, one fresh database each. What that engine
cannot show (system.query_log, a cluster in system.clusters, Replicated tables, users and row
policies) is exercised in a subprocess that starts its own embedded engine from a server config:
once as an administrator, then as a user holding exactly the grants of deploy/grants/clickhouse.sql.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from waiting import wait_until

from checks.clients import Clients
from checks.config import TargetConfig
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes import clickhouse as chp
from checks.probes.clickhouse.grants import DIAG_TABLES, parse_grants, privilege_state, split_privileges
from checks.probes.clickhouse.parts import grade_part_pressure, part_pressure, table_part_limits
from checks.probes.clickhouse.query import (
    ACCESS_DENIED,
    TIMEOUT_EXCEEDED,
    MissingPrivilege,
    TableAbsent,
    error_code,
)
from checks.probes.clickhouse.runs import ReadLimitHit, grade_ingestion_delay, ingestion_delay
from checks.probes.clickhouse.topology import ReplicaState, Topology, grade_replication
from checks.registry import load_catalog
from runbooks.demo.schema import build_clickhouse

ROOT = Path(__file__).resolve().parent.parent
GRANTS_SQL = ROOT / "deploy" / "grants" / "clickhouse.sql"
CATALOG = load_catalog()
SIGNALS = CATALOG.signals  # the triage-only thresholds: the delay and merges readings are the triage's


def _delay(ch: Any, max_rows: int | None = None) -> dict[str, Any]:
    """The triage's ingestion-delay reading, with the catalog's window and row limit."""
    limits = SIGNALS["triage.delay"]
    return ingestion_delay(ch, limits["delay_window_minutes"], max_rows=max_rows or limits["delay_max_rows"])


def _delay_probe(clients: Any, max_rows: int | None = None) -> Evidence:
    """The reading graded as the checklist and the triage grade it (warn from ops.alerts)."""
    d = _delay(clients.clickhouse, max_rows)
    warn = CATALOG.get("ops.alerts").thresholds["ingestion_delay_p95_s"]
    status, text = grade_ingestion_delay(d, warn, SIGNALS["triage.delay"]["delay_fail_s"])
    return Evidence(status, text, d)


def _part_pressure(clients: Any, stuck: float | None = None) -> Evidence:
    """Part pressure graded with the catalog's thresholds, as the triage's merges step does."""
    minutes = SIGNALS["triage.merges"]["stuck_mutation_minutes"] if stuck is None else stuck
    pp = part_pressure(clients.clickhouse, stuck_after_minutes=minutes)
    warn = CATALOG.get("clickhouse.concurrency").thresholds["parts_warn_ratio"]
    status, text = grade_part_pressure(pp, warn, minutes)
    return Evidence(status, text, pp.to_dict())


PARAMS = {i.probe: dict(i.thresholds) for i in CATALOG.items if i.probe}
# Only these may escape a probe on a LangSmith-shaped schema: an absent table or a missing grant.
EXPECTED_ERRORS = (TableAbsent, MissingPrivilege)


def _clients(url: str, cluster: str | None = None) -> Clients:
    return Clients("t", TargetConfig.model_validate({"clickhouse": {"url": url, "cluster": cluster}}), 5)


def _params(probe: str, **override: Any) -> dict[str, Any]:
    return {**PARAMS.get(probe, {}), **override}


def _run(probe: str, clients: Clients, **override: Any) -> Evidence:
    return chp.PROBES[probe](clients, _params(probe, **override))


@pytest.fixture
def langsmith(clickhouse):
    """A fresh database with LangSmith's tables, clean migrations and 2000 runs of the last hour."""
    url, admin, db = clickhouse
    build_clickhouse(admin, db, runs=2000)
    return url, admin, db


def _embedded_only(url: str) -> None:
    if not url.startswith("chdb://"):
        pytest.skip("needs the embedded engine")


# --- Topology ------------------------------------------------------------------------------------


def test_single_node_fails_replicated_and_replicas_min_and_passes_replicas_max(langsmith):
    url, _, _ = langsmith
    clients = _clients(url)
    rep = _run("clickhouse.replicated", clients)
    assert rep.status is Status.FAIL and "single node" in rep.summary
    assert rep.observed["unreplicated"] == ["feedbacks", "runs"]  # schema_migrations is bookkeeping
    low = _run("clickhouse.replicas_min", clients)
    assert low.status is Status.FAIL and "1 replica(s) per shard, below the minimum of 3" in low.summary
    assert _run("clickhouse.replicas_max", clients).status is Status.PASS


def test_cluster_missing_from_system_clusters_fails_topology_and_names_it_elsewhere(langsmith):
    url, _, _ = langsmith
    clients = _clients(url, cluster="replicated")
    rep = _run("clickhouse.replicated", clients)
    assert rep.status is Status.FAIL and "'replicated' is not defined in system.clusters" in rep.summary
    # Per-replica reads cannot run on an undefined cluster: unknown with a reason naming the setting.
    with pytest.raises(LsreadyError, match=r"cluster 'replicated' is not defined.*clickhouse.cluster"):
        _run("clickhouse.disk_usage", clients)


def _topology(replicas_per_shard: int, **replica: Any) -> Topology:
    state = {"is_readonly": False, "total_replicas": replicas_per_shard, "queue_size": 0, "absolute_delay": 0}
    state |= {"active_replicas": replicas_per_shard} | replica
    return Topology(
        database="default",
        cluster="replicated",
        cluster_defined=True,
        shards={1: tuple(f"ch-{n}" for n in range(replicas_per_shard))},
        engines={"runs": "ReplicatedReplacingMergeTree", "schema_migrations": "MergeTree"},
        replicas=(ReplicaState(table="runs", engine="ReplicatedReplacingMergeTree", **state),),
    )


def test_replication_grading_of_a_healthy_lagging_and_down_cluster():
    # A passing replicated state needs ClickHouse Keeper, which the embedded engine cannot run
    # (its test Keeper leaves replicas read-only: see the server test), so grading is shown on data.
    assert grade_replication(_topology(3), 300)[0] is Status.PASS
    status, text = grade_replication(_topology(3, active_replicas=2), 300)
    assert status is Status.WARN and "Only 2 of 3 replicas" in text
    assert grade_replication(_topology(3, absolute_delay=900), 300)[0] is Status.WARN
    assert grade_replication(_topology(3, is_readonly=True), 300)[0] is Status.FAIL
    assert grade_replication(_topology(1), 300)[0] is Status.FAIL


# --- Permissions ---------------------------------------------------------------------------------


def test_permissions_without_show_row_policies_is_unknown_naming_the_grant(langsmith):
    url, _, _ = langsmith
    # The embedded default user may write everywhere but may not list row policies.
    with pytest.raises(MissingPrivilege, match=r"lacks SHOW ROW POLICIES ON \*\.\*"):
        _run("clickhouse.permissions", _clients(url))


def test_grant_parsing_reads_the_engines_own_show_grants_output(langsmith):
    _, admin, db = langsmith
    grants, _ = parse_grants([r[0] for r in admin.query("SHOW GRANTS").result_rows])
    assert {privilege_state(grants, p, db) for p in ("SELECT", "INSERT", "ALTER", "CREATE")} == {"granted"}
    # Shapes SHOW GRANTS prints for other users: expanded database grants, partial revokes, roles.
    expanded = "GRANT SELECT, INSERT, ALTER TABLE, ALTER VIEW, CREATE TABLE, CREATE VIEW ON `ls`.* TO ls"
    grants, _ = parse_grants([expanded, "REVOKE INSERT ON ls.runs FROM ls", "GRANT reader, writer TO ls"])
    assert privilege_state(grants, "ALTER", "ls") == "granted"
    assert privilege_state(grants, "INSERT", "ls") == "partial"
    assert privilege_state(grants, "DROP", "ls") == "missing"
    assert parse_grants(["GRANT reader, writer TO ls"])[1] == ["reader", "writer"]
    table_only, _ = parse_grants(["GRANT SELECT(id, name), INSERT ON ls.runs TO ls"])
    assert privilege_state(table_only, "SELECT", "ls") == "partial"


# --- Node size -----------------------------------------------------------------------------------


def test_node_size_fails_below_the_baseline_and_passes_at_it(langsmith):
    url, _, _ = langsmith
    clients = _clients(url)
    seen = _run("clickhouse.node_size", clients, min_cpus=1, min_memory_gib=0.5)
    assert seen.status is Status.PASS
    (node,) = seen.observed["nodes"]
    # The embedded engine has no asynchronous_metrics: the summary names the fallback signal used.
    assert "max_threads = auto(" in node["cpu_source"] and "from max_threads" in seen.summary
    bigger = _run("clickhouse.node_size", clients, min_cpus=node["cpus"] + 1, min_memory_gib=0.5)
    assert bigger.status is Status.FAIL and "below the" in bigger.summary


# --- Disk usage ----------------------------------------------------------------------------------


def test_disk_usage_fails_when_any_disk_is_over_the_ratio_and_passes_under_it(langsmith):
    url, _, _ = langsmith
    clients = _clients(url)
    full = _run("clickhouse.disk_usage", clients, warn_ratio=0.0, fail_ratio=0.0)
    assert full.status is Status.FAIL and "full" in full.summary and "fail 0%" in full.summary
    roomy = _run("clickhouse.disk_usage", clients, warn_ratio=1.01, fail_ratio=1.02)
    assert roomy.status is Status.PASS
    assert roomy.observed["system_logs_bytes"] == {}  # the embedded engine keeps no system logs


# --- Part pressure -------------------------------------------------------------------------------


def test_part_pressure_passes_then_warns_then_fails_as_merges_stop_and_parts_pile_up(langsmith):
    url, admin, db = langsmith
    # A LangSmith table with low limits, as a table-level SETTINGS clause overrides the server's.
    admin.command(
        f"CREATE TABLE `{db}`.runs_tags (run_id UInt64, tag String) ENGINE = MergeTree ORDER BY run_id "
        "SETTINGS parts_to_delay_insert = 10, parts_to_throw_insert = 20"
    )
    admin.command(f"INSERT INTO `{db}`.runs_tags VALUES (0, 'a')")
    clients = _clients(url)
    calm = _part_pressure(clients)
    assert calm.status is Status.PASS
    tags = next(t for t in calm.observed["tables"] if t["table"] == "runs_tags")
    assert (tags["delay_at"], tags["throw_at"]) == (10, 20)
    assert calm.observed["parts_to_delay_insert_default"] == 1000  # merge_tree_settings, not the table's
    admin.command(f"SYSTEM STOP MERGES `{db}`.runs_tags")
    for n in range(1, 5):
        admin.command(f"INSERT INTO `{db}`.runs_tags VALUES ({n}, 'a')")
    busy = _part_pressure(clients)
    assert busy.status is Status.WARN and "runs_tags" in busy.summary and "5 active parts" in busy.summary
    for n in range(5, 10):
        admin.command(f"INSERT INTO `{db}`.runs_tags VALUES ({n}, 'a')")
    jammed = _part_pressure(clients)
    assert jammed.status is Status.FAIL and "inserts are being delayed" in jammed.summary
    assert jammed.observed["worst"]["parts"] == 10
    # A leading indicator of saturation: the concurrency item says it too.
    leading = _run("clickhouse.concurrency", clients)
    assert leading.status is Status.FAIL and "runs_tags" in leading.summary and "delayed" in leading.summary


def test_unfinished_mutation_older_than_the_limit_is_reported_stuck(langsmith):
    url, admin, db = langsmith
    admin.command(
        f"CREATE TABLE `{db}`.runs_tags (run_id UInt64, tag String) ENGINE = MergeTree ORDER BY run_id"
    )
    admin.command(f"INSERT INTO `{db}`.runs_tags VALUES (1, 'a')")
    admin.command(f"SYSTEM STOP MERGES `{db}`.runs_tags")  # also holds mutations back
    # The embedded engine defaults to mutations_sync = 1, which would wait for the stopped merges.
    admin.command(f"ALTER TABLE `{db}`.runs_tags UPDATE tag = 'b' WHERE 1", settings={"mutations_sync": 0})
    clients = _clients(url)
    assert _part_pressure(clients).observed["stuck_mutations"] == []  # younger than 30 min
    stuck = _part_pressure(clients, stuck=0)
    assert stuck.status is Status.WARN and "1 mutation(s) are unfinished" in stuck.summary
    assert "UPDATE tag" in stuck.observed["stuck_mutations"][0]["command"]


def test_table_part_limits_read_the_engines_engine_full(langsmith):
    _, admin, db = langsmith
    admin.command(
        f"CREATE TABLE `{db}`.runs_tags (x UInt8) ENGINE = MergeTree ORDER BY x "
        "SETTINGS parts_to_throw_insert = 7"
    )
    full = admin.query(
        f"SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'runs_tags'"
    )
    assert table_part_limits(full.result_rows[0][0], 1000, 3000) == (1000, 7)


# --- Concurrency ---------------------------------------------------------------------------------


def test_concurrency_passes_idle_and_fails_while_another_query_runs(langsmith):
    url, _, _ = langsmith
    _embedded_only(url)
    clients = _clients(url)
    idle = _run("clickhouse.concurrency", clients, warn_queries=1, fail_queries=1)
    assert idle.status is Status.PASS and "running 0 queries" in idle.summary
    assert "P95 unknown: system.query_log is not enabled" in idle.summary
    assert idle.observed["part_pressure"]["table"] == "runs" and "uptime_s" in idle.observed["io"]
    # A second handle on the same engine runs concurrently (the session's client would serialize).
    # The query runs until it is killed below, so however slow this machine, it is running when read.
    other = clickhouse_connect.get_client(dsn=url.split("?")[0])
    mark = "lsr-concurrency"
    slow = f"SELECT sleepEachRow(0.5), '{mark}' FROM numbers(240) SETTINGS max_block_size = 1"
    sleeper = threading.Thread(target=_until_killed, args=(other, slow), daemon=True)
    sleeper.start()

    def busy_reading() -> Evidence | None:
        ev = _run("clickhouse.concurrency", clients, warn_queries=1, fail_queries=1)
        return ev if ev.status is not Status.PASS else None

    try:
        busy = wait_until(busy_reading, what="the running query counted")
        assert busy.status is Status.FAIL and "running 1 queries" in busy.summary
    finally:
        # The mark split in two, so the KILL statement does not match itself.
        killer = clickhouse_connect.get_client(dsn=url.split("?")[0])
        killer.command(f"KILL QUERY WHERE position(query, concat('lsr-', '{mark[4:]}')) > 0 SYNC")
        killer.close()
        sleeper.join(10)
        other.close()
    assert not sleeper.is_alive()


def _until_killed(client: Any, query: str) -> None:
    with contextlib.suppress(Exception):  # QUERY_WAS_CANCELLED: what the test does to end it
        client.query(query)


# --- Diagnostics and timeouts without query_log --------------------------------------------------


def test_system_tables_warns_when_query_log_is_not_enabled(langsmith):
    url, _, _ = langsmith
    _embedded_only(url)
    ev = _run("clickhouse.system_tables", _clients(url))
    assert ev.status is Status.WARN and ev.summary.startswith("system.query_log is not enabled")
    assert ev.observed["tables"]["system.parts"] == "readable"


def test_system_tables_fails_naming_the_grant_when_a_table_is_denied(langsmith, monkeypatch):
    url, _, _ = langsmith
    # Every system table the probe reads is open to the embedded user; row_policies is not, so the
    # denial and its message come from the engine itself.
    monkeypatch.setitem(DIAG_TABLES, "system.row_policies", "SELECT 1 FROM {src} LIMIT 1")
    ev = _run("clickhouse.system_tables", _clients(url))
    assert ev.status is Status.FAIL and "cannot read system.row_policies" in ev.summary
    assert "grant SHOW ROW POLICIES ON *.*" in ev.summary


def test_timeouts_without_query_log_are_unknown_with_the_reason(langsmith):
    url, _, _ = langsmith
    _embedded_only(url)
    with pytest.raises(TableAbsent, match=r"system.query_log is not enabled on this server; enable it"):
        _run("clickhouse.timeouts_not_masking", _clients(url))


# --- Runs: tenant volume and ingestion delay -----------------------------------------------------


def _insert_runs(admin: Any, db: str, tenant: int, rows: int, age_s: int, delay_s: float) -> None:
    admin.command(
        f"INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, status, "
        "start_time, inputs, outputs, extra, inserted_at, trace_first_received_at) "
        "SELECT generateUUIDv4(), generateUUIDv4(), "
        f"toUUID('00000000-0000-0000-0000-0000000000{tenant:02d}'), generateUUIDv4(), "
        "true, 'llm', 'llm', 'success', "
        f"now64(6) - toIntervalSecond({age_s}), '{{}}', '{{}}', '{{}}', "
        f"now64(6) - toIntervalSecond({age_s}) + toIntervalMillisecond({int(delay_s * 1000)}), "
        f"now64(6) - toIntervalSecond({age_s}) FROM numbers({rows})"
    )


def test_tenant_volume_is_manual_and_ranks_only_the_last_day(langsmith):
    url, admin, db = langsmith
    _insert_runs(admin, db, tenant=9, rows=5000, age_s=3 * 86400, delay_s=1)  # busier, but 3 days ago
    ev = _run("clickhouse.tenant_volume", _clients(url))
    assert ev.status is Status.MANUAL and "confirm usage limits" in ev.summary
    assert ev.observed["time_column"] == "start_time"  # discovered from the partition key
    tenants = [t["tenant_id"] for t in ev.observed["top_tenants"]]
    assert len(tenants) == 3 and not any(t.endswith("09") for t in tenants)
    assert sum(t["runs"] for t in ev.observed["top_tenants"]) == 2000 and not ev.observed["sampled"]
    assert ev.observed["parts"]["complete"] and "sample" not in ev.summary


def test_tenant_volume_over_its_row_limit_says_it_ranks_a_sample_of_the_freshest_parts(langsmith):
    url, admin, db = langsmith
    admin.command(f"SYSTEM STOP MERGES `{db}`.runs")
    _insert_runs(admin, db, tenant=7, rows=50, age_s=10, delay_s=1)  # a small, fresh insert
    capped = _run("clickhouse.tenant_volume", _clients(url), max_rows=100)
    assert capped.observed["sampled"] and capped.observed["runs_counted"] == 50
    assert [t["tenant_id"][-2:] for t in capped.observed["top_tenants"]] == ["07"]
    assert "in a sample of" in capped.summary and "not the whole window" in capped.summary
    assert "the 1 smallest of 2 parts, 50 of 2050 rows" in capped.summary
    # Smaller than every part: nothing can be read within the limit, and it says so.
    with pytest.raises(ReadLimitHit, match="larger than the read limit of 10 rows"):
        _run("clickhouse.tenant_volume", _clients(url), max_rows=10)


def test_tenant_volume_without_runs_table_is_unknown(clickhouse):
    url, _, db = clickhouse
    with pytest.raises(TableAbsent, match=rf"{db}\.runs does not exist"):
        _run("clickhouse.tenant_volume", _clients(url))


def test_a_runs_table_without_parts_is_never_scanned(clickhouse):
    url, admin, db = clickhouse
    admin.command(
        f"CREATE TABLE `{db}`.runs (id UUID, tenant_id UUID, start_time DateTime64(6, 'UTC'), "
        "inserted_at DateTime64(6, 'UTC'), trace_first_received_at Nullable(DateTime64(6, 'UTC'))) "
        "ENGINE = Memory"
    )
    clients = _clients(url)
    with pytest.raises(LsreadyError, match=rf"{db}\.runs is a Memory table, not a MergeTree one"):
        _delay(clients.clickhouse)
    with pytest.raises(LsreadyError, match="will not scan it unbounded"):
        _run("clickhouse.tenant_volume", clients)


def test_ingestion_delay_measures_trace_first_received_to_inserted(langsmith):
    url, admin, db = langsmith
    clients = _clients(url)
    d = _delay(clients.clickhouse)
    # build_clickhouse inserts each run 200-999 ms after it was received.
    assert d["source"] == "inserted_at - trace_first_received_at" and d["complete"]
    assert d["rows"] > 0 and 0.2 <= d["p50_s"] <= d["p95_s"] < 1.0
    assert _delay_probe(clients).status is Status.PASS
    _insert_runs(admin, db, tenant=4, rows=20_000, age_s=30, delay_s=120)  # a backlog: 2 min late
    late = _delay_probe(clients)
    assert late.status is Status.WARN and late.observed["p95_s"] == pytest.approx(120, abs=1)


def test_ingestion_delay_prefers_received_at_when_runs_has_it(langsmith):
    url, admin, db = langsmith
    admin.command(f"ALTER TABLE `{db}`.runs ADD COLUMN received_at Nullable(DateTime64(6, 'UTC'))")
    d = _delay(_clients(url).clickhouse)
    assert d["source"] == "inserted_at - received_at" and d["rows"] == 0  # no row has it yet
    assert d["complete"]  # every part written in the window was read: none has it, provably


def _partition_with_history(admin: Any, db: str) -> None:
    """Many older runs share the fresh runs' partition: 300k inserted 50 min ago, 2000 fresh ones."""
    build_clickhouse(admin, db, runs=0)
    admin.command(f"SYSTEM STOP MERGES `{db}`.runs")  # keep the two parts apart
    _insert_runs(admin, db, tenant=1, rows=300_000, age_s=3000, delay_s=1)
    _insert_runs(admin, db, tenant=2, rows=2000, age_s=60, delay_s=60)


def test_ingestion_delay_under_a_small_row_limit_is_right_or_says_it_is_a_sample(clickhouse):
    url, admin, db = clickhouse
    _partition_with_history(admin, db)
    clients = _clients(url)
    full = _delay(clients.clickhouse, max_rows=1_000_000)
    assert (full["rows"], full["p95_s"], full["complete"]) == (2000, 60.0, True)
    # A 50k-row limit: the old 'break' read spent it on the 300k older rows and saw nothing.
    capped = _delay(clients.clickhouse, max_rows=50_000)
    assert (capped["rows"], capped["p95_s"]) == (2000, 60.0)
    assert capped["sampled"] and capped["parts"] == {
        "parts_read": 1,
        "parts_total": 2,
        "rows_in_parts_read": 2000,
        "rows_in_parts_total": 302_000,
        "max_rows": 50_000,
        "complete": False,
    }
    ev = _delay_probe(clients, max_rows=50_000)
    assert ev.status is Status.WARN and "p95 60 s" in ev.summary
    assert "a sample of the freshest inserts: the 1 smallest of 2 parts" in ev.summary
    assert "No runs" not in ev.summary and "not reaching" not in ev.summary
    # A limit below every part: nothing is read, and that is an error, not "no runs".
    with pytest.raises(ReadLimitHit, match="larger than the read limit of 1000 rows"):
        _delay(clients.clickhouse, max_rows=1000)


def test_no_runs_in_a_complete_read_warns_and_in_a_partial_read_is_unknown(clickhouse):
    url, admin, db = clickhouse
    build_clickhouse(admin, db, runs=0)
    admin.command(f"SYSTEM STOP MERGES `{db}`.runs")
    clients = _clients(url)
    _insert_runs(admin, db, tenant=2, rows=50, age_s=3000, delay_s=1)  # written now, inserted_at old
    none = _delay_probe(clients, max_rows=1000)
    assert none.status is Status.WARN and none.observed["complete"] and none.observed["rows"] == 0
    assert (
        "No runs were inserted" in none.summary and "every part written in that time was read" in none.summary
    )
    _insert_runs(admin, db, tenant=1, rows=300, age_s=30, delay_s=5)  # fresh runs, in a bigger part
    partial = _delay_probe(clients, max_rows=100)  # reads only the 50-row part
    assert partial.status is Status.UNKNOWN and partial.observed["rows"] == 0
    assert "this does not mean no runs arrived" in partial.summary
    assert "No runs were inserted" not in partial.summary and "not reaching" not in partial.summary
    whole = _delay_probe(clients, max_rows=1000)
    assert whole.status is Status.PASS and whole.observed["rows"] == 300 and whole.observed["p95_s"] == 5


def test_a_server_that_does_not_prune_parts_is_a_read_limit_not_an_empty_answer(langsmith, monkeypatch):
    url, _, _ = langsmith
    clients = _clients(url)
    original = type(clients.clickhouse).query

    def query(self: Any, probe: str, sql: str, parameters: Any = None) -> Any:
        if "_part IN (SELECT arrayJoin(chosen))" in sql:
            assert "read_overflow_mode = 'throw'" in sql
            raise RuntimeError(
                "Code: 158. DB::Exception: Limit for rows or bytes to read exceeded (TOO_MANY_ROWS)"
            )
        return original(self, probe, sql, parameters)

    monkeypatch.setattr(type(clients.clickhouse), "query", query)
    with pytest.raises(ReadLimitHit, match="would pass the read limit of 5000000 rows"):
        _delay_probe(clients)


# --- Every probe, and no writes ------------------------------------------------------------------


def _every_probe(clients: Clients) -> dict[str, Evidence | BaseException]:
    out: dict[str, Evidence | BaseException] = {}
    for name, fn in chp.PROBES.items():
        try:
            out[name] = fn(clients, _params(name))
        except EXPECTED_ERRORS as exc:
            out[name] = exc
    return out


def test_every_probe_query_runs_on_the_real_engine_with_a_langsmith_schema(langsmith):
    url, _, _ = langsmith
    clients = _clients(url)
    results = _every_probe(clients)
    assert set(results) == set(chp.PROBES)
    # Without SHOW ROW POLICIES and query_log, these two can only say why they cannot tell.
    unknowable = {"clickhouse.permissions", "clickhouse.timeouts_not_masking"}
    for name, result in results.items():
        assert isinstance(result, EXPECTED_ERRORS if name in unknowable else Evidence), (name, result)
        assert str(getattr(result, "summary", result)).strip(), name
    assert part_pressure(clients.clickhouse, stuck_after_minutes=30).tables
    assert _delay(clients.clickhouse)["rows"] > 0
    # Every probe a catalog item names exists, and every item bound here is a ClickHouse probe.
    assert {i.probe for i in CATALOG.items if i.probe and i.probe.startswith("clickhouse.")} <= set(
        chp.PROBES
    )


def _snapshot(admin: Any, db: str) -> tuple[list[Any], list[Any]]:
    parts = admin.query(
        "SELECT table, name, rows, modification_time FROM system.parts "
        "WHERE database = {db:String} AND active ORDER BY table, name",
        parameters={"db": db},
    ).result_rows
    tables = admin.query(
        "SELECT name, engine_full, metadata_modification_time FROM system.tables "
        "WHERE database = {db:String} ORDER BY name",
        parameters={"db": db},
    ).result_rows
    return parts, tables


def test_clickhouse_probes_write_nothing(langsmith):
    url, admin, db = langsmith
    before = _snapshot(admin, db)
    _every_probe(_clients(url))
    _delay(_clients(url).clickhouse)
    assert _snapshot(admin, db) == before


# --- Grants file ---------------------------------------------------------------------------------


def _grant_statements() -> list[str]:
    text = "\n".join(line for line in GRANTS_SQL.read_text().splitlines() if not line.startswith("--"))
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def test_grants_file_parses_with_the_engines_parser_and_grants_only_reads(clickhouse):
    _, admin, _ = clickhouse
    statements = _grant_statements()
    for stmt in statements:
        formatted = admin.query("SELECT formatQuery({q:String})", parameters={"q": stmt}).result_rows[0][0]
        assert formatted.split()[0] == stmt.split()[0], stmt
    privileges = set()
    for stmt in statements:
        match = re.match(r"GRANT (.+) ON \S+ TO lsready_reader$", stmt)
        if match:
            privileges |= set(split_privileges(match.group(1)))
    allowed = {"SELECT", "SHOW ROW POLICIES", "SHOW USERS", "SHOW ROLES", "SHOW TABLES", "SHOW COLUMNS",
               "REMOTE", "CREATE TEMPORARY TABLE"}  # fmt: skip
    assert privileges <= allowed
    assert any("readonly = 2" in s for s in statements)


# --- A server-like engine in a subprocess: query_log, a cluster, users and row policies ----------

SERVER_CONFIG = """<clickhouse>
  <!-- Declared, never bound (the embedded engine listens on nothing): it makes 'localhost' the local
       replica of cluster 'three'; the other two replicas refuse connections, like replicas that are down. -->
  <tcp_port>39017</tcp_port>
  <query_log><database>system</database><table>query_log</table>
    <flush_interval_milliseconds>100</flush_interval_milliseconds></query_log>
  <part_log><database>system</database><table>part_log</table>
    <flush_interval_milliseconds>100</flush_interval_milliseconds></part_log>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <macros><shard>s1</shard><replica>r1</replica></macros>
  <remote_servers><three><shard><internal_replication>true</internal_replication>
    <replica><host>localhost</host><port>39017</port></replica>
    <replica><host>127.0.0.2</host><port>39017</port></replica>
    <replica><host>127.0.0.3</host><port>39017</port></replica>
  </shard></three></remote_servers>
  <user_directories replace="replace"><users_xml><path>{users}</path></users_xml></user_directories>
</clickhouse>
"""

USERS = """<clickhouse>
  <profiles><default></default><lsready><readonly>2</readonly><max_execution_time>30</max_execution_time></lsready></profiles>
  <quotas><default></default></quotas>
  <users>
    <default><password></password><networks><ip>::/0</ip></networks><quota>default</quota>{default}</default>
    <langsmith><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
      <grants><query>GRANT SELECT, INSERT, ALTER, CREATE, DROP ON default.*</query></grants>
      <databases><default><runs><filter>is_root</filter></runs></default></databases>
    </langsmith>
    <ingest_only><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
      <grants><query>GRANT SELECT ON default.*</query></grants>
    </ingest_only>
  </users>
</clickhouse>
"""
ADMIN = "<profile>default</profile><access_management>1</access_management>"


def _lsready_user() -> str:
    """The default user with exactly the role's grants from deploy/grants/clickhouse.sql."""
    grants = [
        f"<query>GRANT {m.group(1)} ON {m.group(2)}</query>"
        for s in _grant_statements()
        if (m := re.match(r"GRANT (.+) ON (\S+) TO lsready_reader$", s))
    ]
    return f"<profile>lsready</profile><grants>{''.join(grants)}</grants>"


def _server_phase(data: str, phase: str) -> None:
    """Run in a subprocess: open the configured engine, play one phase, print results as JSON."""
    import chdb

    engine = chdb.connect(f"{data}?config-file={data}/config.xml")  # keeps the configured engine open
    url = f"chdb://{data}?database=default"
    admin = clickhouse_connect.get_client(dsn=f"chdb://{data}")
    out: dict[str, Any] = {}

    def probe(key: str, name: str, cluster: str | None = "three", **override: Any) -> None:
        try:
            ev = chp.PROBES[name](_clients(url, cluster), _params(name, **override))
            out[key] = {"status": ev.status.value, "summary": ev.summary, "observed": ev.observed}
        except Exception as exc:
            out[key] = {"raised": type(exc).__name__, "reason": str(exc)}

    if phase == "admin":
        build_clickhouse(admin, "default", runs=500)
        _insert_runs(admin, "default", tenant=9, rows=5000, age_s=3 * 86400, delay_s=1)
        probe("replicas_min_plain", "clickhouse.replicas_min")  # before any Replicated table exists
        admin.command(
            "CREATE TABLE default.runs_trace_id (trace_id UUID, run_id UUID) ENGINE = "
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/default/runs_trace_id', '{replica}') "
            "ORDER BY trace_id"
        )
        admin.command("SYSTEM FLUSH LOGS")
        probe("timeouts_before", "clickhouse.timeouts_not_masking")
        for _ in range(4):
            admin.query("-- trace_query\nSELECT sleep(0.3)")
        _time_out(admin)
        probe("tenant_volume", "clickhouse.tenant_volume")
        admin.command("SYSTEM FLUSH LOGS")
        probe("timeouts_after", "clickhouse.timeouts_not_masking")
        probe("p95_default", "clickhouse.concurrency")
        probe("p95_low", "clickhouse.concurrency", p95_warn_s=0.1, p95_fail_s=100)
        probe("system_tables", "clickhouse.system_tables", cluster=None)
        probe("system_tables_cluster", "clickhouse.system_tables")
        probe("disk_logs", "clickhouse.disk_usage", cluster=None, warn_ratio=1.01, fail_ratio=1.02,
              system_logs_warn_share=0.0)  # fmt: skip
        probe("disk_cluster", "clickhouse.disk_usage", warn_ratio=1.01, fail_ratio=1.02)
        probe("replicated", "clickhouse.replicated")
        probe("replicas_min", "clickhouse.replicas_min")
        probe("replicas_max", "clickhouse.replicas_max")
        probe("replicas_max_2", "clickhouse.replicas_max", max=2)
        probe("permissions_self", "clickhouse.permissions")
        probe("permissions_langsmith", "clickhouse.permissions", langsmith_user="langsmith")
        probe("permissions_ingest_only", "clickhouse.permissions", langsmith_user="ingest_only")
        admin.command("SYSTEM FLUSH LOGS")
        out["tenant_volume_read_rows"] = admin.query(
            "SELECT max(read_rows) FROM system.query_log WHERE type = 'QueryFinish' "
            "AND log_comment = 'lsready:tenant_volume' AND query LIKE '%count()%'"
        ).result_rows[0][0]
    else:
        # query_log starts empty in each process of the embedded engine: time out once more, as
        # lsready's user, and wait for the 100 ms flush interval to write it (this user may not FLUSH LOGS).
        _time_out(admin)
        watcher = clickhouse_connect.get_client(dsn=f"chdb://{data}")  # a handle of its own: a fresh stream
        logged = f"SELECT count() FROM system.query_log WHERE exception_code = {TIMEOUT_EXCEEDED}"
        wait_until(lambda: watcher.query(logged).result_rows[0][0], what="the timeout in system.query_log")
        for name in chp.PROBES:
            probe(name, name)
        probe("permissions_langsmith", "clickhouse.permissions", langsmith_user="langsmith")
        try:
            admin.query("SELECT count() FROM default.feedbacks")
            out["feedbacks"] = "readable"
        except Exception as exc:
            out["feedbacks"] = f"code {error_code(exc)}"
    print("RESULT " + json.dumps(out, default=str))
    sys.stdout.flush()
    del engine
    os._exit(0)  # the test Keeper's threads can hang an orderly interpreter exit


def _time_out(admin: Any) -> None:
    """Run a LangSmith-tagged query that hits max_execution_time (TIMEOUT_EXCEEDED, code 159)."""
    try:
        admin.query(
            "-- runs_query\nSELECT sleepEachRow(0.2) FROM numbers(20) SETTINGS max_block_size = 1",
            settings={"max_execution_time": 1},
        )
    except Exception as exc:
        assert error_code(exc) == TIMEOUT_EXCEEDED, exc
    else:
        raise AssertionError("the query was meant to time out")


def _phase(data: Path, users: str, phase: str) -> dict[str, Any]:
    (data / "users.xml").write_text(USERS.format(default=users))
    (data / "config.xml").write_text(SERVER_CONFIG.format(users=data / "users.xml"))
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from test_probes_clickhouse import _server_phase
        _server_phase({str(data)!r}, {phase!r})
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=data, capture_output=True, text=True, timeout=90, check=False
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"phase {phase} failed: {proc.stderr[-3000:]}"
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def server(tmp_path_factory, clickhouse_base) -> dict[str, dict[str, Any]]:
    if not clickhouse_base[0].startswith("chdb://"):
        pytest.skip("needs the embedded engine")
    data = tmp_path_factory.mktemp("chserver")
    return {"admin": _phase(data, ADMIN, "admin"), "lsready": _phase(data, _lsready_user(), "lsready")}


def test_timeouts_pass_with_none_and_warn_after_a_query_hits_max_execution_time(server):
    before, after = server["admin"]["timeouts_before"], server["admin"]["timeouts_after"]
    assert before["status"] == "pass" and before["observed"]["timeouts"] == 0
    assert after["status"] == "warn" and after["observed"]["timeouts"] == 1
    assert "timeouts are cutting slow queries" in after["summary"]
    assert after["observed"]["top_kinds"] == [{"kind": "runs_query", "count": 1}]
    assert after["observed"]["max_execution_time"] == "1"


def test_p95_query_duration_from_query_log_grades_concurrency(server):
    default, low = server["admin"]["p95_default"], server["admin"]["p95_low"]
    assert default["status"] == "pass" and default["observed"]["latency"]["queries"] >= 4
    assert 0.29 <= low["observed"]["latency"]["p95_s"] < 2
    assert low["status"] == "warn" and "P95 query duration over 60 min" in low["summary"]


def test_system_tables_pass_with_query_log_and_warn_for_silent_replicas(server):
    local, cluster = server["admin"]["system_tables"], server["admin"]["system_tables_cluster"]
    assert local["status"] == "pass" and set(local["observed"]["tables"].values()) == {"readable"}
    assert cluster["status"] == "warn" and "2 of 3 replicas did not answer" in cluster["summary"]


def test_system_logs_share_of_disk_warns_over_its_limit(server):
    logs = server["admin"]["disk_logs"]
    assert logs["status"] == "warn" and "system log tables take" in logs["summary"]
    assert "query_log" in next(iter(logs["observed"]["system_logs_bytes"].values()))
    cluster = server["admin"]["disk_cluster"]
    assert cluster["observed"]["replicas_answered"] == 1 and cluster["observed"]["replicas_expected"] == 3


def test_three_replica_cluster_with_unreplicated_tables_and_no_active_replica(server):
    admin = server["admin"]
    plain = admin["replicas_min_plain"]
    assert plain["status"] == "pass" and "3 replicas per shard, meeting the minimum of 3" in plain["summary"]
    # Then a Replicated table appears whose only replica is read-only: no replica of it is active.
    low = admin["replicas_min"]
    assert low["status"] == "warn" and "3 replicas per shard but only 0 are active" in low["summary"]
    assert admin["replicas_max"]["status"] == "pass"
    assert (
        admin["replicas_max_2"]["status"] == "fail"
        and "above the guardrail of 2" in admin["replicas_max_2"]["summary"]
    )
    rep = admin["replicated"]
    assert rep["status"] == "fail" and "are not Replicated (feedbacks, runs)" in rep["summary"]
    # The test Keeper leaves the one Replicated table read-only: a real, visible replica fault.
    assert rep["observed"]["readonly"] == ["runs_trace_id"]


def test_permissions_pass_warn_on_row_policy_and_fail_on_missing_privileges(server):
    admin = server["admin"]
    assert admin["permissions_self"]["status"] == "pass"
    warn = admin["permissions_langsmith"]
    assert warn["status"] == "warn" and "row policy filters LangSmith tables" in warn["summary"]
    assert warn["observed"]["row_policies"][0]["table"] == "runs"
    fail = admin["permissions_ingest_only"]
    assert fail["status"] == "fail" and "lacks INSERT, ALTER, CREATE" in fail["summary"]


def test_tenant_volume_reads_only_recent_partitions(server):
    assert server["admin"]["tenant_volume"]["status"] == "manual"
    # 500 recent runs and 5000 three days old: the part choice and the time filter skip the old ones
    # (the few rows on top are system.parts, read to choose the parts).
    assert 500 <= server["admin"]["tenant_volume_read_rows"] <= 500 + 10


def test_every_probe_runs_as_the_lsready_user_with_only_the_shipped_grants(server):
    lsready, admin = server["lsready"], server["admin"]
    denied = {k: v["reason"] for k, v in lsready.items() if isinstance(v, dict) and v.get("raised")}
    # Its own grants are not LangSmith's: checked only once it is told LangSmith's user.
    assert "cannot write, so not LangSmith's" in denied.pop("clickhouse.permissions")
    assert denied == {}, denied
    assert lsready["feedbacks"] == f"code {ACCESS_DENIED}"  # the grants are really enforced
    # SHOW TABLES on the database keeps every LangSmith table visible; SHOW USERS / ROW POLICIES
    # let it read LangSmith's grants and policies.
    assert lsready["clickhouse.replicated"]["observed"]["tables"] == admin["replicated"]["observed"]["tables"]
    assert lsready["permissions_langsmith"]["status"] == "warn"
    assert lsready["clickhouse.system_tables"]["observed"]["tables"]["system.query_log"] == "readable"
    assert lsready["clickhouse.timeouts_not_masking"]["status"] == "warn"
