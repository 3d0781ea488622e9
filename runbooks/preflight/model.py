"""The preflight vocabulary: findings, steps, the verdict and the whole result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from checks.model import Status
from runbooks.model import step_dict


class Level(StrEnum):
    BLOCKING = "blocking"  # the upgrade would lose data or fail: clear it first
    WARNING = "warning"  # safe to go on once someone has read it
    NOTE = "note"  # worth knowing, nothing to do


class Verdict(StrEnum):
    READY = "ready"
    READY_WITH_WARNINGS = "ready_with_warnings"
    NOT_READY = "not_ready"
    INCONCLUSIVE = "inconclusive"  # nothing blocks, but something could not be read


@dataclass(frozen=True)
class Finding:
    """One thing the upgrade would run into: what was seen, and the action that clears it."""

    id: str
    level: Level
    text: str
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "level": self.level.value, "text": self.text, "action": self.action}


@dataclass(frozen=True)
class Outcome:
    """What a step returns: one sentence, its findings and the values it read."""

    summary: str
    findings: tuple[Finding, ...] = ()
    evidence: dict[str, Any] | None = None


def step_status(findings: tuple[Finding, ...]) -> Status:
    levels = {f.level for f in findings}
    if Level.BLOCKING in levels:
        return Status.FAIL
    return Status.WARN if Level.WARNING in levels else Status.PASS


@dataclass(frozen=True)
class PreflightStep:
    step_id: str
    title: str
    status: Status
    summary: str
    findings: tuple[Finding, ...]
    evidence: dict[str, Any]
    at: datetime
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return step_dict(self, findings=[f.to_dict() for f in self.findings])


HEADLINES = {
    Verdict.READY: "Ready: nothing found that this upgrade would break.",
    Verdict.READY_WITH_WARNINGS: "Ready with warnings: read them before `helm upgrade`.",
    Verdict.NOT_READY: "Not ready: clear the blocking findings before `helm upgrade`.",
    Verdict.INCONCLUSIVE: "Could not tell: nothing blocks, but some steps could not be read.",
}


def verdict(steps: tuple[PreflightStep, ...]) -> Verdict:
    """Blocking beats not knowing, which beats warnings: an unread step never passes for a clean one."""
    findings = [f for s in steps for f in s.findings]
    if any(f.level is Level.BLOCKING for f in findings):
        return Verdict.NOT_READY
    if any(s.status is Status.UNKNOWN for s in steps):
        return Verdict.INCONCLUSIVE
    if any(f.level is Level.WARNING for f in findings):
        return Verdict.READY_WITH_WARNINGS
    return Verdict.READY


@dataclass(frozen=True)
class PreflightResult:
    target: str
    verdict: Verdict
    steps: tuple[PreflightStep, ...]
    started_at: datetime
    duration_s: float
    to_version: str | None = None
    values_file: str | None = None

    @property
    def headline(self) -> str:
        return HEADLINES[self.verdict]

    def findings(self, level: Level) -> list[Finding]:
        return [f for s in self.steps for f in s.findings if f.level is level]

    @property
    def unmeasured(self) -> list[str]:
        return [f"{s.title}: {s.summary}" for s in self.steps if s.status is Status.UNKNOWN]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict.value,
            "headline": self.headline,
            "to_version": self.to_version,
            "values_file": self.values_file,
            "blocking": [f.to_dict() for f in self.findings(Level.BLOCKING)],
            "warnings": [f.to_dict() for f in self.findings(Level.WARNING)],
            "notes": [f.to_dict() for f in self.findings(Level.NOTE)],
            "unmeasured": self.unmeasured,
            "steps": [s.to_dict() for s in self.steps],
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
        }
