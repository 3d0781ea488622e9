"""`lsready preflight` on the real engines and offline cluster snapshots: every finding, both ways."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from cluster_objects import BLOB_ENV, TTL_ENV, production

from bot.cli import cli
from checks.model import Status
from conftest import make_config
from runbooks.demo.cluster import (
    FULLNAME,
    NS,
    RELEASE,
    deployment,
    hook_job,
    pvc,
    statefulset,
    storageclass,
    write_snapshot,
)
from runbooks.demo.schema import build_clickhouse, push_saq_jobs
from runbooks.preflight import STEPS, Level, PreflightResult, Verdict, preflight
from runbooks.preflight.values import SERVICES

# The host's disk fill is not the subject of these tests: only the disk tests set real limits.
ROOMY_DISK = {"clickhouse.disk_usage": {"warn_ratio": 0.999, "fail_ratio": 0.9999}}


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[tuple[str, psycopg.Connection]]:
    """A fresh database with one alembic head, as LangSmith's migrations leave it; dropped after."""
    name = f"pf_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    conn.execute("INSERT INTO alembic_version VALUES ('a1b2c3d4e5f6')")
    yield url, conn
    conn.close()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def stores(clickhouse: tuple[str, Any, str], redis_client: Any, redis_url: str, pg_db: Any) -> dict[str, Any]:
    """Real ClickHouse (LangSmith's tables, clean migrations), Redis (empty queues) and PostgreSQL."""
    url, admin, db = clickhouse
    build_clickhouse(admin, db, runs=500)
    return {"ch_url": url, "ch": admin, "db": db, "redis_url": redis_url, "redis": redis_client, "pg": pg_db}


def _target(stores: dict[str, Any] | None, snapshot: Path | None) -> dict[str, Any]:
    target: dict[str, Any] = {}
    if stores is not None:
        target |= {
            "redis": {"url": stores["redis_url"]},
            "postgres": {"url": stores["pg"][0]},
            "clickhouse": {"url": stores["ch_url"]},
        }
    if snapshot is not None:
        target["kubernetes"] = {"namespace": NS, "release": RELEASE, "snapshot_dir": str(snapshot)}
    return target


def run(
    stores: dict[str, Any] | None,
    objects: dict[str, Any] | None,
    tmp_path: Path,
    thresholds: dict[str, Any] | None = None,
    **kwargs: Any,
) -> PreflightResult:
    snapshot = write_snapshot(objects, tmp_path / f"k8s-{uuid.uuid4().hex[:6]}") if objects else None
    config = make_config({"t": _target(stores, snapshot)}, thresholds={**ROOMY_DISK, **(thresholds or {})})
    return preflight(config, "t", **kwargs)


def ids(result: PreflightResult, level: Level | None = None) -> set[str]:
    return {f.id for s in result.steps for f in s.findings if level is None or f.level is level}


def step(result: PreflightResult, step_id: str) -> Any:
    return next(s for s in result.steps if s.step_id == step_id)


def harmless_values() -> dict[str, Any]:
    """The values a production install like `production()` runs with, re-applied unchanged."""
    values: dict[str, Any] = {
        "config": {
            "blobStorage": {"enabled": True, "bucketName": "langsmith-traces"},
            "ttl": {
                "enabled": True,
                "ttl_period_seconds": {"longlived": "34560000", "shortlived": "1209600"},
            },
        },
        "clickhouse": {"statefulSet": {"resources": {"requests": {"cpu": "8", "memory": "32Gi"}}}},
        "postgres": {"external": {"enabled": True, "host": "pg.example"}},
        "redis": {"external": {"enabled": True, "connectionUrl": "redis://redis.example:6379"}},
        "frontend": {"maxBodySize": "100M"},
    }
    for key in SERVICES.values():
        values.setdefault(key, {})["autoscaling"] = {"hpa": {"enabled": True}}
    return values


# --- Clean install -----------------------------------------------------------------------------


