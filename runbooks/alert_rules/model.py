"""What a shipped alert rule is: its Prometheus rule, and the promtool cases that prove it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.probes.k8s.monitoring import LSREADY_RULE_GROUP
from checks.registry import Catalog
from runbooks.definitions import RUNBOOKS
from runbooks.triage import resolve_thresholds

GROUP = LSREADY_RULE_GROUP  # the ops.alerts probe recognises the shipped rules by it
SELF_GROUP = "lsready.self"


@dataclass(frozen=True)
class Case:
    """Input series (1-minute steps, promtool notation), when to evaluate, and what fires then."""

    series: Mapping[str, str]
    eval_minutes: float
    firing: Sequence[Mapping[str, Any]]  # per expected alert: its labels from the series and $value


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # "warning" or "critical"
    runbook: str
    expr: str
    for_s: float
    summary: str
    description: str
    group: str = GROUP
    target: str = "{{ $labels.target }}"
    fires: Case | None = None
    quiet: Case | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_s:
            rule["for"] = duration(self.for_s)
        rule["labels"] = {"severity": self.severity, "runbook": self.runbook, "lsready_target": self.target}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


def duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def thresholds(catalog: Catalog) -> dict[str, Any]:
    """The triage's resolved thresholds plus the `ops.alerts` item's, from one catalog."""
    alerts = catalog.get("ops.alerts")
    if alerts is None:
        raise LookupError("the catalog has no ops.alerts item")
    return {**resolve_thresholds(RUNBOOKS["trace-visibility"], catalog), **alerts.thresholds}


def series(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"
