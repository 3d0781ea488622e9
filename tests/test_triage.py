"""Triage on real engines: each incident scenario reaches its diagnosis; broken backends never hang it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import cli
from checks.errors import LsreadyError
from checks.model import Status
from checks.probes.clickhouse.reads import DiskUse
from conftest import make_config
from runbooks.demo.scenarios import SCENARIO_THRESHOLDS, SCENARIOS, Stage, play
from runbooks.demo.schema import build_clickhouse
from runbooks.measure import clickhouse_load, delay
from runbooks.model import DiagnosisKind, StepResult
from runbooks.triage import UnknownRunbook, triage

SAMPLE_S = 0.3  # the queue sample interval; production uses 2.5 s


def _config(clickhouse_url: str, redis_url: str, **extra: Any) -> Any:
    target = {"redis": {"url": redis_url}, "clickhouse": {"url": clickhouse_url}}
    return make_config({"t": target}, thresholds=SCENARIO_THRESHOLDS, **extra)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_reaches_its_diagnosis(name: str, stage: Stage, clickhouse: Any, redis_url: str) -> None:
    with play(name, stage) as scenario:
        result = triage(_config(clickhouse[0], redis_url), sample_interval_s=SAMPLE_S)
    assert result.diagnosis.kind is scenario.expected, result.diagnosis.reasons
    assert [s.step_id for s in result.steps] == [
        "snapshot",
        "clickhouse-load",
        "queue-drain",
        "merges",
        "ingestion-delay",
    ]
    assert result.steps[0].status is Status.PASS  # both backends answered the snapshot
    d = result.diagnosis
    if d.kind is DiagnosisKind.CLICKHOUSE_SATURATION:  # "Why" once listed a [pass] ClickHouse line here
        assert not any(r.startswith("[pass]") for r in d.reasons), d.reasons
    if d.kind is DiagnosisKind.INSERT_PATH_DELAY:  # every ClickHouse step passed: never "Scale ClickHouse"
        assert {s.status for s in result.steps if s.step_id in ("clickhouse-load", "merges")} == {Status.PASS}
        assert "saturation" not in d.headline.lower()
        assert not any("Scale ClickHouse" in a for a in d.actions), d.actions
        assert any("Only if" in a and "insert durations" in a for a in d.actions), d.actions


def test_backlog_with_idle_clickhouse_is_backpressure_with_arrivals_and_no_drain(
    stage: Stage, clickhouse: Any, redis_url: str
) -> None:
    with play("queue-backlog", stage):
        result = triage(_config(clickhouse[0], redis_url), "t", "queue-depth", sample_interval_s=SAMPLE_S)
    assert result.diagnosis.kind is DiagnosisKind.INGESTION_BACKPRESSURE
    queues = result.steps[0].evidence["queues"]
    assert queues["asynq:ingest"]["drained"] == 0 and queues["asynq:ingest"]["exact"]
    assert queues["asynq:ingest"]["arrived"] >= 1
    assert queues["asynq:ingest"]["oldest_age_s"] > 2000
    assert "REDIS_RUNS_EXPIRY_SECONDS" in result.steps[0].summary


def test_flooded_partition_is_saturation_and_says_not_to_add_workers(
    stage: Stage, clickhouse: Any, redis_url: str
) -> None:
    with play("clickhouse-saturation", stage):
        result = triage(
            _config(clickhouse[0], redis_url), runbook="merge-pressure", sample_interval_s=SAMPLE_S
        )
    merges = result.steps[0]
    assert (merges.step_id, merges.status) == ("merges", Status.FAIL)
    assert merges.evidence["worst"]["delay_at"] == 20 and merges.evidence["worst"]["parts"] >= 20
    assert result.diagnosis.kind is DiagnosisKind.CLICKHOUSE_SATURATION
    assert result.diagnosis.actions[0].startswith("Do not add queue workers")


def test_unreachable_redis_is_inconclusive_within_the_deadline(
    clickhouse: tuple[str, Any, str], blackhole: Any
) -> None:
    url, admin, db = clickhouse
    build_clickhouse(admin, db)
    config = _config(url, f"redis://127.0.0.1:{blackhole.port}/0", timeouts={"probe_s": 1, "run_s": 3})
    started = time.monotonic()
    result = triage(config, sample_interval_s=SAMPLE_S)
    assert time.monotonic() - started < 4
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE
    by_id = {s.step_id: s for s in result.steps}
    assert by_id["queue-drain"].status is Status.UNKNOWN
    assert by_id["snapshot"].status is Status.WARN and "redis.queues" in by_id["snapshot"].evidence["missing"]
    assert any(u.startswith("Queue depth and worker drain rate") for u in result.diagnosis.unmeasured)


def test_unreachable_redis_with_a_flooded_partition_is_still_saturation(
    stage: Stage, clickhouse: Any, blackhole: Any
) -> None:
    with play("clickhouse-saturation", stage):
        config = _config(
            clickhouse[0], f"redis://127.0.0.1:{blackhole.port}/0", timeouts={"probe_s": 1, "run_s": 3}
        )
        started = time.monotonic()
        result = triage(config, sample_interval_s=SAMPLE_S)
    assert time.monotonic() - started < 4
    assert result.diagnosis.kind is DiagnosisKind.CLICKHOUSE_SATURATION


def test_unconfigured_backends_are_unknown_and_inconclusive_at_once() -> None:
    started = time.monotonic()
    result = triage(make_config({"t": {}}))
    assert time.monotonic() - started < 2
    assert [s.step_id for s in result.steps] == ["snapshot"]
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE
    assert "not configured" in result.steps[0].summary


def test_on_step_reports_each_step_of_the_path_in_order_off_the_callers_thread(
    stage: Stage, clickhouse: Any, redis_url: str
) -> None:
    seen: list[tuple[str, bool]] = []

    def on_step(step: StepResult) -> None:
        seen.append((step.step_id, threading.current_thread() is threading.main_thread()))

    with play("healthy", stage):
        result = triage(_config(clickhouse[0], redis_url), on_step=on_step, sample_interval_s=SAMPLE_S)
    assert [s for s, _ in seen] == [s.step_id for s in result.steps]
    assert not all(on_main for _, on_main in seen)


def test_a_failing_on_step_does_not_stop_the_triage() -> None:
    def on_step(step: StepResult) -> None:
        raise RuntimeError("slack is down")

    result = triage(make_config({"t": {}}), on_step=on_step)
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE


def test_unknown_runbook_is_refused_with_a_suggestion() -> None:
    with pytest.raises(UnknownRunbook, match="Did you mean 'merge-pressure'"):
        triage(make_config({"t": {}}), runbook="merge-presure")


def _delay_step(clickhouse_url: str, redis_url: str, **delay: Any) -> StepResult:
    """The ingestion-delay runbook's first step, with `delay` overriding triage.delay's thresholds."""
    target = {"redis": {"url": redis_url}, "clickhouse": {"url": clickhouse_url}}
    config = make_config({"t": target}, thresholds={**SCENARIO_THRESHOLDS, "triage.delay": delay})
    step = triage(config, runbook="ingestion-delay", sample_interval_s=SAMPLE_S).steps[0]
    assert step.step_id == "ingestion-delay"
    return step


def test_ingestion_delay_reads_only_fresh_parts_so_an_old_partition_leaves_the_delay_unchanged(
    stage: Stage, clickhouse: Any, redis_url: str
) -> None:
    url, admin, db = clickhouse
    with play("healthy", stage):
        before = _delay_step(url, redis_url)
        # Runs that started three days ago, inserted just now: in the delay window by inserted_at,
        # three days late. Their part sits in an old partition, which the read must skip.
        admin.command(
            f"INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, "
            "status, start_time, inputs, outputs, extra, inserted_at, trace_first_received_at) "
            "SELECT generateUUIDv4(), generateUUIDv4(), generateUUIDv4(), generateUUIDv4(), true, 'chain', "
            "'chain', 'success', now64(6) - toIntervalDay(3), '{}', '{}', '{}', now64(6), "
            "now64(6) - toIntervalDay(3) FROM numbers(500)"
        )
        after = _delay_step(url, redis_url)
    assert before.status is Status.PASS and before.evidence["complete"], before.summary
    assert after.status is Status.PASS and after.evidence["complete"], after.summary
    # None of the 500 late runs counted (the window moves on, so a few fresh runs may leave it).
    assert 0 < after.evidence["rows"] <= before.evidence["rows"]
    assert after.evidence["max_s"] < 5  # a read of the old part would show a delay of three days


def test_ingestion_delay_over_a_row_cap_below_the_fresh_rows_is_unknown_not_a_partial_pass(
    stage: Stage, clickhouse: Any, redis_url: str
) -> None:
    # The healthy stage writes its 2000 recent runs in one part: it cannot fit a cap of 1000 rows.
    with play("healthy", stage):
        step = _delay_step(clickhouse[0], redis_url, delay_max_rows=1000)
    assert step.status is Status.UNKNOWN, step.summary
    assert "read limit of 1000 rows" in step.summary, step.summary


# --- Measurements on made-up readings ------------------------------------------------------------


class _Readings:
    """Stands in for runbooks.measure.Readings: fixed values, and no second disk I/O sample."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def value(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str) -> dict[str, Any]:
        raise LsreadyError(f"{name} is not part of this test")


