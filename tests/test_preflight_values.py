"""The preflight's pure parts: values diff, version notes, version parsing, hook Job states."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from checks.model import Status
from checks.probes.release import chart_version, image_tag, job_state, parse_version
from runbooks.demo.cluster import hook_job
from runbooks.preflight.model import Finding, Level, PreflightStep, Verdict, step_status, verdict
from runbooks.preflight.notes import Note, NotesError, load_notes, notes_for
from runbooks.preflight.storage import _backup_problem
from runbooks.preflight.values import (
    CHART_DEFAULTS,
    Facts,
    Limits,
    Settings,
    StoreData,
    TtlEstimate,
    diff,
    effective,
    unknown_keys,
)

LIMITS = Limits(min_cpus=8, min_memory_gib=32, expected_payload_mb=100)
BOUND = StoreData(
    "langsmith-clickhouse", (("data-langsmith-clickhouse-0", "Bound", "50Gi"),), 12 * 1024**3, "x"
)
UNBOUND = StoreData("langsmith-clickhouse", (("data-langsmith-clickhouse-0", "Pending", "50Gi"),))


def running(**changes: Any) -> Settings:
    """What a chart-defaults install runs, with some keys changed (dotted keys)."""
    return Settings({**CHART_DEFAULTS, **changes}, source="the deployed objects")


def new(values: dict[str, Any]) -> Settings:
    return effective(values, "new.yaml")


def found(current: Settings, values: dict[str, Any], facts: Facts | None = None) -> dict[str, Any]:
    return {f.id: f for f in diff(current, new(values), facts or Facts(), LIMITS)}


def test_defaults_against_a_defaults_install_change_nothing() -> None:
    assert found(running(), {}) == {}


def test_effective_takes_the_chart_default_for_what_the_file_leaves_out() -> None:
    s = new({"frontend": {"maxBodySize": "100M"}})
    assert s.get("frontend.maxBodySize") == "100M" and "frontend.maxBodySize" in s.explicit
    assert s.get("config.blobStorage.enabled") is False and "config.blobStorage.enabled" not in s.explicit


@pytest.mark.parametrize("store", ["clickhouse", "postgres"])
def test_datastore_switched_external_over_a_bound_pvc_blocks(store: str) -> None:
    data = StoreData(f"langsmith-{store}", ((f"data-langsmith-{store}-0", "Bound", "8Gi"),))
    got = found(running(), {store: {"external": {"enabled": True}}}, Facts(stores={store: data}))
    f = got[f"values.{store}_external"]
    assert f.level is Level.BLOCKING and f"data-langsmith-{store}-0 (Bound, 8Gi)" in f.text
    assert found(running(), {store: {"external": {"enabled": False}}}, Facts(stores={store: data})) == {}


def test_disabling_clickhouse_is_the_same_deletion() -> None:
    got = found(running(), {"clickhouse": {"enabled": False}}, Facts(stores={"clickhouse": BOUND}))
    assert got["values.clickhouse_external"].level is Level.BLOCKING
    assert "`clickhouse.enabled` becomes false" in got["values.clickhouse_external"].text
    assert "12.0 GiB in x" in got["values.clickhouse_external"].text


def test_external_switch_with_the_cluster_unread_warns_and_says_the_volumes_are_not_known() -> None:
    got = found(running(), {"clickhouse": {"external": {"enabled": True}}})
    f = got["values.clickhouse_external"]
    assert f.level is Level.WARNING and "could not be read" in f.text
    assert "data-langsmith-clickhouse-0" in f.action


def test_external_switch_without_a_bound_pvc_warns() -> None:
    got = found(
        running(), {"clickhouse": {"external": {"enabled": True}}}, Facts(stores={"clickhouse": UNBOUND})
    )
    assert got["values.clickhouse_external"].level is Level.WARNING


def test_redis_switched_external_warns_about_queued_runs() -> None:
    data = StoreData("langsmith-redis", (("data-langsmith-redis-0", "Bound", "8Gi"),))
    got = found(running(), {"redis": {"external": {"enabled": True}}}, Facts(stores={"redis": data}))
    assert (
        got["values.redis_external"].level is Level.WARNING
        and "still queued" in got["values.redis_external"].text
    )


def test_external_store_left_out_of_new_values_falls_back_to_a_new_bundled_one() -> None:
    current = running(**{"postgres.external.enabled": True})
    got = found(current, {})
    assert "not set in new.yaml" in got["values.postgres_bundled"].text
    assert found(current, {"postgres": {"external": {"enabled": True}}}) == {}


def test_blob_storage_turned_off_warns_also_when_left_to_the_default() -> None:
    current = running(**{"config.blobStorage.enabled": True})
    assert (
        found(current, {"config": {"blobStorage": {"enabled": False}}})["values.blob_off"].level
        is Level.WARNING
    )
    assert "chart default" in found(current, {})["values.blob_off"].text
    assert found(current, {"config": {"blobStorage": {"enabled": "true"}}}) == {}


def test_shortened_ttl_names_the_estimate_and_a_longer_one_is_fine() -> None:
    facts = Facts(ttl={"shortlived": TtlEstimate(rows=1234, bytes=5 * 1024**2)})
    got = found(running(), {"config": {"ttl": {"ttl_period_seconds": {"shortlived": "604800"}}}}, facts)
    f = got["values.ttl_shortlived"]
    assert "drops from 14.0 d to 7.0 d" in f.text and "about 1,234 rows (5.0 MiB)" in f.text
    assert "ttl_s/" in f.action
    assert found(running(), {"config": {"ttl": {"ttl_period_seconds": {"shortlived": "2419200"}}}}) == {}


def test_ttl_estimate_missing_is_said_not_guessed() -> None:
    got = found(running(), {"config": {"ttl": {"ttl_period_seconds": {"longlived": "86400"}}}})
    assert "could not be estimated" in got["values.ttl_longlived"].text


def test_turning_ttls_on_is_a_shortening() -> None:
    current = running(**{"config.ttl.enabled": False})
    got = found(current, {"config": {"ttl": {"enabled": True}}})
    assert {"values.ttl_shortlived", "values.ttl_longlived"} <= set(got)
    assert found(current, {"config": {"ttl": {"enabled": False}}}) == {}


@pytest.mark.parametrize(
    ("now", "after", "flagged"),
    [("100M", "25M", True), ("100M", "200M", False), ("25M", "0", False), ("0", "100M", True)],
)
def test_body_size_lowered_warns(now: str, after: str, flagged: bool) -> None:
    got = found(running(**{"frontend.maxBodySize": now}), {"frontend": {"maxBodySize": after}})
    assert ("values.max_body_size" in got) is flagged


def test_replicas_lowered_warn_unless_autoscaled() -> None:
    current = running(**{"platformBackend.deployment.replicas": 6})
    got = found(current, {"platformBackend": {"deployment": {"replicas": 3}}})
    assert "drops from 6 to 3" in got["values.replicas_platformBackend"].text
    assert found(current, {"platformBackend": {"deployment": {"replicas": 6}}}) == {}
    hpa = {"platformBackend": {"deployment": {"replicas": 3}, "autoscaling": {"hpa": {"enabled": True}}}}
    assert "values.replicas_platformBackend" not in found(current, hpa)


def test_autoscaling_removed_is_one_warning_naming_each_service() -> None:
    current = running(**{"backend.autoscaling.hpa.enabled": True, "queue.autoscaling.keda.enabled": True})
    got = found(current, {})
    assert "backend (fixed at 2)" in got["values.autoscaling_removed"].text
    assert "queue (fixed at 1)" in got["values.autoscaling_removed"].text
    kept = {
        "backend": {"autoscaling": {"hpa": {"enabled": True}}},
        "queue": {"autoscaling": {"keda": {"enabled": True}}},
    }
    assert found(current, kept) == {}


def test_clickhouse_resources_lowered_below_the_checklist_warn_with_the_threshold() -> None:
    current = running(**{"clickhouse.statefulSet.resources.requests.memory": "32Gi"})
    got = found(current, {"clickhouse": {"statefulSet": {"resources": {"requests": {"memory": "16Gi"}}}}})
    assert (
        "below the checklist's 32 GiB per ClickHouse node" in got["values.resources_clickhouse_memory"].text
    )
    same = {"clickhouse": {"statefulSet": {"resources": {"requests": {"memory": "32768Mi"}}}}}
    assert found(current, same) == {}


def test_service_resources_lowered_warn() -> None:
    got = found(running(), {"backend": {"deployment": {"resources": {"requests": {"cpu": "500m"}}}}})
    assert (
        "`backend.deployment.resources.requests.cpu` drops from 1000m to 500m"
        in got["values.resources_backend_cpu"].text
    )


def test_unknown_keys_are_reported_with_the_closest_chart_key_and_known_ones_are_not() -> None:
    findings = unknown_keys(
        {
            "clikhouse": {"external": {"enabled": True}},
            "clickhouse": {"external": {"enabeld": True, "host": "h"}},
            "config": {"ttl": {"ttl_period_seconds": {"shortlive": "1"}}},
            "backend": {"deployment": {"replicas": 2}},
        }
    )
    texts = [f.text for f in findings]
    assert len(findings) == 3 and all(f.level is Level.WARNING for f in findings)
    assert "`clikhouse` is not a key of the LangSmith chart (closest chart key: `clickhouse`)" in texts[0]
    assert any("`clickhouse.external.enabeld`" in t and "`enabled`" in t for t in texts)
    assert any("`config.ttl.ttl_period_seconds.shortlive`" in t for t in texts)
    assert unknown_keys({"backend": {}, "config": {"ttl": {"enabled": True}}}) == []


def test_running_value_that_is_not_visible_is_not_compared() -> None:
    current = Settings({"frontend.maxBodySize": None})
    assert found(current, {"frontend": {"maxBodySize": "1M"}}) == {}


# --- Version notes -------------------------------------------------------------------------------


def test_shipped_notes_load_and_metric_log_note_applies_from_0_16_10() -> None:
    notes = {n.id for n in load_notes()}
    assert "clickhouse-system-logs-bounded" in notes
    assert [n.id for n in notes_for("0.16.4", "0.17.0")] == ["clickhouse-system-logs-bounded"]
    assert notes_for("0.16.10", "0.17.0") == []
    assert [n.at for n in notes_for("0.10.0", "0.17.0")] == ["0.10.18", "0.16.0", "0.16.10"]


def test_a_note_with_until_applies_only_below_it() -> None:
    note = Note("x", "0.16.0", Level.NOTE, "t", until="0.17.0")
    assert note.applies("0.15.0", "0.16.5") and not note.applies("0.15.0", "0.17.0")
    assert not note.applies("0.16.1", "0.16.5")


def test_a_bad_note_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.yaml"
    path.write_text(
        "- {id: a, at: 'next', level: note, text: t}\n- {id: b, at: '1.0.0', level: urgent, text: t}\n"
    )
    with pytest.raises(NotesError, match=r"note 1 \(a\): at 'next' is not a version.*note 2 \(b\): level"):
        load_notes(path)


def test_versions_sort_with_pre_releases_first() -> None:
    assert parse_version("0.17.0-rc.12") < parse_version("0.17.0") < parse_version("0.17.1")
    assert parse_version("0.16.10") > parse_version("0.16.9") and parse_version("v1.2.3") == parse_version(
        "1.2.3"
    )
    assert parse_version("latest") is None
    assert chart_version("langsmith-0.17.0-rc.12") == "0.17.0-rc.12" and chart_version("redis-1.0.0") is None
    assert image_tag("docker.io/langchain/langsmith-backend:0.12.0") == "0.12.0"
    assert image_tag("registry:5000/langsmith-backend") is None and image_tag("x@sha256:abc") is None


@pytest.mark.parametrize(
    ("state", "expected"), [("succeeded", "succeeded"), ("failed", "failed"), ("running", "running")]
)
def test_job_state_reads_the_job_conditions(state: str, expected: str) -> None:
    assert job_state(hook_job("backend-migrations", state))[0] == expected


@pytest.mark.parametrize(
    ("store", "facts", "level", "says"),
    [
        ("clickhouse", {"recent": [{"status": "BACKUP_FAILED", "age_s": 60}]}, Level.WARNING, "failed"),
        (
            "clickhouse",
            {"recent": [{"status": "BACKUP_CREATED", "age_s": 200000}]},
            Level.WARNING,
            "2.3 d ago",
        ),
        ("clickhouse", {"recent": [{"status": "BACKUP_CREATED", "age_s": 600}]}, None, None),
        ("clickhouse", {"recent": []}, Level.NOTE, "no BACKUP"),
        ("redis", {"aof_enabled": True}, None, None),
        ("redis", {"rdb_last_bgsave_status": "err"}, Level.WARNING, "save err"),
        ("postgres", {"archive_mode": "on", "last_archived_age_s": 30}, None, None),
        ("postgres", {"archive_mode": "on", "last_archived_age_s": None}, Level.WARNING, "none yet"),
        ("postgres", {"archive_mode": "off"}, Level.NOTE, "does not archive"),
        ("redis", {"error": "timeout"}, Level.WARNING, "could not be read"),
    ],
)
def test_backup_facts_are_graded(
    store: str, facts: dict[str, Any], level: Level | None, says: str | None
) -> None:
    got_level, problem = _backup_problem(store, facts, 86400)
    if says is None:
        assert problem is None
    else:
        assert got_level is level and says in problem


# --- Verdict -------------------------------------------------------------------------------------


def _step(status: Status, *levels: Level) -> PreflightStep:
    findings = tuple(Finding(f"x.{n}", level, "t") for n, level in enumerate(levels))
    return PreflightStep("s", "S", status, "", findings, {}, datetime.now(UTC), 0.0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ((_step(Status.PASS), _step(Status.PASS, Level.NOTE)), Verdict.READY),
        ((_step(Status.WARN, Level.WARNING), _step(Status.PASS)), Verdict.READY_WITH_WARNINGS),
        ((_step(Status.WARN, Level.WARNING), _step(Status.UNKNOWN)), Verdict.INCONCLUSIVE),
        ((_step(Status.FAIL, Level.BLOCKING), _step(Status.UNKNOWN)), Verdict.NOT_READY),
    ],
    ids=["notes-only", "warning", "unknown-beats-warning", "blocking-beats-unknown"],
)
def test_verdict_blocking_beats_not_knowing_which_beats_warnings(
    steps: tuple[Any, ...], expected: Verdict
) -> None:
    assert verdict(steps) is expected


def test_step_status_follows_its_worst_finding() -> None:
    assert step_status(()) is Status.PASS
    assert step_status((Finding("a", Level.NOTE, "t"),)) is Status.PASS
    assert step_status((Finding("a", Level.NOTE, "t"), Finding("b", Level.WARNING, "t"))) is Status.WARN
    assert step_status((Finding("a", Level.BLOCKING, "t"), Finding("b", Level.WARNING, "t"))) is Status.FAIL