def test_clean_install_with_harmless_values_is_ready(stores: dict[str, Any], tmp_path: Path) -> None:
    result = run(
        stores,
        production(),
        tmp_path,
        new_values=harmless_values(),
        values_name="v.yaml",
        to_version="0.17.2",
    )
    assert result.verdict is Verdict.READY, [(s.step_id, s.status, s.summary) for s in result.steps]
    assert ids(result, Level.BLOCKING) == set() and ids(result, Level.WARNING) == set()
    assert [s.step_id for s in result.steps][:2] == ["versions", "notes"]
    assert (
        "LangSmith 0.12.0" in step(result, "versions").summary
        and "langsmith-0.17.0" in step(result, "versions").summary
    )
    assert "no destructive or risky change" in step(result, "values").summary
    # No backup shows in the embedded stores: said, as a note to confirm one, without blocking.
    assert {"backups.clickhouse", "backups.postgres"} <= ids(result, Level.NOTE)


def test_dirty_clickhouse_migration_row_is_not_ready(stores: dict[str, Any], tmp_path: Path) -> None:
    ch, db = stores["ch"], stores["db"]
    ch.command(f"INSERT INTO `{db}`.schema_migrations VALUES (126, 1, 126)")
    result = run(stores, production(), tmp_path)
    assert result.verdict is Verdict.NOT_READY
    (finding,) = step(result, "clickhouse-migrations").findings
    assert finding.level is Level.BLOCKING and "dirty at version 126" in finding.text
    assert "migrate ... force" in finding.action and "langsmith-backend-ch-migrations" in finding.action


def test_stuck_mutation_blocks_and_a_fresh_one_does_not(stores: dict[str, Any], tmp_path: Path) -> None:
    ch, db = stores["ch"], stores["db"]
    ch.command(
        f"CREATE TABLE `{db}`.runs_tags (run_id UInt64, tag String) ENGINE = MergeTree ORDER BY run_id"
    )
    ch.command(f"INSERT INTO `{db}`.runs_tags VALUES (1, 'a')")
    ch.command(f"SYSTEM STOP MERGES `{db}`.runs_tags")
    ch.command(f"ALTER TABLE `{db}`.runs_tags UPDATE tag = 'b' WHERE 1", settings={"mutations_sync": 0})
    fresh = run(stores, production(), tmp_path)  # younger than the catalog's 30 minutes
    assert "clickhouse.stuck_mutation" not in ids(fresh)
    stuck = run(stores, production(), tmp_path, {"postgres.migrations_tested": {"stuck_mutation_minutes": 0}})
    assert stuck.verdict is Verdict.NOT_READY
    (finding,) = [f for f in step(stuck, "clickhouse-work").findings if f.id == "clickhouse.stuck_mutation"]
    assert "runs_tags" in finding.text and "KILL MUTATION WHERE mutation_id" in finding.action


def test_part_pressure_warns_then_blocks_at_the_insert_limit(stores: dict[str, Any], tmp_path: Path) -> None:
    ch, db = stores["ch"], stores["db"]
    ch.command(
        f"CREATE TABLE `{db}`.runs_tags (run_id UInt64, tag String) ENGINE = MergeTree ORDER BY run_id "
        "SETTINGS parts_to_delay_insert = 10, parts_to_throw_insert = 20"
    )
    ch.command(f"SYSTEM STOP MERGES `{db}`.runs_tags")
    ch.command(f"INSERT INTO `{db}`.runs_tags VALUES (0, 'a')")
    assert "clickhouse.part_pressure" not in ids(run(stores, production(), tmp_path))
    for n in range(1, 6):
        ch.command(f"INSERT INTO `{db}`.runs_tags VALUES ({n}, 'a')")
    busy = run(stores, production(), tmp_path)
    assert (
        "clickhouse.part_pressure" in ids(busy, Level.WARNING) and busy.verdict is Verdict.READY_WITH_WARNINGS
    )
    for n in range(6, 10):
        ch.command(f"INSERT INTO `{db}`.runs_tags VALUES ({n}, 'a')")
    assert "clickhouse.part_pressure" in ids(run(stores, production(), tmp_path), Level.BLOCKING)


