"""The triage vocabulary: runbooks and their steps as data, step results, diagnoses.

A runbook is an ordered tuple of steps. Each step names a measurement (`measure`, a key of
`runbooks.measure.MEASURES`), the signal its status speaks for (`clickhouse`, `queues`, `delay`),
and its transitions (`next`): the first transition whose condition holds names the next step or
ends the walk. After the walk, the runbook's rules, in order, turn the signals into a diagnosis.
`runbooks.engine` evaluates all of this without I/O, so a runbook is tested by rehearsal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from checks.model import Status

END = "end"  # a transition's target that concludes the walk


class DiagnosisKind(StrEnum):
    CLICKHOUSE_SATURATION = "clickhouse_saturation"
    INGESTION_BACKPRESSURE = "ingestion_backpressure"
    # Runs leave the queues promptly and every ClickHouse signal passes, yet they land late.
    INSERT_PATH_DELAY = "insert_path_delay"
    HEALTHY = "healthy"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class FromCatalog:
    """A runbook threshold: a catalog item's (or triage-only signal's) threshold, never a number here."""

    item: str
    key: str


@dataclass(frozen=True)
class When:
    """Holds when the result of `step` on the path so far has one of `status`."""

    step: str
    status: frozenset[Status]


@dataclass(frozen=True)
class Go:
    """A transition: to step `to` (or END), when `when` holds; no condition means always."""

    to: str
    when: When | None = None


@dataclass(frozen=True)
class Step:
    """One step: what it measures, which signal it speaks for, and what decides the next step."""

    id: str
    title: str
    measure: str
    signal: str | None = None  # None: evidence only, never decides the diagnosis
    next: tuple[Go, ...] = ()  # empty: the following step, or the end after the last one


# A rule's condition: signal -> the aggregated statuses it accepts; None stands for "not measured
# on this path" (the step was skipped), which a rule must accept explicitly.
SignalMatch = Mapping[str, frozenset[Status | None]]


@dataclass(frozen=True)
class Rule:
    """A conclusion: when every listed signal is in its set, this kind, headline and actions apply.

    Headline and actions are templates: {fullname}, {namespace} and {unmeasured} are filled in.
    A rule with conditions never matches when none of its signals was measured at all.
    """

    id: str
    kind: DiagnosisKind
    when: SignalMatch
    headline: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    steps: tuple[Step, ...]
    rules: tuple[Rule, ...]  # first match wins
    fallback: Rule  # when no rule matches; an inconclusive rule naming what was not measured
    thresholds: Mapping[str, FromCatalog] = field(default_factory=dict)
    description: str = ""

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        return [s.id for s in self.steps].index(step_id)


@dataclass(frozen=True)
class StepResult:
    """What one step measured: a status against its thresholds, one sentence, the values, when."""

    step_id: str
    title: str
    status: Status
    summary: str
    evidence: dict[str, Any]
    at: datetime  # when the measurement finished (UTC)
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return step_dict(self)


def step_dict(step: Any, **after_summary: Any) -> dict[str, Any]:
    """A finished step as JSON: a triage's StepResult, or a preflight's step with its findings."""
    return {
        "id": step.step_id,
        "title": step.title,
        "status": step.status.value,
        "summary": step.summary,
        **after_summary,
        "evidence": step.evidence,
        "at": step.at.isoformat(),
        "duration_s": round(step.duration_s, 3),
    }


@dataclass(frozen=True)
class Diagnosis:
    kind: DiagnosisKind
    headline: str
    reasons: tuple[str, ...]  # the evidence that decided it, one sentence each
    actions: tuple[str, ...]  # in the order to do them
    unmeasured: tuple[str, ...]  # what could not be measured, and why
    rule: str = ""  # id of the rule that decided it

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "headline": self.headline,
            "reasons": list(self.reasons),
            "actions": list(self.actions),
            "unmeasured": list(self.unmeasured),
            "rule": self.rule,
        }


@dataclass(frozen=True)
class TriageResult:
    runbook: str
    target: str
    diagnosis: Diagnosis
    steps: tuple[StepResult, ...]  # the path taken, in order
    started_at: datetime
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "target": self.target,
            "diagnosis": self.diagnosis.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "actions": list(self.diagnosis.actions),
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
        }