def _params() -> dict[str, Any]:
    from checks.registry import load_catalog
    from runbooks.definitions import RUNBOOKS
    from runbooks.triage import resolve_thresholds

    return {**resolve_thresholds(RUNBOOKS["trace-visibility"], load_catalog()), "sample_interval_s": 0}


def _disk(ratio: float) -> DiskUse:
    return DiskUse("ch-0", "default", "/var/lib/clickhouse/", ratio, int(ratio * 100), 100)


@pytest.mark.parametrize(
    ("ratio", "status", "says"),
    [
        (0.50, Status.PASS, "is 50% full (warn 70%, fail 85%)"),
        (0.78, Status.PASS, "is 78% full (warn 70%, fail 85%): plan capacity (a capacity signal, not load)"),
        (0.90, Status.FAIL, "is 90% full (warn 70%, fail 85%): merges and inserts stop as it fills"),
    ],
)
def test_disk_fill_is_load_only_at_its_fail_ratio(ratio: float, status: Status, says: str) -> None:
    readings = _Readings({"clickhouse.running": {"ch-0": 0}, "clickhouse.disks": [_disk(ratio)]})
    ev = clickhouse_load(readings, _params())
    assert ev.status is status and says in ev.summary
    assert "ClickHouse is running 0 other queries" in ev.summary