def test_backlog_that_would_outlive_redis_runs_expiry_blocks(stores: dict[str, Any], tmp_path: Path) -> None:
    r = stores["redis"]
    push_saq_jobs(r, "default", [time.time() - 60] * 3)
    young = run(stores, production(), tmp_path)
    assert ids(young) & {"redis.queue_expiry", "redis.queue_depth"} == set()
    # 21600 s expiry (the Deployments' REDIS_RUNS_EXPIRY_SECONDS) minus the 15 min restart window.
    r.flushdb()
    push_saq_jobs(r, "default", [time.time() - 21000, time.time() - 60], prefix="old")
    old = run(stores, production(), tmp_path)
    assert old.verdict is Verdict.NOT_READY
    (finding,) = [f for f in step(old, "queues").findings if f.id == "redis.queue_expiry"]
    assert "saq:default" in finding.text and "REDIS_RUNS_EXPIRY_SECONDS (21600" in finding.text
    assert "the Deployments' environment" in finding.text


def test_deep_queue_warns_at_the_catalog_queue_threshold(stores: dict[str, Any], tmp_path: Path) -> None:
    push_saq_jobs(stores["redis"], "default", [time.time() - 5] * 60)
    result = run(stores, production(), tmp_path)
    assert "redis.queue_depth" in ids(result, Level.WARNING) and "warn above 50" in str(result.to_dict())
    raised = run(stores, production(), tmp_path, {"redis.monitored": {"queue_warn": 100}})
    assert "redis.queue_depth" not in ids(raised)


def test_runs_expiry_comes_from_the_catalog_without_a_cluster(stores: dict[str, Any], tmp_path: Path) -> None:
    push_saq_jobs(stores["redis"], "default", [time.time() - 3000])
    result = run(stores, None, tmp_path, {"redis.monitored": {"runs_expiry_seconds": 3600}})
    (finding,) = [f for f in step(result, "queues").findings if f.id == "redis.queue_expiry"]
    assert "catalog redis.monitored" in finding.text


@pytest.mark.parametrize(
    ("rows", "blocks"),
    [(["a1b2c3d4e5f6"], False), (["a1b2c3d4e5f6", "0f9e8d7c6b5a"], True), ([], True)],
    ids=["single-head", "two-heads", "empty"],
)
def test_postgres_must_be_at_a_single_alembic_head(
    stores: dict[str, Any], tmp_path: Path, rows: list[str], blocks: bool
) -> None:
    conn = stores["pg"][1]
    conn.execute("DELETE FROM alembic_version")
    for row in rows:
        conn.execute("INSERT INTO alembic_version VALUES (%s)", [row])
    result = run(stores, production(), tmp_path)
    assert ("postgres.migrations" in ids(result, Level.BLOCKING)) is blocks
    if len(rows) == 2:
        assert "2 heads" in step(result, "postgres-migrations").summary


def test_backup_older_than_the_catalog_limit_warns(stores: dict[str, Any], tmp_path: Path) -> None:
    r = stores["redis"]
    aof = r.config_get("appendonly")["appendonly"]
    r.config_set("appendonly", "no")
    try:
        r.save()
        assert "backups.redis" not in ids(run(stores, None, tmp_path))
        stale = run(stores, None, tmp_path, {"postgres.migrations_tested": {"backup_max_age_hours": 0}})
        (finding,) = [f for f in step(stale, "backups").findings if f.id == "backups.redis"]
        assert finding.level is Level.WARNING and "RDB" in finding.text
    finally:
        r.config_set("appendonly", aof)


def test_clickhouse_disk_past_its_ratios_warns_then_blocks(stores: dict[str, Any], tmp_path: Path) -> None:
    warn = run(
        stores,
        production(),
        tmp_path,
        {"clickhouse.disk_usage": {"warn_ratio": 0.0001, "fail_ratio": 0.9999}},
    )
    assert "disk.headroom" in ids(warn, Level.WARNING)
    fail = run(
        stores,
        production(),
        tmp_path,
        {"clickhouse.disk_usage": {"warn_ratio": 0.0001, "fail_ratio": 0.0002}},
    )
    assert "disk.headroom" in ids(fail, Level.BLOCKING)


