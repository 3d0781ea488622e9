"""Check-run history: every run's results, for diffs between digests and trends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from storage.db import iso, parse


@dataclass(frozen=True)
class StoredRun:
    id: int
    target: str
    started_at: datetime
    duration_s: float
    score: dict[str, Any]
    statuses: dict[str, str]  # item id -> status
    summaries: dict[str, str]


class History:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def record(
        self,
        target: str,
        started_at: datetime,
        duration_s: float,
        score: dict[str, Any],
        results: list[dict[str, Any]],
    ) -> int:
        """Store one run (results as dicts with id, status, summary, evidence); returns its id."""
        with self.db.conn:
            run_id = (
                self.db["runs"]
                .insert(
                    {
                        "target": target,
                        "started_at": iso(started_at),
                        "duration_s": duration_s,
                        "score": json.dumps(score),
                    }
                )
                .last_pk
            )
            self.db["results"].insert_all(
                {
                    "run_id": run_id,
                    "item_id": r["id"],
                    "status": r["status"],
                    "summary": r["summary"],
                    "evidence": json.dumps(r.get("evidence") or {}, default=str),
                }
                for r in results
            )
        return int(run_id)  # type: ignore[arg-type]

    def get(self, run_id: int) -> StoredRun:
        row = self.db["runs"].get(run_id)
        results = self.db.execute_returning_dicts(
            "SELECT item_id, status, summary FROM results WHERE run_id = ?", [run_id]
        )
        return StoredRun(
            id=int(row["id"]),
            target=row["target"],
            started_at=parse(row["started_at"]),  # type: ignore[arg-type]
            duration_s=float(row["duration_s"]),
            score=json.loads(row["score"]),
            statuses={r["item_id"]: r["status"] for r in results},
            summaries={r["item_id"]: r["summary"] for r in results},
        )

    def latest_id(self, target: str) -> int | None:
        """The id of the newest run of a target, without loading it."""
        row = self.db.execute(
            "SELECT id FROM runs WHERE target = ? ORDER BY started_at DESC, id DESC LIMIT 1", [target]
        ).fetchone()
        return int(row[0]) if row else None

    def latest(self, target: str, before: datetime | None = None, *, skip: int = 0) -> StoredRun | None:
        """The newest run of a target (optionally strictly before a time), or the one `skip` runs older."""
        sql = "SELECT id FROM runs WHERE target = ?"
        args: list[Any] = [target]
        if before is not None:
            sql += " AND started_at < ?"
            args.append(iso(before))
        sql += " ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?"
        args.append(skip)
        row = self.db.execute(sql, args).fetchone()
        return self.get(row[0]) if row else None

    def runs(self, target: str, limit: int = 20) -> list[StoredRun]:
        rows = self.db.execute(
            "SELECT id FROM runs WHERE target = ? ORDER BY started_at DESC, id DESC LIMIT ?", [target, limit]
        ).fetchall()
        return [self.get(r[0]) for r in rows]
