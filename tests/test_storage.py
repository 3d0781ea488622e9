"""Acknowledgement lifecycle, history, audit and migrations on a real SQLite file."""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from checks.config import validate
from checks.model import Status
from runbooks.readiness import BadDuration, NotAttestable, Readiness, UnknownItem, parse_duration
from storage.db import SCHEMA_VERSION, StorageError, open_db


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def readiness(tmp_path, clock):
    config = validate(
        {"targets": {"prod": {}}, "acks": {"default_days": 90, "items": {"diag.har_capture": 30}}}
    )
    return Readiness.open(config, tmp_path / "lsready.db", clock=clock)


def test_ack_expires_back_to_manual_and_reack_extends(readiness, clock):
    ack = readiness.acknowledge("prod", "postgres.recovery_rehearsed", "U1", note="restore drill")
    assert ack.expires == clock.now + timedelta(days=90)
    assert "postgres.recovery_rehearsed" in readiness.attestations("prod")
    clock.advance(days=89)
    assert "postgres.recovery_rehearsed" in readiness.attestations("prod")
    clock.advance(days=2)
    assert readiness.attestations("prod") == {}
    readiness.acknowledge("prod", "postgres.recovery_rehearsed", "U2", expires="2w")
    current = readiness.acks.active("prod")["postgres.recovery_rehearsed"]
    assert current.by == "U2" and current.expires == clock.now + timedelta(days=14)


def test_check_shows_attested_until_expiry_then_manual(readiness, clock):
    readiness.acknowledge("prod", "diag.har_capture", "alice", note="runbook at wiki/har")
    result = readiness.check("prod", "diag.har_capture").results[0]
    assert result.status is Status.ATTESTED and "alice" in result.summary
    clock.advance(days=31)
    assert readiness.check("prod", "diag.har_capture").results[0].status is Status.MANUAL


def test_attestation_applies_in_check_with_real_clock(tmp_path):
    config = validate({"targets": {"prod": {}}})
    readiness = Readiness.open(config, tmp_path / "db.sqlite")
    readiness.acknowledge("prod", "diag.har_capture", "alice", note="runbook at wiki/har")
    result = readiness.check("prod", "diag.har_capture").results[0]
    assert result.status is Status.ATTESTED
    assert "alice" in result.summary and "runbook at wiki/har" in result.summary
    readiness.revoke("prod", "diag.har_capture", "bob")
    assert readiness.check("prod", "diag.har_capture").results[0].status is Status.MANUAL


def test_per_item_expiry_from_config(readiness, clock):
    ack = readiness.acknowledge("prod", "diag.har_capture", "U1")
    assert ack.expires == clock.now + timedelta(days=30)


def test_revoke_turns_item_back_and_is_audited(readiness):
    readiness.acknowledge("prod", "diag.har_capture", "U1")
    assert readiness.revoke("prod", "diag.har_capture", "U2") == 1
    assert readiness.attestations("prod") == {}
    assert readiness.revoke("prod", "diag.har_capture", "U2") == 0
    actions = [(e.actor, e.action, e.outcome) for e in readiness.audit.since()]
    assert actions == [("U1", "ack", "ok"), ("U2", "revoke", "ok"), ("U2", "revoke", "nothing to revoke")]


def test_acknowledging_an_automated_item_is_refused(readiness):
    with pytest.raises(NotAttestable, match="checked automatically"):
        readiness.acknowledge("prod", "clickhouse.migrations", "U1")


def test_acknowledging_an_unknown_id_suggests_the_closest(readiness):
    with pytest.raises(UnknownItem, match=r"Did you mean 'diag\.har_capture'"):
        readiness.acknowledge("prod", "diag.har_captur", "U1")


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("2w", 14), ("3mo", 90), ("45", 45), ("1 week", 7)])
def test_durations(text, days):
    assert parse_duration(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["soon", "0d", "-3d", "99999d"])
def test_bad_durations_are_refused_with_a_hint(text):
    with pytest.raises(BadDuration):
        parse_duration(text)


def test_expiring_lists_soonest_first(readiness, clock):
    readiness.acknowledge("prod", "diag.har_capture", "U1", expires="10d")
    readiness.acknowledge("prod", "diag.log_collection", "U2", expires="5d")
    readiness.acknowledge("prod", "model.read_path", "U3", expires="60d")
    soon = readiness.acks.expiring("prod", timedelta(days=14))
    assert [a.item_id for a in soon] == ["diag.log_collection", "diag.har_capture"]


def test_reminder_is_claimed_once(readiness):
    ack = readiness.acknowledge("prod", "diag.har_capture", "U1")
    assert readiness.acks.claim_reminder(ack.id, "expiry") is True
    assert readiness.acks.claim_reminder(ack.id, "expiry") is False


def test_full_checks_are_recorded_in_history(readiness):
    first = readiness.check("prod")
    stored = readiness.history.latest("prod")
    assert stored is not None and len(stored.statuses) == len(first.results) == 69
    assert stored.score["percent"] == first.score.percent
    readiness.check("prod", "1")  # partial runs are not history
    assert len(readiness.history.runs("prod")) == 1


def test_database_created_by_first_schema_upgrades_cleanly(tmp_path):
    path = tmp_path / "old.db"
    old = open_db(path, upto=1)
    old["acks"].insert({"target": "prod", "item_id": "diag.har_capture", "by": "U1", "note": "kept",
                        "created": "2026-01-01T00:00:00+00:00", "expires": None})  # fmt: skip
    old.conn.close()
    db = open_db(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db["acks"].count == 1 and db["digests_sent"].exists() and db["reminders_sent"].exists()
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this lsready"):
        open_db(path)


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open the lsready database"):
        open_db(blocker / "sub" / "lsready.db")


def test_probe_item_that_can_ask_for_a_person_is_attestable(readiness):
    ack = readiness.acknowledge("prod", "ops.monitoring", "U1", note="Datadog dashboards and monitors")
    assert ack.item_id == "ops.monitoring"
