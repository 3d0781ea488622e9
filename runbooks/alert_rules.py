"""The alert rules lsready ships, generated from one source with the catalog's thresholds.

Every rule is data here: its expression over the exporter's families (bot/exporter.py), its
severity, the triage runbook that answers it, and two cases that `promtool test rules` replays:
one where it fires and one just under its condition where it stays quiet. From these come the
plain rules file, the prometheus-operator PrometheusRule and the promtool unit tests in
deploy/prometheus/ (regenerate them with `lsready alert-rules --write deploy/prometheus`).

Thresholds are read from the catalog (with `thresholds:` overrides): ingestion delay, queue depth
and REDIS_RUNS_EXPIRY_SECONDS, ClickHouse concurrency and disk ratios, and the `ops.alerts` item's
timing; the rest come from the trace-visibility runbook's resolved thresholds, as the triage
grades them. Every alert carries the labels `runbook`, `lsready_target` and `severity`, and the
annotations `summary` and `description` (with the value); an Alertmanager receiver can rely on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from checks.probes.k8s.monitoring import LSREADY_RULE_GROUP
from checks.registry import Catalog
from runbooks.definitions import RUNBOOKS
from runbooks.triage import resolve_thresholds

GROUP = LSREADY_RULE_GROUP  # the ops.alerts probe recognises the shipped rules by it
SELF_GROUP = "lsready.self"
JOB = "lsready"  # the scrape job of lsready's exporter (deploy/prometheus scrape config, Service name)
ALL_TARGETS = "all"  # `lsready_target` of alerts about lsready itself
FILES = {
    "rules": "lsready-rules.yml",
    "operator": "prometheusrule.yaml",
    "tests": "lsready-rules.test.yml",
}


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
            rule["for"] = _duration(self.for_s)
        rule["labels"] = {"severity": self.severity, "runbook": self.runbook, "lsready_target": self.target}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


def _duration(seconds: float) -> str:
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


def _series(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def _level(
    name: str,
    *,
    runbook: str,
    metric: str,
    selector: str,
    labels: Mapping[str, str],
    out_labels: Sequence[str],
    levels: Mapping[str, float],
    step: float,
    for_s: float,
    summary: str,
    description: str,
) -> list[AlertRule]:
    """One rule per severity: `selector > level`; cases at level + step (fires) and level - step."""
    rules = []
    for severity, level in levels.items():
        minutes = for_s / 60 + 2

        def case(value: float, minutes: float = minutes) -> Case:
            firing = [
                {"severity": sev, "value": value, **{k: labels[k] for k in out_labels}}
                for sev, lv in levels.items()
                if value > lv
            ]
            return Case({_series(metric, **labels): f"{value:g}x{math.ceil(minutes) + 2}"}, minutes, firing)

        rules.append(
            AlertRule(
                name,
                severity,
                runbook,
                f"{selector} > {level:g}",
                for_s,
                summary.format(level=level),
                description.format(level=level),
                fires=case(round(level + step, 6)),
                quiet=case(round(level - step, 6)),
            )
        )
    return rules


def rules(catalog: Catalog) -> list[AlertRule]:
    """Every shipped alert, thresholds read from `catalog`."""
    t = thresholds(catalog)
    for_s = float(t["for_minutes"]) * 60
    growth_s = float(t["queue_growth_minutes"]) * 60
    expiry = float(t["runs_expiry_s"])
    near_expiry = expiry * float(t["oldest_job_expiry_ratio"])
    stale = float(t["stale_after_s"])
    window_h = float(t["regression_window_hours"])
    prod = {"target": "prod"}
    queue = {**prod, "queue": "saq:default", "source": "redis"}
    out: list[AlertRule] = []

    out += _level(
        "LangSmithIngestionDelayHigh",
        runbook="ingestion-delay",
        metric="lsready_ingestion_delay_seconds",
        selector='lsready_ingestion_delay_seconds{quantile="0.95"}',
        labels={**prod, "quantile": "0.95"},
        out_labels=("target", "quantile"),
        levels={"warning": float(t["delay_warn_s"]), "critical": float(t["delay_fail_s"])},
        step=1,
        for_s=for_s,
        summary=(
            "LangSmith ingestion delay p95 is {{{{ $value | humanizeDuration }}}} on {{{{ $labels.target }}}}"
        ),
        description=(
            "Runs of {{{{ $labels.target }}}} reach ClickHouse {{{{ $value | humanizeDuration }}}} after "
            "LangSmith received them (p95; alert above {level:g} s). Run `lsready triage --runbook "
            "ingestion-delay --target {{{{ $labels.target }}}}` to see whether the time goes to the queues "
            "or to ClickHouse."
        ),
    )

    depth = "max without (source) (lsready_queue_depth)"
    queue_warn = float(t["queue_warn"])
    span = math.ceil(2 * growth_s / 60) + 2

    def growing(start: float) -> Case:
        end = start + span
        firing = (
            [{"severity": "warning", "value": end, "target": "prod", "queue": "saq:default"}]
            if start > queue_warn
            else []
        )
        return Case({_series("lsready_queue_depth", **queue): f"{start:g}+1x{span + 2}"}, span, firing)

    out.append(
        AlertRule(
            "LangSmithQueueGrowing",
            "warning",
            "queue-depth",
            f"{depth} > {queue_warn:g} and max without (source) "
            f"(deriv(lsready_queue_depth[{_duration(growth_s)}])) > 0",
            growth_s,
            "LangSmith queue {{ $labels.queue }} on {{ $labels.target }} keeps growing: {{ $value }} waiting",
            f"{{{{ $value }}}} jobs wait in {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} (above "
            f"{queue_warn:g}) and the queue has been growing for {_duration(growth_s)}: the workers do "
            "not keep up. Run `lsready triage --runbook queue-depth --target {{ $labels.target }}` before "
            "adding workers: it checks that ClickHouse has headroom.",
            fires=growing(queue_warn + 1),
            quiet=growing(queue_warn - span),  # rises, but reaches only the threshold itself
        )
    )
    out += _level(
        "LangSmithQueueBacklog",
        runbook="queue-depth",
        metric="lsready_queue_depth",
        selector=depth,
        labels=queue,
        out_labels=("target", "queue"),
        levels={"critical": float(t["queue_fail"])},
        step=1,
        for_s=for_s,
        summary=(
            "LangSmith queue {{{{ $labels.queue }}}} on {{{{ $labels.target }}}}: "
            "{{{{ $value }}}} jobs waiting"
        ),
        description=(
            "{{{{ $value }}}} jobs wait in {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} (critical "
            "above {level:g}). Run `lsready triage --runbook queue-depth --target {{{{ $labels.target }}}}`."
        ),
    )
    out += _level(
        "LangSmithQueueOldestJobNearExpiry",
        runbook="queue-depth",
        metric="lsready_queue_oldest_job_age_seconds",
        selector="max without (source) (lsready_queue_oldest_job_age_seconds)",
        labels=queue,
        out_labels=("target", "queue"),
        levels={"critical": near_expiry},
        step=60,
        for_s=60,
        summary=(
            "The oldest job in {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} has waited "
            "{{{{ $value | humanizeDuration }}}}"
        ),
        description=(
            "The oldest waiting job in {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} is "
            "{{{{ $value | humanizeDuration }}}} old; runs waiting longer than REDIS_RUNS_EXPIRY_SECONDS "
            f"({expiry:g} s) are dropped from Redis (alert at {{level:g}} s). Run `lsready triage --runbook "
            "queue-depth --target {{{{ $labels.target }}}}` now."
        ),
    )
    out += _level(
        "LangSmithClickHouseQuerySaturation",
        runbook="trace-visibility",
        metric="lsready_clickhouse_running_queries",
        selector="lsready_clickhouse_running_queries",
        labels={**prod, "replica": "ch-0"},
        out_labels=("target", "replica"),
        levels={"warning": float(t["concurrency_warn"]), "critical": float(t["concurrency_fail"])},
        step=1,
        for_s=for_s,
        summary=(
            "ClickHouse {{{{ $labels.replica }}}} of {{{{ $labels.target }}}} runs {{{{ $value }}}} queries"
        ),
        description=(
            "ClickHouse replica {{{{ $labels.replica }}}} of {{{{ $labels.target }}}} has run "
            "{{{{ $value }}}} queries at once (alert above {level:g}) for a while. Do not add queue "
            "workers; run `lsready triage --target {{{{ $labels.target }}}}`."
        ),
    )
    out += _level(
        "LangSmithClickHousePartsPressure",
        runbook="merge-pressure",
        metric="lsready_clickhouse_parts_to_delay_insert_ratio",
        selector="lsready_clickhouse_parts_to_delay_insert_ratio",
        labels=prod,
        out_labels=("target",),
        # At 1.0 ClickHouse itself starts slowing inserts (parts_to_delay_insert).
        levels={"warning": float(t["parts_warn_ratio"]), "critical": 1.0},
        step=0.01,
        for_s=for_s,
        summary=(
            "The busiest ClickHouse partition of {{{{ $labels.target }}}} is at "
            "{{{{ $value | humanizePercentage }}}} of parts_to_delay_insert"
        ),
        description=(
            "Active parts of the busiest partition of {{{{ $labels.target }}}} are at "
            "{{{{ $value | humanizePercentage }}}} of parts_to_delay_insert (alert above {level:g}); at 100% "
            "ClickHouse slows every insert. Run `lsready triage --runbook merge-pressure --target "
            "{{{{ $labels.target }}}}`."
        ),
    )
    out += _level(
        "LangSmithClickHouseDiskFull",
        runbook="merge-pressure",
        metric="lsready_clickhouse_disk_used_ratio",
        selector="lsready_clickhouse_disk_used_ratio",
        labels={**prod, "replica": "ch-0", "disk": "default"},
        out_labels=("target", "replica", "disk"),
        levels={"warning": float(t["disk_warn_ratio"]), "critical": float(t["disk_fail_ratio"])},
        step=0.01,
        for_s=for_s,
        summary=(
            "ClickHouse disk {{{{ $labels.disk }}}} on {{{{ $labels.replica }}}} ({{{{ $labels.target }}}}) "
            "is {{{{ $value | humanizePercentage }}}} full"
        ),
        description=(
            "Disk {{{{ $labels.disk }}}} of ClickHouse replica {{{{ $labels.replica }}}} on "
            "{{{{ $labels.target }}}} is {{{{ $value | humanizePercentage }}}} full (alert above {level:g}); "
            "ClickHouse stops merges and then refuses inserts as it fills. Run `lsready triage --runbook "
            "merge-pressure --target {{{{ $labels.target }}}}`."
        ),
    )

    item = {**prod, "item": "postgres.backups"}
    failing = "lsready_required_item_failing"
    window_min = math.ceil(window_h * 60)
    item_series = _series(failing, **item)
    item_labels = {"severity": "warning", "value": 1, **item}
    out.append(
        AlertRule(
            "LangSmithRequiredItemFailing",
            "warning",
            "trace-visibility",
            f"{failing} == 1 and min_over_time({failing}[{_duration(window_h * 3600)}]) == 0",
            for_s,
            "Required readiness item {{ $labels.item }} now fails on {{ $labels.target }}",
            "Required checklist item {{ $labels.item }} fails on {{ $labels.target }} "
            "(lsready_required_item_failing {{ $value }}); it passed within the "
            f"last {_duration(window_h * 3600)}. Run `lsready check --target {{{{ $labels.target }}}} "
            "--section {{ $labels.item }}` for the evidence and the fix.",
            fires=Case(
                {item_series: f"0x60 1x{math.ceil(for_s / 60) + 5}"},
                60 + for_s / 60 + 2,
                [item_labels],
            ),
            # Failing for longer than the whole window: a known gap for the checklist, not a page.
            quiet=Case({item_series: f"1x{window_min + 5}"}, window_min + 2, []),
        )
    )

    # Per target: since its last successful refresh, or since lsready started if there was none.
    stale_case_min = stale / 60
    me = {"job": JOB, "instance": "lsready:9100"}
    since = (
        "lsready_last_success_timestamp_seconds or on (target) "
        "(lsready_target_configured * on (job, instance) group_left () lsready_start_time_seconds)"
    )

    def stale_case(minutes: float) -> Case:
        n = math.ceil(stale_case_min) + 3
        age = minutes * 60
        firing = (
            [
                {"severity": "warning", "value": age, "target": "prod", **me},
                {"severity": "warning", "value": age, "target": "staging", **me},
            ]
            if age > stale
            else []
        )
        series = {
            _series("lsready_target_configured", target="prod", **me): f"1x{n}",
            _series("lsready_target_configured", target="staging", **me): f"1x{n}",
            _series("lsready_start_time_seconds", **me): f"0x{n}",
            _series("lsready_last_success_timestamp_seconds", target="prod", **me): f"0x{n}",
        }
        return Case(series, minutes, firing)

    out.append(
        AlertRule(
            "LsreadyTargetStale",
            "warning",
            "trace-visibility",
            f"time() - ({since}) > {stale:g}",
            0,
            "lsready has had no complete reading of {{ $labels.target }} for {{ $value | humanizeDuration }}",
            "lsready has not completed a refresh of {{ $labels.target }} (checklist run, Redis and "
            "ClickHouse answered) for {{ $value | humanizeDuration }}, since its last success or since it "
            f"started (alert after {stale:g} s): the gauges and the other alerts for this target are "
            "blind. See `lsready_backend_up` and lsready's log.",
            fires=stale_case(stale_case_min + 1),
            quiet=stale_case(stale_case_min - 1),
            group=SELF_GROUP,
        )
    )
    up = me
    out.append(
        AlertRule(
            "LsreadyDown",
            "critical",
            "trace-visibility",
            f'up{{job="{JOB}"}} == 0 or absent(up{{job="{JOB}"}})',
            for_s,
            "lsready's exporter is not being scraped",
            f"Prometheus has not scraped lsready (job {JOB}, up {{{{ $value }}}}) for {_duration(for_s)}: no "
            "LangSmith write-path alert can fire. Check the lsready pod and its /healthz.",
            target=ALL_TARGETS,
            fires=Case(
                {_series("up", **up): f"0x{math.ceil(for_s / 60) + 4}"},
                for_s / 60 + 2,
                [{"severity": "critical", "value": 0, **up}],
            ),
            quiet=Case({_series("up", **up): f"1x{math.ceil(for_s / 60) + 4}"}, for_s / 60 + 2, []),
            group=SELF_GROUP,
        )
    )
    return out


# --- Rendering -----------------------------------------------------------------------------------


def rule_groups(catalog: Catalog) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in rules(catalog):
        groups.setdefault(rule.group, []).append(rule.to_rule())
    return [{"name": name, "rules": body} for name, body in groups.items()]


_HEADER = (
    "# Generated by `lsready alert-rules` from the catalog's thresholds (runbooks/alert_rules.py):\n"
    "# edit thresholds in your lsready config and regenerate, not here.\n"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)


def render_rules(catalog: Catalog) -> str:
    """The plain rules file for Prometheus's `rule_files`."""
    return _HEADER + _dump({"groups": rule_groups(catalog)})


