"""`lsready demo`: real engines, a LangSmith-shaped schema, and the real checks against them.

The datastores are real embedded engines; the Kubernetes side is a snapshot of a release as the
chart's default values leave it, so the cluster items show what a default install fails.

With a scenario, the engines first get an incident (runbooks.demo.scenarios), then the triage and
the checks both run against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from checks.engine import catalog_for, check
from checks.runner import Report
from runbooks.demo.processes import ended_by_sigterm
from runbooks.demo.session import DemoSession
from runbooks.model import TriageResult


@dataclass(frozen=True)
class ScenarioRun:
    scenario: str
    triage: TriageResult
    report: Report


@overload
def run_demo(scenario: None = None) -> Report: ...
@overload
def run_demo(scenario: str) -> ScenarioRun: ...
def run_demo(scenario: str | None = None) -> Report | ScenarioRun:
    """Start the embedded engines, give them LangSmith's shape (and an incident), check them, stop them."""
    from runbooks.demo.scenarios import SCENARIO_THRESHOLDS, get_scenario
    from runbooks.triage import triage

    if scenario is not None:
        get_scenario(scenario)  # a bad name fails before any engine starts
    with ended_by_sigterm(), DemoSession() as demo:
        if scenario is None:
            demo.shape()
            return check(demo.config())
        demo.shape(redis=False, clickhouse=False)  # the scenario fills them its own way
        with demo.play(scenario) as played:
            config = demo.config(SCENARIO_THRESHOLDS)
            catalog = catalog_for(config)
            result = triage(config, catalog=catalog)
            report = check(config, catalog=catalog)
        return ScenarioRun(played.name, result, report)
