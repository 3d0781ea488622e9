"""`lsready demo`: real engines, a LangSmith-shaped schema, and the real checks against them.

The datastores are real embedded engines; the Kubernetes side is a snapshot of a release as the
chart's default values leave it, so the cluster items show what a default install fails.

With a scenario, the engines first get an incident (runbooks.demo.scenarios), then the triage and
the checks both run against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

from checks.config import Config, validate
from checks.engine import check
from checks.runner import Report
from runbooks.demo.cluster import NS, RELEASE, chart_defaults, write_snapshot
from runbooks.demo.engines import Engines, chdb_url
from runbooks.demo.schema import build_clickhouse, build_postgres, build_redis
from runbooks.model import TriageResult


@dataclass(frozen=True)
class ScenarioRun:
    scenario: str
    triage: TriageResult
    report: Report


def _config(engines: Engines, thresholds: dict[str, Any] | None = None) -> Config:
    # The cluster side is an offline snapshot of a release installed with the chart's defaults.
    snapshot = write_snapshot(chart_defaults(), engines.root / "k8s")
    raw: dict[str, Any] = {
        "default_target": "demo",
        "targets": {
            "demo": {
                "redis": {"url": engines.redis.url},
                "postgres": {"url": engines.postgres.url},
                "clickhouse": {"url": chdb_url(engines.clickhouse_dir)},
                "kubernetes": {"namespace": NS, "release": RELEASE, "snapshot_dir": str(snapshot)},
            }
        },
    }
    if thresholds:
        raw["thresholds"] = thresholds
    return validate(raw, "demo")


@overload
def run_demo(scenario: None = None) -> Report: ...
@overload
def run_demo(scenario: str) -> ScenarioRun: ...
def run_demo(scenario: str | None = None) -> Report | ScenarioRun:
    """Start the embedded engines, give them LangSmith's shape (and an incident), check them, stop them."""
    import clickhouse_connect
    import redis

    if scenario is not None:
        from runbooks.demo.scenarios import get_scenario

        get_scenario(scenario)  # a bad name fails before any engine starts
    engines = Engines.start()
    try:
        ch = clickhouse_connect.get_client(dsn=chdb_url(engines.clickhouse_dir))
        build_postgres(engines.postgres.psql)
        r = redis.Redis.from_url(engines.redis.url)
        if scenario is None:
            build_clickhouse(ch)
            build_redis(r)
            return check(_config(engines))
        return _run_scenario(scenario, engines, ch, r)
    finally:
        engines.stop()


def _run_scenario(name: str, engines: Engines, ch: Any, r: Any) -> ScenarioRun:
    import clickhouse_connect

    from runbooks.demo.scenarios import SCENARIO_THRESHOLDS, Stage, play
    from runbooks.triage import triage

    url = chdb_url(engines.clickhouse_dir)
    stage = Stage(ch, "default", r, lambda: clickhouse_connect.get_client(dsn=url))
    with play(name, stage) as scenario:
        config = _config(engines, SCENARIO_THRESHOLDS)
        result = triage(config)
        report = check(config)
    return ScenarioRun(scenario.name, result, report)
