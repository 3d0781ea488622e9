"""Readiness score in buckets; `unknown` is its own bucket and never counts as passing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from checks.model import Kind, Result, Status


@dataclass(frozen=True)
class Score:
    buckets: dict[str, int]
    required_failing: tuple[str, ...]
    applicable: int
    passing: int
    required_unknown: tuple[str, ...] = ()  # required items nobody could verify: not a pass

    @property
    def percent(self) -> float:
        """Share of applicable items that pass or are attested (n/a excluded)."""
        return round(100.0 * self.passing / self.applicable, 1) if self.applicable else 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "buckets": dict(self.buckets),
            "required_failing": list(self.required_failing),
            "required_unknown": list(self.required_unknown),
            "applicable": self.applicable,
            "passing": self.passing,
        }


def score(results: Iterable[Result]) -> Score:
    buckets = {s.value: 0 for s in Status}
    required_failing: list[str] = []
    required_unknown: list[str] = []
    applicable = passing = 0
    for r in results:
        buckets[r.status.value] += 1
        if r.status is Status.NA:
            continue
        if r.item.kind is Kind.DERIVED:
            # A summary of other items: counting it would count them twice.
            if r.item.required and r.status is Status.FAIL:
                required_failing.append(r.item.id)
            continue
        applicable += 1
        if r.status in (Status.PASS, Status.ATTESTED):
            passing += 1
        elif r.status is Status.FAIL and r.item.required:
            required_failing.append(r.item.id)
        elif r.status is Status.UNKNOWN and r.item.required:
            required_unknown.append(r.item.id)
    return Score(buckets, tuple(required_failing), applicable, passing, tuple(required_unknown))
