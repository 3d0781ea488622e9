"""The alert rules lsready ships, generated from one source with the catalog's thresholds.

Every rule is data: its expression over the exporter's families (bot/exporter.py), its
severity, the triage runbook that answers it, and two cases that `promtool test rules` replays:
one where it fires and one just under its condition where it stays quiet. From these come the
plain rules file, the prometheus-operator PrometheusRule and the promtool unit tests in
deploy/prometheus/ (regenerate them with `lsready alert-rules --write deploy/prometheus`).

Thresholds are read from the catalog (with `thresholds:` overrides): ingestion delay, queue depth
and REDIS_RUNS_EXPIRY_SECONDS, ClickHouse concurrency and disk ratios, and the `ops.alerts` item's
timing; the rest come from the trace-visibility runbook's resolved thresholds, as the triage
grades them. Every alert carries the labels `runbook`, `lsready_target` and `severity`, and the
annotations `summary` and `description` (with the value); an Alertmanager receiver can rely on them.

model.py is what a rule is; levels.yaml holds the rules that fire on one gauge above a level, and
shipped.py reads them and adds those with an expression of their own; render.py writes the files,
expanding Prometheus's templates (templates.py) for promtool's expectations.
"""

from __future__ import annotations

from runbooks.alert_rules.model import GROUP, SELF_GROUP, AlertRule, Case, thresholds
from runbooks.alert_rules.render import FILES, render_operator, render_rules, render_tests, rule_groups
from runbooks.alert_rules.shipped import rules
from runbooks.alert_rules.templates import expand, humanize_duration

__all__ = [
    "FILES",
    "GROUP",
    "SELF_GROUP",
    "AlertRule",
    "Case",
    "expand",
    "humanize_duration",
    "render_operator",
    "render_rules",
    "render_tests",
    "rule_groups",
    "rules",
    "thresholds",
]
