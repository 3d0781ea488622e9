"""Digest content, what changed between runs, and exactly one digest per scheduled slot."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.render.digest import render_digest as render_text
from checks.config import validate
from checks.model import Evidence, Item, Kind, Severity, Status
from checks.registry import Catalog
from runbooks.digest import (
    build_digest,
    diff,
    digest_retry_at,
    due_reminders,
    latest_slot,
    record_hand_post,
    send_due_digests,
)
from runbooks.readiness import Readiness
from storage.db import open_db


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


def _item(item_id, kind=Kind.PROBE, required=False):
    return Item(
        id=item_id, section="1", title=item_id.title(), seed=item_id, kind=kind, required=required,
        severity=Severity.HIGH, remediation="fix", probe=item_id if kind is Kind.PROBE else None,
    )  # fmt: skip


@pytest.fixture
def world(tmp_path):
    """A readiness service whose probes answer whatever `verdicts` says."""
    verdicts = {"a.disk": Status.PASS, "a.queue": Status.FAIL, "a.lag": Status.PASS, "a.net": Status.WARN}

    def answer(item_id):
        return lambda clients, params: Evidence(verdicts[item_id], f"{item_id} is {verdicts[item_id].value}")

    probes = {k: answer(k) for k in verdicts}
    items = [_item(k, required=(k == "a.queue")) for k in verdicts] + [_item("a.drill", Kind.MANUAL)]
    clock = Clock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))  # a Monday
    config = validate({"targets": {"prod": {}}, "digest": {"channel": "C1", "cron": "0 9 * * mon"}})
    readiness = Readiness(config, Catalog(tuple(items), probes), open_db(tmp_path / "db.sqlite"), clock)
    return readiness, verdicts, clock


def _post(readiness, digest, ts="1.1"):
    """Post a digest as `lsready digest --post` does: it becomes the baseline of the next one."""
    record_hand_post(readiness, digest, "C1", ts, "cli:test")


def test_digest_diff_over_two_stored_runs(world):
    readiness, verdicts, clock = world
    first = build_digest(readiness, "prod")
    assert first.previous_at is None
    assert [c.item_id for c in first.failing_required] == ["a.queue"]
    assert [c.item_id for c in first.manual_waiting] == ["a.drill"]
    _post(readiness, first)
    clock.now += timedelta(minutes=5)
    verdicts.update(
        {"a.queue": Status.PASS, "a.disk": Status.FAIL, "a.lag": Status.WARN, "a.net": Status.UNKNOWN}
    )
    readiness.acknowledge("prod", "a.drill", "U7", expires="10d")
    second = build_digest(readiness, "prod")
    assert second.previous_at is not None
    assert [c.item_id for c in second.new_failures] == ["a.disk"]
    assert {c.item_id for c in second.fixed} == {"a.queue", "a.drill"}
    assert [c.item_id for c in second.regressions] == ["a.lag"]
    assert [c.item_id for c in second.new_unknowns] == ["a.net"]
    assert [a.by for a in second.expiring] == ["U7"]
    assert [a.item_id for a in second.acks_added] == ["a.drill"]
    assert second.failing_required == []


def test_unchanged_runs_have_no_changes(world):
    readiness, _, clock = world
    _post(readiness, build_digest(readiness, "prod"))
    clock.now += timedelta(minutes=5)
    again = build_digest(readiness, "prod")
    assert not again.changed
    assert "nothing changed" in render_text(again, "text")


def test_after_an_ack_and_a_check_the_digest_lists_the_attestation(world):
    """It once compared with the latest check, made after the ack, and said "nothing changed"."""
    readiness, _, clock = world
    _post(readiness, build_digest(readiness, "prod"))
    clock.now += timedelta(hours=1)
    readiness.acknowledge("prod", "a.drill", "alice", note="restore drill, 40 min", expires="90d")
    readiness.check("prod")  # a full check after the ack: not a digest, not the baseline
    clock.now += timedelta(hours=1)
    digest = build_digest(readiness, "prod")
    assert digest.changed and [a.item_id for a in digest.acks_added] == ["a.drill"]
    assert [c.item_id for c in digest.fixed] == ["a.drill"]
    text = render_text(digest, "text")
    assert "nothing changed" not in text
    assert "Attested:\n  - a.drill by alice, until " in text and "restore drill, 40 min" in text


def test_previews_never_move_the_baseline(world):
    readiness, verdicts, clock = world
    posted = build_digest(readiness, "prod")
    _post(readiness, posted)
    verdicts["a.disk"] = Status.FAIL
    for _ in range(3):  # previews, from the CLI or Slack
        clock.now += timedelta(minutes=10)
        preview = build_digest(readiness, "prod")
        assert preview.previous_at == posted.report.started_at
        assert [c.item_id for c in preview.new_failures] == ["a.disk"]


def test_attestations_expired_and_revoked_since_the_last_digest_are_listed(world):
    readiness, _, clock = world
    readiness.acknowledge("prod", "a.drill", "bob", expires="2d")
    _post(readiness, build_digest(readiness, "prod"))
    clock.now += timedelta(days=3)
    expired = build_digest(readiness, "prod")
    assert [a.by for a in expired.acks_expired] == ["bob"] and expired.changed
    assert "Attestations expired:\n  - a.drill by bob, expired " in render_text(expired, "text")
    readiness.acknowledge("prod", "a.drill", "carol", expires="30d")
    _post(readiness, build_digest(readiness, "prod"), ts="2.2")
    clock.now += timedelta(hours=1)
    readiness.revoke("prod", "a.drill", "dave")
    revoked = build_digest(readiness, "prod")
    assert [(a.by, a.revoked_by) for a in revoked.acks_revoked] == [("carol", "dave")]
    assert "(revoked by dave)" in render_text(revoked, "text")


def test_failing_required_items_are_counted_as_status_and_app_home_count_them(world, tmp_path):
    """The digest once left out the failing sign-off items that status and App Home count."""
    from dataclasses import replace

    readiness, _, clock = world
    signoff = replace(_item("signoff.all", Kind.DERIVED, required=True), derived_from=())
    catalog = Catalog((*readiness.catalog.items, signoff), readiness.catalog.probes)
    with_signoff = Readiness(readiness.config, catalog, open_db(tmp_path / "signoff.sqlite"), clock)
    digest = build_digest(with_signoff, "prod")
    counted = list(digest.report.score.required_failing)
    assert counted == ["a.queue", "signoff.all"]
    assert [c.item_id for c in digest.failing_required] == counted
    home = with_signoff.history.latest("prod").score["required_failing"]  # what App Home reads
    assert home == counted
    assert f"Required items failing ({len(counted)})" in render_text(digest, "text")


def test_nothing_changed_is_never_said_beside_a_change_in_slack(world):
    from bot.render.slack_digest import render_digest as render_slack
    from checks.secrets import Redactor

    readiness, _, clock = world
    _post(readiness, build_digest(readiness, "prod"))
    clock.now += timedelta(minutes=5)
    digest = build_digest(readiness, "prod")
    text = str(render_slack(digest, Redactor()).blocks)
    assert "nothing changed" in text and "a.queue" in text  # failing, but not a change
    assert "→" not in text, "a failing item unchanged since the last digest is not shown as new"
    posted = str(render_slack(digest, Redactor()).blocks)
    preview = str(render_slack(digest, Redactor(), preview=True).blocks)
    assert "Reply in this thread" in posted and "Reply in this thread" not in preview
    assert "preview only you can see" in preview


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("* * * * *", datetime(2026, 12, 1, 12, 34, tzinfo=UTC)),
        ("*/30 * * * *", datetime(2026, 12, 1, 12, 30, tzinfo=UTC)),
        ("* 9 * * mon", datetime(2026, 11, 30, 9, 59, tzinfo=UTC)),
        ("0 9 1 * *", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("0 8 2 * *", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("0 0 29 2 *", datetime(2024, 2, 29, 0, 0, tzinfo=UTC)),
        ("34 12 * * *", datetime(2026, 12, 1, 12, 34, tzinfo=UTC)),
    ],
)
def test_latest_slot_is_the_last_fire_at_or_before_now(cron, expected):
    now = datetime(2026, 12, 1, 12, 34, 56, tzinfo=UTC)  # a Tuesday
    assert latest_slot(cron, "UTC", now) == expected


def test_latest_slot_of_an_every_minute_cron_steps_through_one_hour_at_most(monkeypatch):
    from apscheduler.triggers.cron import CronTrigger

    calls = []
    real = CronTrigger.get_next_fire_time
    monkeypatch.setattr(CronTrigger, "get_next_fire_time", lambda *a: calls.append(1) or real(*a))
    now = datetime(2026, 12, 1, 12, 34, 56, tzinfo=UTC)
    assert latest_slot("* * * * *", "UTC", now) == datetime(2026, 12, 1, 12, 34, tzinfo=UTC)
    assert len(calls) <= 62


def test_latest_slot_respects_time_zone():
    now = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)  # Monday 09:30 in Berlin
    slot = latest_slot("0 9 * * mon", "Europe/Berlin", now)
    assert slot.astimezone(UTC) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert latest_slot("0 9 * * mon", "UTC", now) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_one_digest_per_slot_across_a_restart_at_the_slot(world, tmp_path):
    readiness, _, clock = world
    posted = []

    def post(digest):
        posted.append(digest.target)
        return "C1", f"{len(posted)}.0001"

    clock.now = datetime(2026, 11, 30, 9, 0, 5, tzinfo=UTC)
    assert send_due_digests(readiness, post) == ["prod"]
    # The process restarts a minute later and catches up on the slot it thinks it may have missed.
    restarted = Readiness(readiness.config, readiness.catalog, open_db(tmp_path / "db.sqlite"), clock)
    clock.now += timedelta(minutes=1)
    assert send_due_digests(restarted, post) == []
    assert posted == ["prod"]
    clock.now = datetime(2026, 12, 7, 9, 0, 1, tzinfo=UTC)
    assert send_due_digests(restarted, post) == ["prod"]


def test_failed_post_releases_the_slot_for_a_retry(world):
    readiness, _, clock = world
    clock.now = datetime(2026, 11, 30, 9, 0, 5, tzinfo=UTC)

    def broken(digest):
        raise ConnectionError("slack down")

    assert send_due_digests(readiness, broken) == []
    assert send_due_digests(readiness, lambda d: ("C1", "1.1")) == ["prod"]
    outcomes = [e.outcome for e in readiness.audit.since() if e.action == "digest"]
    assert outcomes == ["failed", "ok"]


def test_a_claim_abandoned_mid_post_is_taken_over_once_stale(world):
    readiness, _, clock = world
    slot = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert readiness.digests.claim("prod", slot)
    assert not readiness.digests.claim("prod", slot)
    clock.now += timedelta(minutes=11)
    assert readiness.digests.claim("prod", slot)


def test_a_post_killed_mid_way_is_retried_once_its_claim_may_be_taken_over(world):
    readiness, _, clock = world
    slot = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    clock.now = slot + timedelta(seconds=30)
    assert readiness.digests.claim("prod", slot)  # a pod claims the slot, then dies before posting
    clock.now = slot + timedelta(minutes=2)  # its replacement starts and catches up: too early to tell
    assert send_due_digests(readiness, lambda d: ("C1", "1.1")) == []
    retry = digest_retry_at(readiness)
    assert retry == slot + timedelta(seconds=30) + timedelta(minutes=10, seconds=5)
    clock.now = retry
    assert send_due_digests(readiness, lambda d: ("C1", "2.1")) == ["prod"]
    assert digest_retry_at(readiness) is None  # every target's post completed
    assert send_due_digests(readiness, lambda d: ("C1", "3.1")) == []


def test_slot_missed_for_days_is_not_sent_late(world):
    readiness, _, clock = world
    clock.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # Thursday
    assert send_due_digests(readiness, lambda d: ("C1", "1.1")) == []


def test_reminder_due_once_before_expiry(world):
    readiness, _, clock = world
    readiness.acknowledge("prod", "a.drill", "U9", expires="30d")
    assert due_reminders(readiness) == []
    clock.now += timedelta(days=24)
    due = due_reminders(readiness)
    assert [a.by for a in due] == ["U9"]
    assert due_reminders(readiness) == []


def test_diff_with_no_previous_run_reports_failures_as_new(world):
    readiness, _, _ = world
    report = readiness.check("prod", record=False)
    changes = diff(None, report)
    assert [c.item_id for c in changes["new_failures"]] == ["a.queue"]
