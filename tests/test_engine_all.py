"""`check_all`: every target checked at once, each with its own clients, reports in the order asked."""

import time
from datetime import UTC, datetime

import pytest

from checks.engine import check_all
from checks.errors import UnknownTarget
from checks.model import Attestation, Status
from conftest import make_config


def _by_id(report):
    return {r.item.id: r for r in report.results}


def test_every_configured_target_is_checked_in_config_order(redis_url):
    config = make_config({"b": {"redis": {"url": redis_url}}, "a": {}, "c": {}})
    reports = check_all(config, selector="redis")
    assert [r.target for r in reports] == ["b", "a", "c"]
    assert _by_id(reports[0])["redis.memory_sized"].status is not Status.UNKNOWN
    assert "not configured" in _by_id(reports[1])["redis.memory_sized"].summary


def test_targets_named_are_checked_in_the_order_named():
    config = make_config({"a": {}, "b": {}, "c": {}})
    assert [r.target for r in check_all(config, ["c", "a"], selector="redis")] == ["c", "a"]


def test_hung_targets_run_concurrently_and_do_not_hold_up_a_healthy_one(blackhole, redis_url):
    silent = {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}}
    targets = {f"hung{n}": silent for n in range(4)} | {"ok": {"redis": {"url": redis_url}}}
    config = make_config(targets, timeouts={"probe_s": 1, "run_s": 5})
    started = time.monotonic()
    reports = check_all(config, selector="redis")
    # One probe timeout for all of them, not one per target: a correctness bound, not a benchmark.
    assert time.monotonic() - started < 3.5
    for report in reports[:4]:
        assert _by_id(report)["redis.memory_sized"].status is Status.UNKNOWN
    assert _by_id(reports[4])["redis.memory_sized"].status is not Status.UNKNOWN


def test_unknown_target_fails_before_any_check_runs():
    config = make_config({"prod": {}})
    with pytest.raises(UnknownTarget):
        check_all(config, ["prod", "nowhere"])


def test_attestations_apply_to_their_own_target_only():
    config = make_config({"prod": {}, "staging": {}})
    now = datetime.now(UTC)
    att = Attestation("diag.har_capture", "alice", now, None, "drilled")
    prod, staging = check_all(config, selector="diag.har_capture", attestations={"prod": {att.item_id: att}})
    assert prod.results[0].status is Status.ATTESTED
    assert staging.results[0].status is Status.MANUAL


def test_no_targets_is_no_reports():
    assert check_all(make_config({})) == []