def test_busy_clickhouse_is_strained_whatever_its_disk() -> None:
    p = _params()
    readings = _Readings({"clickhouse.running": {"ch-0": int(p["concurrency_warn"])}, "clickhouse.disks": []})
    assert clickhouse_load(readings, p).status is Status.WARN


def _delay_reading(rows: int, parts_read: int, parts_total: int, p95: float | None) -> dict[str, Any]:
    return {
        "table": "default.runs",
        "source": "inserted_at - trace_first_received_at",
        "window_minutes": 15,
        "rows": rows,
        "complete": parts_read == parts_total,
        "sampled": parts_read != parts_total,
        "parts": {
            "parts_read": parts_read,
            "parts_total": parts_total,
            "rows_in_parts_read": 50_000,
            "rows_in_parts_total": 300_000 if parts_read != parts_total else 50_000,
            "max_rows": 50_000,
            "complete": parts_read == parts_total,
        },
        "p50_s": p95,
        "p95_s": p95,
        "max_s": p95,
    }


def test_delay_step_never_says_runs_do_not_reach_clickhouse_from_a_limited_read() -> None:
    partial = delay(_Readings({"clickhouse.delay": _delay_reading(0, 3, 40, None)}), _params())
    assert partial.status is Status.UNKNOWN
    assert "the 3 smallest of 40 parts, 50000 of 300000 rows" in partial.summary
    assert "this does not mean no runs arrived" in partial.summary and "not reaching" not in partial.summary
    # Every part written in the window read and still none: provably no inserts, still no delay value.
    none = delay(_Readings({"clickhouse.delay": _delay_reading(0, 4, 4, None)}), _params())
    assert none.status is Status.UNKNOWN and "if traces are being sent, they are not reaching" in none.summary
    sample = delay(_Readings({"clickhouse.delay": _delay_reading(900, 3, 40, 400.0)}), _params())
    assert sample.status is Status.FAIL and "a sample of the freshest inserts" in sample.summary


def test_cli_triage_prints_the_json_shape_and_exits_by_diagnosis(
    stage: Stage, clickhouse: Any, redis_url: str, tmp_path: Any
) -> None:
    config = tmp_path / "lsready.yaml"
    target = {"redis": {"url": redis_url}, "clickhouse": {"url": clickhouse[0]}}
    config.write_text(json.dumps({"targets": {"t": target}, "thresholds": SCENARIO_THRESHOLDS}))
    args = ["--config", str(config), "triage", "--format", "json", "--sample-interval", str(SAMPLE_S)]
    with play("queue-backlog", stage):
        out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1, out.output
    data = json.loads(out.output)
    assert set(data) >= {"runbook", "target", "diagnosis", "steps", "actions", "started_at", "duration_s"}
    assert set(data["diagnosis"]) >= {"kind", "headline", "reasons", "actions", "unmeasured"}
    assert all({"id", "status", "summary", "evidence"} <= set(s) for s in data["steps"])
    assert data["diagnosis"]["kind"] == "ingestion_backpressure"
    assert data["actions"] == data["diagnosis"]["actions"]


