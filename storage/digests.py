"""Which digest slots have been sent: the record that makes a slot post exactly once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlite_utils

from storage.db import iso, parse, utcnow

CLAIM_STALE = timedelta(minutes=10)  # a claim this old with no message is a post that died


class DigestLog:
    def __init__(self, db: sqlite_utils.Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def claim(self, target: str, slot: datetime, stale_after: timedelta = CLAIM_STALE) -> bool:
        """True for exactly one caller per (target, slot), even across processes and restarts.

        A claim whose post never completed (the process died mid-post) may be taken over once it is stale.
        """
        now = self.clock()
        with self.db.conn:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO digests_sent (target, slot, sent_at) VALUES (?, ?, ?)",
                [target, iso(slot), iso(now)],
            )
            if cur.rowcount == 1:
                return True
            cur = self.db.execute(
                "UPDATE digests_sent SET sent_at = ? WHERE target = ? AND slot = ? AND message_ts IS NULL"
                " AND sent_at < ?",
                [iso(now), target, iso(slot), iso(now - stale_after)],
            )
        return cur.rowcount == 1

    def pending_since(self, target: str, slot: datetime) -> datetime | None:
        """When the slot was claimed, if its post has not completed (running elsewhere, or died)."""
        rows = self.db.execute(
            "SELECT sent_at FROM digests_sent WHERE target = ? AND slot = ? AND message_ts IS NULL",
            [target, iso(slot)],
        ).fetchall()
        return parse(rows[0][0]) if rows else None

    def record_posted(
        self, target: str, at: datetime, channel: str, message_ts: str, run_id: int | None
    ) -> None:
        """A digest posted outside the schedule (by hand): later digests compare with its run."""
        with self.db.conn:
            self.db.execute(
                "INSERT OR REPLACE INTO digests_sent (target, slot, sent_at, channel, message_ts, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [target, iso(at), iso(self.clock()), channel, message_ts, run_id],
            )

    def release(self, target: str, slot: datetime) -> None:
        """Give a slot back when posting failed, so a retry may send it."""
        with self.db.conn:
            self.db.execute(
                "DELETE FROM digests_sent WHERE target = ? AND slot = ? AND message_ts IS NULL",
                [target, iso(slot)],
            )

    def mark_sent(
        self, target: str, slot: datetime, channel: str, message_ts: str, run_id: int | None
    ) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE digests_sent SET channel = ?, message_ts = ?, run_id = ?"
                " WHERE target = ? AND slot = ?",
                [channel, message_ts, run_id, target, iso(slot)],
            )

    def last_sent(self, target: str) -> dict[str, object] | None:
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM digests_sent WHERE target = ? AND message_ts IS NOT NULL"
            " ORDER BY slot DESC LIMIT 1",
            [target],
        )
        return rows[0] if rows else None