# --- Offline snapshots -------------------------------------------------------------------------


def bundled_clickhouse(phase: str = "Bound") -> dict[str, Any]:
    """A chart install with the bundled ClickHouse StatefulSet on an expandable class, its PVC `phase`."""
    objects = production()
    objects["statefulsets"] = [statefulset("clickhouse", 1, "gp3", "500Gi", cpu="8", memory="32Gi")]
    objects["persistentvolumeclaims"] = [
        pvc(f"data-{FULLNAME}-clickhouse-0", "gp3", phase=phase, size="500Gi")
    ]
    return objects


def test_switching_clickhouse_to_external_over_a_bound_pvc_is_not_ready_naming_the_data(
    tmp_path: Path,
) -> None:
    values = harmless_values()
    values["clickhouse"]["external"] = {"enabled": True, "host": "ch.example", "cluster": "replicated"}
    result = run(None, bundled_clickhouse(), tmp_path, new_values=values, values_name="new.yaml")
    assert result.verdict is Verdict.NOT_READY
    (finding,) = [f for f in step(result, "values").findings if f.id == "values.clickhouse_external"]
    assert finding.level is Level.BLOCKING
    assert "StatefulSet langsmith-clickhouse holds data-langsmith-clickhouse-0 (Bound, 500Gi)" in finding.text
    assert "deletes the chart-managed workload" in finding.text and "BACKUP DATABASE" in finding.action


def test_keeping_clickhouse_bundled_or_an_unbound_pvc_does_not_block(tmp_path: Path) -> None:
    kept = run(None, bundled_clickhouse(), tmp_path, new_values=harmless_values())
    assert "values.clickhouse_external" not in ids(kept)
    values = harmless_values()
    values["clickhouse"]["external"] = {"enabled": True}
    pending = run(None, bundled_clickhouse("Pending"), tmp_path, new_values=values)
    assert "values.clickhouse_external" in ids(pending, Level.WARNING)
    assert "values.clickhouse_external" not in ids(pending, Level.BLOCKING)


def test_data_at_risk_includes_the_bytes_clickhouse_holds(stores: dict[str, Any], tmp_path: Path) -> None:
    values = harmless_values()
    values["clickhouse"]["external"] = {"enabled": True}
    result = run(stores, bundled_clickhouse(), tmp_path, new_values=values)
    (finding,) = [f for f in step(result, "values").findings if f.id == "values.clickhouse_external"]
    assert f"in active parts of database {stores['db']}" in finding.text


def test_shortened_ttl_is_estimated_from_the_partitions(stores: dict[str, Any], tmp_path: Path) -> None:
    ch, db = stores["ch"], stores["db"]
    ch.command(
        f"INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, status, "
        "start_time, inputs, outputs, extra) SELECT generateUUIDv4(), generateUUIDv4(), generateUUIDv4(), "
        "generateUUIDv4(), true, 'old', 'chain', 'success', now64(6) - toIntervalDay(10), '{}', '{}', '{}' "
        "FROM numbers(300)"
    )
    values = harmless_values()
    values["config"]["ttl"]["ttl_period_seconds"]["shortlived"] = str(7 * 86400)
    result = run(stores, production(), tmp_path, new_values=values)
    (finding,) = [f for f in step(result, "values").findings if f.id == "values.ttl_shortlived"]
    assert "drops from 14.0 d to 7.0 d" in finding.text and "about 300 rows" in finding.text
    assert "values.ttl_longlived" not in ids(result)


def test_hook_jobs_failed_or_running_block_and_a_failed_e2e_warns(tmp_path: Path) -> None:
    objects = production()
    objects["jobs"] = [
        hook_job("backend-migrations", age_s=600),
        hook_job("backend-ch-migrations-x1y2z", "failed", 300, message="Dirty database version 126"),
        hook_job("backend-backfill-check", "running"),
        hook_job("e2e-test", "failed", 120),
    ]
    result = run(None, objects, tmp_path)
    findings = {f.id: f for f in step(result, "hook-jobs").findings}
    assert findings["jobs.backend-ch-migrations"].level is Level.BLOCKING
    assert "Dirty database version 126" in findings["jobs.backend-ch-migrations"].text
    assert findings["jobs.backend-backfill-check"].level is Level.BLOCKING
    assert "still running" in findings["jobs.backend-backfill-check"].text
    assert findings["jobs.e2e-test"].level is Level.WARNING
    assert "jobs.backend-migrations" not in findings
    assert "succeeded 10 min ago" in step(result, "hook-jobs").summary