def test_cli_triage_exits_3_when_inconclusive(tmp_path: Any) -> None:
    config = tmp_path / "lsready.yaml"
    config.write_text("targets: {t: {}}\n")
    out = CliRunner().invoke(cli, ["--config", str(config), "triage"])
    assert out.exit_code == 3, out.output
    assert "INCONCLUSIVE" in out.output and "Not measured:" in out.output


def test_demo_scenario_end_to_end_prints_the_triage_json(tmp_path: Any) -> None:
    # Its own process: the embedded ClickHouse opens one data path per process.
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--scenario", "clickhouse-saturation", "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["diagnosis"]["kind"] == "clickhouse_saturation"
    assert data["actions"][0].startswith("Do not add queue workers")
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["merges"]["status"] == "fail"
    assert "Traceback" not in out.stderr


def test_demo_refuses_an_unknown_scenario_before_starting_engines() -> None:
    out = CliRunner().invoke(cli, ["demo", "--scenario", "queue-backlg"])
    assert out.exit_code == 2
    assert "Did you mean 'queue-backlog'" in out.output


def test_queue_flow_counts_arrivals_after_the_marker_and_bounds_a_turned_over_queue() -> None:
    from runbooks.measure import arrived_since, queue_flow

    # 10 waited; 3 arrived after the marker (the newest job then); now 8 wait, so 5 left.
    assert queue_flow(10, 8, arrived_since("j10", ["j13", "j12", "j11", "j10", "j9"]), True, 1000) == (
        3,
        5,
        True,
    )
    # The marker is gone and the whole list was read: all 10 left, at least the 4 waiting arrived.
    assert queue_flow(10, 4, arrived_since("j10", ["j14", "j13", "j12", "j11"]), True, 1000) == (
        4,
        10,
        False,
    )
    # More arrived than the read window holds: only the depth change is known.
    assert queue_flow(10, 2000, None, True, 1000) == (None, None, False)
    # Nothing waited at the first sample: whatever waits now arrived since.
    assert queue_flow(0, 3, None, False, 1000) == (3, None, False)


def test_triage_on_a_terminal_shows_each_step_on_stderr_as_it_finishes(tmp_path: Any, redis_url: str) -> None:
    """It printed nothing for seconds, even on a terminal; stdout still gets the whole result."""
    import os
    import pty
    import select

    config = tmp_path / "lsready.yaml"
    config.write_text(f"targets: {{t: {{redis: {{url: '{redis_url}'}}}}}}\n")
    master, slave = pty.openpty()
    args = [sys.executable, "-m", "bot.cli", "--config", str(config), "triage", "--sample-interval", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
    os.close(slave)
    seen, first_step_at = b"", None
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if first_step_at is None and b"1. Evidence snapshot" in seen:
                first_step_at = time.monotonic()
        elif proc.poll() is not None:
            break
    stdout = proc.communicate(timeout=60)[0].decode()
    ended = time.monotonic()
    os.close(master)
    assert first_step_at is not None, seen
    assert ended - first_step_at > 1.0, "the first step was shown only at the end"
    assert b"3. Queue depth and worker drain rate" in seen
    assert "Steps taken:" in stdout and "INCONCLUSIVE" in stdout  # ClickHouse is not configured


def test_triage_of_unreachable_backends_names_each_once_with_host_and_port(unused_port: int) -> None:
    url = f"127.0.0.1:{unused_port}"
    config = make_config(
        {"t": {"redis": {"url": f"redis://{url}/0"}, "clickhouse": {"url": f"http://{url}/default"}}}
    )
    result = triage(config, sample_interval_s=0)
    assert result.diagnosis.kind is DiagnosisKind.INCONCLUSIVE
    said = " ".join(result.diagnosis.unmeasured)
    assert said.count(f"ClickHouse at {url}: connection refused") == 1, said
    assert said.count(f"Redis at {url}: connection refused") == 1, said
    assert "HTTPConnectionPool" not in said and "Errno" not in said
