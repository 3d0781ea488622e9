"""Effects done once: the key of each write that a retry or a resubmission must not repeat."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlite_utils

from storage.db import iso, utcnow

KEEP = timedelta(days=2)  # Slack retries an event for about an hour; a resubmission comes sooner


class Effects:
    def __init__(self, db: sqlite_utils.Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def claim(self, key: str, within: timedelta = KEEP) -> bool:
        """True for exactly one caller per key within `within`, across processes and restarts."""
        now = self.clock()
        with self.db.conn:
            cur = self.db.execute(
                "INSERT INTO effects (key, at) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE effects.at < ?",
                [key, iso(now), iso(now - within)],
            )
            claimed = cur.rowcount == 1
            if claimed:
                self.db.execute("DELETE FROM effects WHERE at < ?", [iso(now - KEEP)])
        return claimed

    def release(self, key: str) -> None:
        """Give a key back when its write failed, so a retry may do it."""
        with self.db.conn:
            self.db.execute("DELETE FROM effects WHERE key = ?", [key])