def test_hook_jobs_that_finished_and_were_deleted_are_not_findings(tmp_path: Path) -> None:
    objects = production()
    objects["jobs"] = []
    result = run(None, objects, tmp_path)
    assert step(result, "hook-jobs").status is Status.PASS
    assert "ttlSecondsAfterFinished" in step(result, "hook-jobs").summary


def test_mixed_image_tags_warn(tmp_path: Path) -> None:
    objects = production()
    lagging = deployment("queue", {**BLOB_ENV, **TTL_ENV}, autoscaled=True)
    lagging["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "docker.io/langchain/langsmith-backend:0.11.9"
    )
    objects["deployments"] = [d for d in objects["deployments"] if d["metadata"]["name"] != "langsmith-queue"]
    objects["deployments"].append(lagging)
    assert "versions.mixed" not in ids(run(None, production(), tmp_path))
    assert "versions.mixed" in ids(run(None, objects, tmp_path), Level.WARNING)


def test_objects_labelled_with_two_chart_versions_warn(tmp_path: Path) -> None:
    objects = production()
    first = objects["deployments"][0]
    first["metadata"]["labels"] = {**first["metadata"]["labels"], "helm.sh/chart": "langsmith-0.16.9"}
    result = run(None, objects, tmp_path)
    assert "versions.mixed_chart" in ids(result, Level.WARNING) and "0.16.9" in str(result.to_dict())
    assert "versions.mixed_chart" not in ids(run(None, production(), tmp_path))


@pytest.mark.parametrize(
    ("to", "found", "level"),
    [("0.16.2", "versions.downgrade", Level.BLOCKING), ("0.17.0", "versions.same", Level.NOTE)],
)
def test_target_chart_version_below_or_at_the_running_one(
    tmp_path: Path, to: str, found: str, level: Level
) -> None:
    result = run(None, production(), tmp_path, to_version=to)
    assert found in ids(result, level)
    assert (
        ids(run(None, production(), tmp_path, to_version="0.17.3")) & {"versions.downgrade", "versions.same"}
        == set()
    )


def test_version_notes_apply_when_the_upgrade_crosses_their_version(tmp_path: Path) -> None:
    objects = production()
    for obj in objects["deployments"] + objects["statefulsets"]:
        if "labels" in obj["metadata"]:
            obj["metadata"]["labels"] = {**obj["metadata"]["labels"], "helm.sh/chart": "langsmith-0.16.4"}
    crossing = run(None, objects, tmp_path, to_version="0.17.0")
    assert "notes.clickhouse-system-logs-bounded" in ids(crossing, Level.WARNING)
    assert "system.metric_log" in str(crossing.to_dict())
    staying = run(None, objects, tmp_path, to_version="0.16.8")
    assert "notes.clickhouse-system-logs-bounded" not in ids(staying)


def test_storage_class_without_expansion_warns(tmp_path: Path) -> None:
    objects = bundled_clickhouse()
    objects["storageclasses"] = [storageclass("gp3", "ebs.csi.aws.com", default=True, type="gp3")]
    assert "disk.expansion_clickhouse" in ids(run(None, objects, tmp_path), Level.WARNING)
    assert "disk.expansion_clickhouse" not in ids(run(None, bundled_clickhouse(), tmp_path))


def bundled_postgres(capacity: str, storage_class: str = "gp3") -> dict[str, Any]:
    """`bundled_clickhouse()` plus the bundled PostgreSQL StatefulSet on a PVC of that capacity."""
    objects = bundled_clickhouse()
    objects["statefulsets"].append(statefulset("postgres", 1, storage_class, capacity))
    claim = pvc(f"data-{FULLNAME}-postgres-0", storage_class, size=capacity, capacity={"storage": capacity})
    objects["persistentvolumeclaims"].append(claim)
    return objects