def render_operator(catalog: Catalog, namespace: str = "langsmith") -> str:
    """The same groups as a prometheus-operator PrometheusRule."""
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "lsready",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "lsready", "app.kubernetes.io/part-of": "lsready"},
        },
        "spec": {"groups": rule_groups(catalog)},
    }
    return _HEADER + _dump(doc)


def render_tests(catalog: Catalog, rule_file: str = FILES["rules"]) -> str:
    """promtool unit tests: every rule fires on its condition and stays quiet just under it."""
    all_rules = rules(catalog)
    tests = []
    for rule in all_rules:
        for kind, case in (("fires", rule.fires), ("quiet", rule.quiet)):
            if case is None:
                continue
            expected = [_expected(rule.name, all_rules, a) for a in case.firing]
            tests.append(
                {
                    "name": f"{rule.name} ({rule.severity}, {rule.expr[:60]}) {kind}",
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                    "alert_rule_test": [
                        {
                            "eval_time": _duration(case.eval_minutes * 60),
                            "alertname": rule.name,
                            "exp_alerts": expected,
                        }
                    ],
                }
            )
    doc = {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}
    return (
        "# Generated by `lsready alert-rules` (runbooks/alert_rules.py). Run: promtool test rules "
        f"{FILES['tests']}\n" + _dump(doc)
    )


