"""Acknowledgements: a person attests an item; it holds until it expires or is revoked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from storage.db import iso, parse, utcnow


@dataclass(frozen=True)
class Ack:
    id: int
    target: str
    item_id: str
    by: str
    note: str
    created: datetime
    expires: datetime | None
    evidence_link: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    revoked: datetime | None = None
    revoked_by: str | None = None
    supersedes: Ack | None = None  # set on a new acknowledgement that replaced a live one

    def active(self, now: datetime) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > now)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "target": self.target, "item_id": self.item_id, "by": self.by,
            "note": self.note, "created": iso(self.created), "expires": iso(self.expires),
            "evidence_link": self.evidence_link, "channel": self.channel, "thread_ts": self.thread_ts,
            "revoked": iso(self.revoked), "revoked_by": self.revoked_by,
        }  # fmt: skip


def _row(row: dict[str, object]) -> Ack:
    return Ack(
        id=int(row["id"]),  # type: ignore[arg-type]
        target=str(row["target"]),
        item_id=str(row["item_id"]),
        by=str(row["by"]),
        note=str(row["note"] or ""),
        created=parse(row["created"]),  # type: ignore[arg-type]
        expires=parse(row["expires"]),  # type: ignore[arg-type]
        evidence_link=row["evidence_link"],  # type: ignore[arg-type]
        channel=row["channel"],  # type: ignore[arg-type]
        thread_ts=row["thread_ts"],  # type: ignore[arg-type]
        revoked=parse(row["revoked"]),  # type: ignore[arg-type]
        revoked_by=row["revoked_by"],  # type: ignore[arg-type]
    )


class AckStore:
    """Every acknowledgement is a row; the newest unrevoked one for an item is the one that counts."""

    def __init__(self, db: sqlite_utils.Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def add(
        self,
        target: str,
        item_id: str,
        by: str,
        *,
        valid_for: timedelta | None,
        note: str = "",
        evidence_link: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> Ack:
        """Record an acknowledgement; a re-acknowledgement supersedes (and so extends) the previous one."""
        now = self.clock()
        row = {
            "target": target, "item_id": item_id, "by": by, "note": note, "evidence_link": evidence_link,
            "created": iso(now), "expires": iso(now + valid_for) if valid_for else None,
            "channel": channel, "thread_ts": thread_ts,
        }  # fmt: skip
        with self.db.conn:
            ack_id = self.db["acks"].insert(row).last_pk
        return self.get(int(ack_id))  # type: ignore[arg-type]

    def get(self, ack_id: int) -> Ack:
        return _row(self.db["acks"].get(ack_id))

    def revoke(self, target: str, item_id: str, by: str) -> int:
        """Revoke the item's live acknowledgements; returns how many were revoked."""
        with self.db.conn:
            cur = self.db.execute(
                "UPDATE acks SET revoked = ?, revoked_by = ?"
                " WHERE target = ? AND item_id = ? AND revoked IS NULL",
                [iso(self.clock()), by, target, item_id],
            )
        return cur.rowcount

    def current(self, target: str) -> dict[str, Ack]:
        """The acknowledgement that counts for each item of a target, active or expired."""
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM acks WHERE target = ? AND revoked IS NULL ORDER BY created, id", [target]
        )
        latest: dict[str, Ack] = {}
        for row in rows:
            latest[str(row["item_id"])] = _row(row)
        return latest

    def active(self, target: str) -> dict[str, Ack]:
        now = self.clock()
        return {k: a for k, a in self.current(target).items() if a.active(now)}

    def expiring(self, target: str, within: timedelta) -> list[Ack]:
        """Active acknowledgements that expire within the window, soonest first."""
        now = self.clock()
        soon = [
            a for a in self.active(target).values() if a.expires is not None and a.expires <= now + within
        ]
        return sorted(soon, key=lambda a: a.expires)  # type: ignore[arg-type, return-value]

    def list(self, target: str | None = None, *, include_inactive: bool = False) -> list[Ack]:
        where, args = ("WHERE target = ?", [target]) if target else ("", [])
        rows = self.db.execute_returning_dicts(f"SELECT * FROM acks {where} ORDER BY created, id", args)
        acks = [_row(r) for r in rows]
        if include_inactive:
            return acks
        now = self.clock()
        current = {a.id for t in {a.target for a in acks} for a in self.current(t).values()}
        return [a for a in acks if a.id in current and a.active(now)]

    def changes_since(self, target: str, since: datetime) -> dict[str, list[Ack]]:
        """Acknowledgements of a target added, revoked, and (the one that counted) expired since `since`."""
        now = self.clock()
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM acks WHERE target = ? AND (created >= ? OR revoked > ? OR expires > ?)"
            " ORDER BY created, id",
            [target, iso(since), iso(since), iso(since)],
        )
        acks = [_row(r) for r in rows]
        counted = {a.id for a in self.current(target).values()}
        # A revocation clears every earlier row of the item too; the newest one is what was revoked.
        revoked: dict[str, Ack] = {}
        for a in acks:
            if a.revoked is not None and a.revoked > since:
                revoked[a.item_id] = a
        return {
            # Times are stored to the second: one made in the very second of `since` is included.
            "added": [a for a in acks if a.created >= since],
            "revoked": list(revoked.values()),
            "expired": [
                a for a in acks if a.id in counted and a.expires is not None and since < a.expires <= now
            ],
        }

    def states(self, acks: list[Ack]) -> dict[int, str]:
        """Each acknowledgement's state: active, expired, superseded (a later one replaced it) or revoked."""
        now = self.clock()
        newest: dict[tuple[str, str], int] = {}
        for a in sorted(acks, key=lambda a: (a.created, a.id)):
            if a.revoked is None:
                newest[(a.target, a.item_id)] = a.id
        out = {}
        for a in acks:
            if a.revoked is not None:
                out[a.id] = "revoked"
            elif newest.get((a.target, a.item_id)) != a.id:
                out[a.id] = "superseded"
            else:
                out[a.id] = "active" if a.active(now) else "expired"
        return out

    def release_reminder(self, ack_id: int, kind: str) -> None:
        """Give a reminder back when it could not be sent, so a later run sends it."""
        with self.db.conn:
            self.db.execute("DELETE FROM reminders_sent WHERE ack_id = ? AND kind = ?", [ack_id, kind])

    def claim_reminder(self, ack_id: int, kind: str) -> bool:
        """True exactly once per acknowledgement and reminder kind, across processes."""
        with self.db.conn:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO reminders_sent (ack_id, kind, sent_at) VALUES (?, ?, ?)",
                [ack_id, kind, iso(self.clock())],
            )
        return cur.rowcount == 1
