"""The audit log: who did what, where, when, and how it ended. Append-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from storage.db import iso, parse, utcnow


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str
    place: str | None
    outcome: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "place": self.place,
            "outcome": self.outcome,
        }


class Audit:
    def __init__(self, db: sqlite_utils.Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def record(
        self,
        actor: str,
        action: str,
        *,
        outcome: str = "ok",
        target: str | None = None,
        detail: str = "",
        place: str | None = None,
    ) -> int:
        with self.db.conn:
            return int(
                self.db["audit"]
                .insert(
                    {
                        "at": iso(self.clock()),
                        "actor": actor,
                        "action": action,
                        "target": target,
                        "detail": detail,
                        "place": place,
                        "outcome": outcome,
                    }
                )
                .last_pk  # type: ignore[arg-type]
            )

    def since(self, when: datetime | None = None) -> list[AuditEntry]:
        rows = self.db.execute_returning_dicts(
            "SELECT * FROM audit WHERE at >= ? ORDER BY at, id", [iso(when) if when else ""]
        )
        return [
            AuditEntry(
                id=r["id"],
                at=parse(r["at"]),
                actor=r["actor"],
                action=r["action"],  # type: ignore[arg-type]
                target=r["target"],
                detail=r["detail"],
                place=r["place"],
                outcome=r["outcome"],
            )
            for r in rows
        ]
