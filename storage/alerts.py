"""Which Slack thread answers which Alertmanager alert group: the record that makes a group post once.

A group (Alertmanager's `groupKey`) has at most one open thread, enforced by a unique index, so
duplicate deliveries (an HA pair notifies twice), concurrent ones and those after a restart all
land in the same thread. Once resolved, the next firing of the group opens a new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from storage.db import iso, parse, utcnow

CLAIM_STALE = timedelta(minutes=2)  # a claim this old without a message is a post that died
IDLE = timedelta(hours=24)  # an open thread not notified for this long is over (resolved never came)


@dataclass(frozen=True)
class AlertThread:
    id: int
    group_key: str
    channel: str
    message_ts: str | None
    target: str
    runbook: str
    alertname: str
    severity: str
    summary: str
    started_at: datetime
    last_seen: datetime
    notifications: int
    firing: int
    triaged_at: datetime | None = None
    diagnosis: str | None = None
    snapshot: str | None = None
    resolved_at: datetime | None = None
    external_url: str = ""
    group_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AlertThread:
        return cls(
            id=row["id"],
            group_key=row["group_key"],
            channel=row["channel"],
            message_ts=row["message_ts"],
            target=row["target"],
            runbook=row["runbook"],
            alertname=row["alertname"],
            severity=row["severity"],
            summary=row["summary"],
            started_at=parse(row["started_at"]),  # type: ignore[arg-type]
            last_seen=parse(row["last_seen"]),  # type: ignore[arg-type]
            notifications=row["notifications"],
            firing=row["firing"],
            triaged_at=parse(row["triaged_at"]),
            diagnosis=row["diagnosis"],
            snapshot=row["snapshot"],
            resolved_at=parse(row["resolved_at"]),
            external_url=row["external_url"],
            group_labels=json.loads(row["group_labels"] or "{}"),
        )


@dataclass(frozen=True)
class Firing:
    """What a firing notification says about its group."""

    channel: str
    target: str
    runbook: str
    alertname: str
    severity: str
    summary: str
    started_at: datetime
    firing: int
    group_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""


class AlertThreads:
    def __init__(self, db: sqlite_utils.Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def claim(
        self, group_key: str, firing: Firing, stale_after: timedelta = CLAIM_STALE
    ) -> tuple[AlertThread, bool]:
        """The group's open thread, and True for exactly one caller: the one that must post it.

        Also True when an earlier claim never got its message posted (the process died mid-post) and is
        stale. The claimer's first triage is claimed with it.
        """
        now = self.clock()
        with self.db.conn:
            self.db.execute(
                "UPDATE alert_threads SET resolved_at = last_seen"
                " WHERE group_key = ? AND resolved_at IS NULL AND last_seen < ?",
                [group_key, iso(now - IDLE)],
            )
            cur = self.db.execute(
                "INSERT OR IGNORE INTO alert_threads (group_key, claimed_at, channel, target, runbook,"
                " alertname, severity, summary, group_labels, external_url, started_at, last_seen,"
                " firing, triaged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    group_key, iso(now), firing.channel, firing.target, firing.runbook, firing.alertname,
                    firing.severity, firing.summary, json.dumps(firing.group_labels, sort_keys=True),
                    firing.external_url, iso(firing.started_at), iso(now), firing.firing, iso(now),
                ],
            )  # fmt: skip
            claimed = cur.rowcount == 1
            if not claimed:
                cur = self.db.execute(
                    "UPDATE alert_threads SET claimed_at = ?, triaged_at = ? WHERE group_key = ?"
                    " AND resolved_at IS NULL AND message_ts IS NULL AND claimed_at < ?",
                    [iso(now), iso(now), group_key, iso(now - stale_after)],
                )
                claimed = cur.rowcount == 1
        thread = self.open(group_key)
        assert thread is not None, "an open thread exists once claimed or inserted"
        return thread, claimed

    def open(self, group_key: str) -> AlertThread | None:
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM alert_threads WHERE group_key = ? AND resolved_at IS NULL", [group_key]
        )
        return AlertThread.of(rows[0]) if rows else None

    def get(self, thread_id: int) -> AlertThread | None:
        rows = self.db.execute_returning_dicts("SELECT * FROM alert_threads WHERE id = ?", [thread_id])
        return AlertThread.of(rows[0]) if rows else None

    def posted(self, thread_id: int, message_ts: str) -> AlertThread:
        with self.db.conn:
            self.db.execute("UPDATE alert_threads SET message_ts = ? WHERE id = ?", [message_ts, thread_id])
        return self.get(thread_id)  # type: ignore[return-value]

    def release(self, thread_id: int) -> None:
        """Give the claim back when posting failed, so Alertmanager's retry may post it."""
        with self.db.conn:
            self.db.execute("DELETE FROM alert_threads WHERE id = ? AND message_ts IS NULL", [thread_id])

    def seen(self, thread_id: int, firing: int, summary: str, severity: str) -> AlertThread:
        """A repeat notification: one more, seen now, with its alert count, summary and severity."""
        with self.db.conn:
            self.db.execute(
                "UPDATE alert_threads SET notifications = notifications + 1, last_seen = ?, firing = ?,"
                " summary = ?, severity = ? WHERE id = ?",
                [iso(self.clock()), firing, summary, severity, thread_id],
            )
        return self.get(thread_id)  # type: ignore[return-value]

    def claim_triage(self, thread_id: int, after: timedelta | None) -> bool:
        """True for one caller once the last triage is at least `after` old (None: whatever its age)."""
        now = self.clock()
        cutoff = now if after is None else now - after
        with self.db.conn:
            cur = self.db.execute(
                "UPDATE alert_threads SET triaged_at = ? WHERE id = ?"
                " AND (triaged_at IS NULL OR triaged_at <= ?)",
                [iso(now), thread_id, iso(cutoff)],
            )
        return cur.rowcount == 1

    def triaged(self, thread_id: int, diagnosis: str, snapshot: str | None) -> AlertThread:
        with self.db.conn:
            self.db.execute(
                "UPDATE alert_threads SET diagnosis = ?, snapshot = ? WHERE id = ?",
                [diagnosis, snapshot, thread_id],
            )
        return self.get(thread_id)  # type: ignore[return-value]

    def resolve(self, group_key: str, at: datetime | None = None) -> AlertThread | None:
        """Close the group's open thread; the one caller that closed it gets it back, others None."""
        now = self.clock()
        with self.db.conn:
            rows = self.db.execute(
                "UPDATE alert_threads SET resolved_at = ?, last_seen = ?, firing = 0,"
                " notifications = notifications + 1 WHERE group_key = ? AND resolved_at IS NULL RETURNING id",
                [iso(at or now), iso(now), group_key],
            ).fetchall()
        return self.get(rows[0][0]) if rows else None