def test_bundled_postgres_volume_too_full_blocks_and_one_that_cannot_grow_warns(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    roomy = run(stores, bundled_postgres("1Ti"), tmp_path)
    assert re.search(
        r"PostgreSQL PVC data-langsmith-postgres-0 is 0(\.\d+)?% full", step(roomy, "disk").summary
    )
    assert ids(roomy) & {"disk.headroom", "disk.expansion_postgres"} == set()
    full = run(stores, bundled_postgres("1Mi"), tmp_path)
    (finding,) = [f for f in step(full, "disk").findings if f.id == "disk.headroom"]
    assert finding.level is Level.BLOCKING and "PostgreSQL PVC data-langsmith-postgres-0" in finding.text
    fixed = run(None, bundled_postgres("1Ti", "gp2"), tmp_path)
    assert "disk.expansion_postgres" in ids(fixed, Level.WARNING)


def test_api_info_version_is_read_when_langsmith_answers(tmp_path: Path) -> None:
    class Info(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"version": "0.12.0", "instance_flags": {}}).encode()
            self.send_response(200 if self.path == "/api/info" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Info)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        snapshot = write_snapshot(production(), tmp_path / "k8s")
        target = _target(None, snapshot) | {
            "langsmith": {"base_url": f"http://127.0.0.1:{server.server_port}"}
        }
        result = preflight(make_config({"t": target}), "t")
        assert "/api/info version 0.12.0" in step(result, "versions").summary
    finally:
        server.shutdown()


def test_unreachable_api_info_is_said_and_the_cluster_still_tells_the_version(
    tmp_path: Path, unused_port: int
) -> None:
    snapshot = write_snapshot(production(), tmp_path / "k8s")
    target = _target(None, snapshot) | {"langsmith": {"base_url": f"http://127.0.0.1:{unused_port}"}}
    versions = step(preflight(make_config({"t": target}), "t"), "versions")
    assert versions.status is Status.PASS and "/api/info not read" in versions.summary
    assert "LangSmith 0.12.0" in versions.summary


def test_snapshot_alone_cannot_tell_and_says_what_was_not_read(tmp_path: Path) -> None:
    result = run(None, production(), tmp_path, new_values=harmless_values())
    assert result.verdict is Verdict.INCONCLUSIVE
    unread = {s.step_id for s in result.steps if s.status is Status.UNKNOWN}
    assert unread == {"clickhouse-migrations", "postgres-migrations", "clickhouse-work", "queues", "backups"}
    assert any("clickhouse is not configured" in line for line in result.unmeasured)


def test_unreachable_backends_are_unknown_within_the_deadline(tmp_path: Path, blackhole: Any) -> None:
    snapshot = write_snapshot(production(), tmp_path / "k8s")
    target = _target(None, snapshot) | {
        "redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"},
        "clickhouse": {"url": f"http://127.0.0.1:{blackhole.port}/default"},
    }
    config = make_config({"t": target}, timeouts={"probe_s": 1, "run_s": 3})
    began = time.monotonic()
    result = preflight(config, "t")
    assert time.monotonic() - began < 5
    assert step(result, "queues").status is Status.UNKNOWN and result.verdict is Verdict.INCONCLUSIVE


def test_on_step_gets_every_step_in_order_and_a_failing_callback_does_not_stop_it(tmp_path: Path) -> None:
    seen: list[str] = []

    def on_step(s: Any) -> None:
        seen.append(s.step_id)
        if s.step_id == "notes":
            raise RuntimeError("a Slack update failed")

    snapshot = write_snapshot(production(), tmp_path / "k8s")
    result = preflight(make_config({"t": _target(None, snapshot)}), "t", on_step=on_step)
    assert seen == [s.step_id for s in result.steps] == [s.id for s in STEPS]


