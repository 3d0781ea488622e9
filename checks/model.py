"""The readiness vocabulary: statuses, checklist items, probe evidence and item results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # could not tell: unreachable, timeout, no permission
    MANUAL = "manual"  # needs a person and nobody has attested it
    ATTESTED = "attested"  # a person attested it and the attestation has not expired
    NA = "n/a"  # does not apply to this deployment


class Kind(StrEnum):
    PROBE = "probe"
    MANUAL = "manual"
    DERIVED = "derived"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SECTIONS: dict[str, str] = {
    "1": "Redis",
    "2": "PostgreSQL",
    "3": "ClickHouse",
    "4": "Blob storage",
    "5": "Autoscaling",
    "6": "Scaling mental model",
    "7": "Networking & proxies",
    "8": "Operational safeguards",
    "9": "Optional performance levers",
    "10": "Diagnostics & support readiness",
    "11": "Known failure modes",
    "signoff": "Final sign-off",
}


@dataclass(frozen=True)
class Item:
    """One checklist item, as data."""

    id: str
    section: str
    title: str
    seed: str
    kind: Kind
    required: bool
    severity: Severity
    remediation: str
    docs: str | None = None
    probe: str | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    derived_from: tuple[str, ...] | None = None  # None unless kind is derived
    attestable_probe: bool = False  # a probe item whose probe may answer `manual`, so a person can attest it
    schema: Mapping[str, Any] = field(default_factory=dict)  # key -> checks.thresholds.Threshold

    @property
    def attestable(self) -> bool:
        """A person may acknowledge it: a manual item, or a probe item whose probe can ask for one."""
        return self.kind is Kind.MANUAL or (self.kind is Kind.PROBE and self.attestable_probe)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "title": self.title,
            "seed": self.seed,
            "kind": self.kind.value,
            "required": self.required,
            "severity": self.severity.value,
            "probe": self.probe,
            "attestable": self.attestable,
            "thresholds": dict(self.thresholds),
            "threshold_schema": {k: t.to_dict() for k, t in self.schema.items()},
            "remediation": self.remediation,
            "docs": self.docs,
        }


@dataclass(frozen=True)
class Evidence:
    """What a probe saw: a status, one sentence naming resource, value and threshold, and the values."""

    status: Status
    summary: str
    observed: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] | None = None


@dataclass(frozen=True)
class Attestation:
    """A person's acknowledgement of an item that evidence alone cannot settle."""

    item_id: str
    by: str
    at: datetime
    expires: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class Result:
    """The verdict on one item for one target."""

    item: Item
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] | None = None
    duration_s: float = 0.0
    attestation: Attestation | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.item.id,
            "section": self.item.section,
            "title": self.item.title,
            "status": self.status.value,
            "required": self.item.required,
            "severity": self.item.severity.value,
            "summary": self.summary,
            "evidence": self.evidence,
            "threshold": self.threshold,
            "remediation": self.item.remediation,
            "duration_s": round(self.duration_s, 3),
        }
        if self.attestation is not None:
            data["attestation"] = {
                "by": self.attestation.by,
                "at": self.attestation.at.isoformat(),
                "expires": self.attestation.expires.isoformat() if self.attestation.expires else None,
                "note": self.attestation.note,
            }
        return data


# Statuses that never count toward the score's passing share.
NOT_PASSING = frozenset({Status.WARN, Status.FAIL, Status.UNKNOWN, Status.MANUAL})
