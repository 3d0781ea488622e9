"""Healthy embedded engines: triage wall time vs its slowest step, and full check time vs target count.

Redis is a real redis-server, PostgreSQL is pgserver, ClickHouse is chdb in this process, all
with the LangSmith-shaped schema of `lsready demo`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from bench.ch_http import ChHttp
from bench.common import Result, median, row, say, temp_dir
from checks.config import Config, validate
from checks.engine import check_all
from runbooks.demo.session import DemoSession

TRIAGE_RATIO_TARGET = 1.5  # steps overlap: the whole walk takes little longer than its slowest step
CHECK_TARGET_S = 3.0  # one full check of one target
FLEET_RATIO_TARGET = 4.0  # 16 targets vs 1: concurrent, so far below the 16x of one after another


def triage_wall_time(quick: bool) -> Result:
    """`triage` (trace-visibility, default sample interval) on the healthy scenario, several times."""
    from runbooks.demo.scenarios import SCENARIO_THRESHOLDS
    from runbooks.triage import triage

    runs = 2 if quick else 5
    measured: list[dict[str, Any]] = []
    with temp_dir() as tmp, DemoSession(tmp) as demo, demo.play("healthy"):
        config = demo.config(SCENARIO_THRESHOLDS, postgres=False, cluster=False)
        for n in range(runs):
            say(f"triage: run {n + 1}/{runs} on the healthy scenario")
            t0 = time.monotonic()
            result = triage(config)
            wall = time.monotonic() - t0
            slowest = max(result.steps, key=lambda s: s.duration_s)
            measured.append(
                {
                    "wall_s": wall,
                    "slowest_step": slowest.step_id,
                    "slowest_s": slowest.duration_s,
                    "diagnosis": result.diagnosis.kind.value,
                    "steps": {s.step_id: round(s.duration_s, 3) for s in result.steps},
                }
            )
    ratios = [m["wall_s"] / m["slowest_s"] for m in measured]
    healthy = sum(m["diagnosis"] == "healthy" for m in measured)
    return Result(
        rows=[
            row("triage", "triage wall time, median", median([m["wall_s"] for m in measured]), "s"),
            row(
                "triage",
                "slowest single step, median",
                median([m["slowest_s"] for m in measured]),
                "s",
                note=measured[0]["slowest_step"],
            ),
            row(
                "triage",
                "wall time / slowest step, worst",
                max(ratios),
                "x",
                "<=",
                TRIAGE_RATIO_TARGET,
                f"{runs} runs",
            ),
            row("triage", "runs diagnosed healthy", healthy, "count", "==", runs),
        ],
        details={
            "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()} for m in measured]
        },
    )


@contextlib.contextmanager
def demo_engines(clickhouse: bool = True) -> Iterator[DemoSession]:
    """The demo session's Redis, PostgreSQL and chdb with `lsready demo`'s shape; stopped and removed after.

    With `clickhouse` false the ClickHouse schema is left for another process to build: chdb opens
    a data path in one process only.
    """
    with temp_dir() as tmp, DemoSession(tmp) as demo:
        demo.shape(clickhouse=clickhouse)
        yield demo


@contextlib.contextmanager
def demo_over_http() -> Iterator[tuple[dict[str, Any], ChHttp]]:
    """The demo session with its ClickHouse in a process of its own, behind bench/ch_http.py.

    For benches whose lsready is another process: chdb cannot share a data path between processes.
    Yields a target reading it, and the shim.
    """
    with demo_engines(clickhouse=False) as demo:
        shim = ChHttp(demo.clickhouse_dir, demo_schema=True)
        try:
            yield {**demo.target(cluster=False), "clickhouse": {"url": shim.url}}, shim
        finally:
            shim.stop()


def fleet_config(demo: DemoSession, count: int) -> Config:
    """`count` configured deployments, all pointing at the same engines."""
    target = demo.target(cluster=False)
    return validate({"targets": {f"t{n:02d}": target for n in range(count)}}, "bench")


def check_wall_time(quick: bool) -> Result:
    """`check_all` of 1, 4 and 16 targets on the same embedded engines; median wall time of each."""
    reps = 1 if quick else 3
    walls: dict[int, list[float]] = {}
    with demo_engines() as demo:
        t0 = time.monotonic()
        check_all(fleet_config(demo, 1))  # cold: imports, first connections, catalog
        cold = time.monotonic() - t0
        for count in (1, 4, 16):
            config = fleet_config(demo, count)
            for n in range(reps):
                say(f"check: {count} targets, run {n + 1}/{reps}")
                t0 = time.monotonic()
                reports = check_all(config)
                walls.setdefault(count, []).append(time.monotonic() - t0)
                assert len(reports) == count
        unknown = sum(r.status.value == "unknown" for r in reports[0].results)
        slowest = sorted(reports[0].results, key=lambda r: r.duration_s, reverse=True)[:5]
    one, four, sixteen = (median(walls[c]) for c in (1, 4, 16))
    return Result(
        rows=[
            row("check", "full check, 1 target (cold, first in process)", cold, "s"),
            row("check", "full check, 1 target", one, "s", "<", CHECK_TARGET_S, f"median of {reps}"),
            row("check", "full check, 4 targets", four, "s"),
            row("check", "full check, 16 targets", sixteen, "s"),
            row(
                "check",
                "16 targets / 1 target",
                sixteen / one,
                "x",
                "<=",
                FLEET_RATIO_TARGET,
                "one after another would be 16x",
            ),
        ],
        details={
            "walls_s": {str(c): [round(w, 3) for w in ws] for c, ws in walls.items()},
            "items": len(reports[0].results),
            "unknown_items_per_target": unknown,
            "slowest_items_s": {r.item.id: round(r.duration_s, 3) for r in slowest},
        },
    )