def test_credentials_of_an_unreachable_store_never_reach_the_output(tmp_path: Path, unused_port: int) -> None:
    target = {"redis": {"url": f"redis://:hunter2-secret@127.0.0.1:{unused_port}/0"}}
    out = json.dumps(preflight(make_config({"t": target}), "t").to_dict())
    assert "hunter2-secret" not in out and "queues" in out


# --- CLI -----------------------------------------------------------------------------------------


def _cli(tmp_path: Path, target: dict[str, Any], *args: str) -> Any:
    config = tmp_path / "lsready.yaml"
    config.write_text(yaml.safe_dump({"targets": {"t": target}, "thresholds": ROOMY_DISK}))
    return CliRunner().invoke(cli, ["--config", str(config), "preflight", *args], obj={})


def test_cli_exits_1_when_not_ready_and_prints_the_blocking_finding_and_its_action(tmp_path: Path) -> None:
    values = harmless_values()
    values["clickhouse"]["external"] = {"enabled": True}
    vfile = tmp_path / "new.yaml"
    vfile.write_text(yaml.safe_dump(values))
    snapshot = write_snapshot(bundled_clickhouse(), tmp_path / "k8s")
    out = _cli(tmp_path, _target(None, snapshot), "--values", str(vfile))
    assert out.exit_code == 1, out.output
    assert out.output.splitlines()[2] == "NOT READY"
    assert "data-langsmith-clickhouse-0 (Bound, 500Gi)" in out.output and "-> Copy the data" in out.output


def test_cli_exits_3_when_it_could_not_tell_and_prints_json(tmp_path: Path) -> None:
    snapshot = write_snapshot(production(), tmp_path / "k8s")
    out = _cli(tmp_path, _target(None, snapshot), "--format", "json", "--to", "langsmith-0.17.2")
    assert out.exit_code == 3, out.output
    data = json.loads(out.output)
    assert data["verdict"] == "inconclusive" and data["to_version"] == "0.17.2"
    assert [s["id"] for s in data["steps"]][-1] == "values" and data["unmeasured"]


def test_cli_exits_0_when_ready(stores: dict[str, Any], tmp_path: Path) -> None:
    snapshot = write_snapshot(production(), tmp_path / "k8s")
    vfile = tmp_path / "v.yaml"
    vfile.write_text(yaml.safe_dump(harmless_values()))
    out = _cli(tmp_path, _target(stores, snapshot), "--values", str(vfile))
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[2] == "READY"


@pytest.mark.parametrize(
    ("content", "args", "says"),
    [
        ("clickhouse: [unclosed", ("--values", "{f}"), "is not valid YAML at line 1"),
        ("- a list", ("--values", "{f}"), "must be a YAML mapping"),
        (None, ("--values", "{d}/missing.yaml"), "does not exist"),
        (None, ("--to", "latest"), "is not a chart version"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, args: tuple[str, ...], says: str
) -> None:
    vfile = tmp_path / "bad.yaml"
    if content is not None:
        vfile.write_text(content)
    argv = [a.format(f=vfile, d=tmp_path) for a in args]
    out = _cli(tmp_path, {"kubernetes": {"snapshot_dir": str(tmp_path)}}, *argv)
    assert out.exit_code == 2 and says in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_cli_falls_back_to_the_configured_values_and_an_explicit_file_wins(tmp_path: Path) -> None:
    risky = harmless_values()
    risky["clickhouse"]["external"] = {"enabled": True}
    (tmp_path / "configured.yaml").write_text(yaml.safe_dump(risky))
    (tmp_path / "given.yaml").write_text(yaml.safe_dump(harmless_values()))
    snapshot = write_snapshot(bundled_clickhouse(), tmp_path / "k8s")
    target = _target(None, snapshot) | {"preflight": {"values": str(tmp_path / "configured.yaml")}}
    configured = json.loads(_cli(tmp_path, target, "--format", "json").output)
    assert configured["values_file"].endswith("configured.yaml") and configured["verdict"] == "not_ready"
    given = json.loads(
        _cli(tmp_path, target, "--format", "json", "--values", str(tmp_path / "given.yaml")).output
    )
    assert given["values_file"].endswith("given.yaml") and given["blocking"] == []