def _expected(name: str, all_rules: Sequence[AlertRule], firing: Mapping[str, Any]) -> dict[str, Any]:
    """The alert promtool must see: the rule's labels and annotations expanded for these labels."""
    rule = next(r for r in all_rules if r.name == name and r.severity == firing["severity"])
    labels = {k: str(v) for k, v in firing.items() if k not in ("severity", "value")}
    value = float(firing["value"])
    exp_labels = {**labels, "severity": rule.severity, "runbook": rule.runbook}
    exp_labels["lsready_target"] = expand(rule.target, labels, value)
    return {
        "exp_labels": exp_labels,
        "exp_annotations": {
            "summary": expand(rule.summary, labels, value),
            "description": expand(rule.description, labels, value),
        },
    }


# --- Prometheus's template functions, as far as the rules use them -------------------------------

_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.(\w+)|\$value(?:\s*\|\s*(\w+))?)\s*\}\}")


def expand(text: str, labels: Mapping[str, str], value: float) -> str:
    """Expand `{{ $labels.x }}` and `{{ $value [| humanize...] }}` as Prometheus does."""

    def one(m: re.Match[str]) -> str:
        if m.group(2):
            return labels.get(m.group(2), "")
        fn = m.group(3)
        if fn == "humanizeDuration":
            return humanize_duration(value)
        if fn == "humanizePercentage":
            return f"{_g4(value * 100)}%"
        if fn == "humanize":
            return _g4(value)
        return _go_float(value)

    return _TEMPLATE.sub(one, text)


def _g4(v: float) -> str:
    return f"{v:.4g}"


def _go_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64) for the values the tests use."""
    return str(int(v)) if v == int(v) else repr(v)


def humanize_duration(v: float) -> str:
    """Prometheus's humanizeDuration for v >= 1 s (the tests' values)."""
    if v == 0:
        return "0s"
    if abs(v) < 1:
        return f"{_g4(v * 1000)}ms"
    seconds = int(v)
    days, hours, minutes = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60
    secs = seconds % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{_g4(v)}s"
