"""Every shipped alert, thresholds read from the catalog: the level rules of levels.yaml, then those
whose expression or test case has a shape of its own."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from checks.registry import Catalog
from runbooks.alert_rules.model import SELF_GROUP, AlertRule, Case, duration, series, thresholds

LEVELS_PATH = Path(__file__).with_name("levels.yaml")
JOB = "lsready"  # the scrape job of lsready's exporter (deploy/prometheus scrape config, Service name)
ALL_TARGETS = "all"  # `lsready_target` of alerts about lsready itself
_VALUE = re.compile(r"\{(\w+)\}")  # `{name}`: a threshold's value; Prometheus's own are `{{ ... }}`


@dataclass(frozen=True)
class LevelRule:
    """One entry of levels.yaml: a gauge above a level, one rule per severity."""

    name: str
    runbook: str
    metric: str
    selector: str
    labels: Mapping[str, str]
    out_labels: Sequence[str]
    levels: Mapping[str, str | float]  # severity -> a threshold's name, or a number
    step: float
    summary: str
    description: str
    for_s: float | None = None

    def rules(self, values: Mapping[str, float], for_s: float) -> list[AlertRule]:
        """`selector > level` per severity; cases at level + step (fires) and level - step (quiet)."""
        levels = {sev: float(values[lv] if isinstance(lv, str) else lv) for sev, lv in self.levels.items()}
        wait = for_s if self.for_s is None else float(self.for_s)
        minutes = wait / 60 + 2

        def case(value: float) -> Case:
            firing = [
                {"severity": sev, "value": value, **{k: self.labels[k] for k in self.out_labels}}
                for sev, lv in levels.items()
                if value > lv
            ]
            return Case(
                {series(self.metric, **self.labels): f"{value:g}x{math.ceil(minutes) + 2}"}, minutes, firing
            )

        def text(template: str, level: float) -> str:
            return _VALUE.sub(lambda m: f"{({**values, 'level': level})[m.group(1)]:g}", template)

        return [
            AlertRule(
                self.name,
                severity,
                self.runbook,
                f"{self.selector} > {level:g}",
                wait,
                text(self.summary, level),
                text(self.description, level),
                fires=case(round(level + self.step, 6)),
                quiet=case(round(level - self.step, 6)),
            )
            for severity, level in levels.items()
        ]


def load_levels(path: Path = LEVELS_PATH) -> list[LevelRule]:
    return [LevelRule(**entry) for entry in yaml.safe_load(path.read_text())]


def rules(catalog: Catalog) -> list[AlertRule]:
    """Every shipped alert, thresholds read from `catalog`."""
    t = thresholds(catalog)
    for_s = float(t["for_minutes"]) * 60
    values = {k: float(v) for k, v in t.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    values["near_expiry_s"] = values["runs_expiry_s"] * values["oldest_job_expiry_ratio"]
    out = [rule for level in load_levels() for rule in level.rules(values, for_s)]
    return [
        *out,
        queue_growing(t),
        required_item_failing(t, for_s),
        target_stale(t),
        lsready_down(for_s),
    ]


def queue_growing(t: Mapping[str, Any]) -> AlertRule:
    """A queue above `queue_warn` that keeps growing: the workers do not keep up."""
    growth_s = float(t["queue_growth_minutes"]) * 60
    queue_warn = float(t["queue_warn"])
    span = math.ceil(2 * growth_s / 60) + 2
    queue = {"target": "prod", "queue": "saq:default", "source": "redis"}

    def growing(start: float) -> Case:
        end = start + span
        firing = (
            [{"severity": "warning", "value": end, "target": "prod", "queue": "saq:default"}]
            if start > queue_warn
            else []
        )
        return Case({series("lsready_queue_depth", **queue): f"{start:g}+1x{span + 2}"}, span, firing)

    return AlertRule(
        "LangSmithQueueGrowing",
        "warning",
        "queue-depth",
        f"max without (source) (lsready_queue_depth) > {queue_warn:g} and max without (source) "
        f"(deriv(lsready_queue_depth[{duration(growth_s)}])) > 0",
        growth_s,
        "LangSmith queue {{ $labels.queue }} on {{ $labels.target }} keeps growing: {{ $value }} waiting",
        f"{{{{ $value }}}} jobs wait in {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} (above "
        f"{queue_warn:g}) and the queue has been growing for {duration(growth_s)}: the workers do "
        "not keep up. Run `lsready triage --runbook queue-depth --target {{ $labels.target }}` before "
        "adding workers: it checks that ClickHouse has headroom.",
        fires=growing(queue_warn + 1),
        quiet=growing(queue_warn - span),  # rises, but reaches only the threshold itself
    )


def required_item_failing(t: Mapping[str, Any], for_s: float) -> AlertRule:
    """A required checklist item that passed within the window fails now."""
    window_h = float(t["regression_window_hours"])
    item = {"target": "prod", "item": "postgres.backups"}
    failing = "lsready_required_item_failing"
    window_min = math.ceil(window_h * 60)
    item_series = series(failing, **item)
    item_labels = {"severity": "warning", "value": 1, **item}
    return AlertRule(
        "LangSmithRequiredItemFailing",
        "warning",
        "trace-visibility",
        f"{failing} == 1 and min_over_time({failing}[{duration(window_h * 3600)}]) == 0",
        for_s,
        "Required readiness item {{ $labels.item }} now fails on {{ $labels.target }}",
        "Required checklist item {{ $labels.item }} fails on {{ $labels.target }} "
        "(lsready_required_item_failing {{ $value }}); it passed within the "
        f"last {duration(window_h * 3600)}. Run `lsready check --target {{{{ $labels.target }}}} "
        "--section {{ $labels.item }}` for the evidence and the fix.",
        fires=Case(
            {item_series: f"0x60 1x{math.ceil(for_s / 60) + 5}"},
            60 + for_s / 60 + 2,
            [item_labels],
        ),
        # Failing for longer than the whole window: a known gap for the checklist, not a page.
        quiet=Case({item_series: f"1x{window_min + 5}"}, window_min + 2, []),
    )


ME = {"job": JOB, "instance": "lsready:9100"}  # lsready's own series in the test cases


def target_stale(t: Mapping[str, Any]) -> AlertRule:
    """No complete refresh of a target since its last success, or since lsready started if none."""
    stale = float(t["stale_after_s"])
    stale_case_min = stale / 60
    since = (
        "lsready_last_success_timestamp_seconds or on (target) "
        "(lsready_target_configured * on (job, instance) group_left () lsready_start_time_seconds)"
    )

    def stale_case(minutes: float) -> Case:
        n = math.ceil(stale_case_min) + 3
        age = minutes * 60
        firing = (
            [
                {"severity": "warning", "value": age, "target": "prod", **ME},
                {"severity": "warning", "value": age, "target": "staging", **ME},
            ]
            if age > stale
            else []
        )
        cases = {
            series("lsready_target_configured", target="prod", **ME): f"1x{n}",
            series("lsready_target_configured", target="staging", **ME): f"1x{n}",
            series("lsready_start_time_seconds", **ME): f"0x{n}",
            series("lsready_last_success_timestamp_seconds", target="prod", **ME): f"0x{n}",
        }
        return Case(cases, minutes, firing)

    return AlertRule(
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


def lsready_down(for_s: float) -> AlertRule:
    """Prometheus does not scrape lsready: no other alert can fire."""
    up = series("up", **ME)
    length = math.ceil(for_s / 60) + 4
    return AlertRule(
        "LsreadyDown",
        "critical",
        "trace-visibility",
        f'up{{job="{JOB}"}} == 0 or absent(up{{job="{JOB}"}})',
        for_s,
        "lsready's exporter is not being scraped",
        f"Prometheus has not scraped lsready (job {JOB}, up {{{{ $value }}}}) for {duration(for_s)}: no "
        "LangSmith write-path alert can fire. Check the lsready pod and its /healthz.",
        target=ALL_TARGETS,
        fires=Case({up: f"0x{length}"}, for_s / 60 + 2, [{"severity": "critical", "value": 0, **ME}]),
        quiet=Case({up: f"1x{length}"}, for_s / 60 + 2, []),
        group=SELF_GROUP,
    )
