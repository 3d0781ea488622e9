"""From a Redis backlog to its diagnosis in Slack, through the real alert chain at production intervals.

Real Redis, PostgreSQL and ClickHouse (behind bench/ch_http.py) with `lsready demo`'s schema, a real
`lsready exporter` refreshing every 15 s, and for each run a fresh chain (tests/alert_chain.py): a
real Prometheus scraping the exporter and evaluating the shipped rules every 15 s (`for: 30s`), a
real Alertmanager (`group_wait: 10s`) calling a real `lsready serve`'s `POST /alertmanager`, and the
fake Slack Web API. The backlog starts at once: 250 jobs land in `saq:default` (critical above 200);
the clock stops when the thread's triage shows its diagnosis. Where the time went comes from
Prometheus's own samples (when the exporter's reading was scraped, when the alert went pending and
firing) and from when the fake Slack received each call.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bench.common import Result, row, say, temp_dir, testkit, wait_until
from bench.engines import demo_over_http
from bench.exporter import Exporter
from runbooks.demo.schema import push_saq_jobs

SCRAPE_S = 15  # Prometheus scrape and evaluation interval
EXPORTER_S = 15  # exporter.interval: as often as Prometheus reads it
FOR_S = 30  # the rule's `for` (ops.alerts.for_minutes 0.5)
GROUP_WAIT_S = 10  # Alertmanager's group_wait
QUEUE_FAIL = 200  # redis.monitored.queue_fail's default: LangSmithQueueBacklog fires above it
BACKLOG = 250  # jobs pushed at once
TARGET_S = 90.0
ALERT = "LangSmithQueueBacklog"
DEPTH = 'lsready_queue_depth{target="prod",queue="saq:default",source="redis"}'
BOUND = "exporter refresh + scrape + evaluation + for + group_wait: each run lands somewhere below it"
PHASES = (
    ("exporter refresh", "backlog start to the end of the exporter's first refresh that read it"),
    ("scrape", "that refresh to Prometheus's scrape of it"),
    ("rule evaluation", "that scrape to the rule going pending (the alert's activeAt)"),
    ("rule for", "pending to firing"),
    ("Alertmanager", "firing to the alert message in Slack (group_wait, delivery, post)"),
    ("triage", "alert message to the diagnosis in its thread"),
)


def _config(target: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": {"prod": target},
        "exporter": {"interval": EXPORTER_S},
        "thresholds": {
            "ops.alerts": {"for_minutes": FOR_S / 60},
            # The embedded ClickHouse writes to this machine's disk, whose fill is not the incident.
            "clickhouse.disk_usage": {"warn_ratio": 0.97, "fail_ratio": 0.99},
        },
    }


def _exported_depth(exp: Exporter) -> float | None:
    with urllib.request.urlopen(exp.base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(
        r'^lsready_queue_depth\{[^}]*queue="saq:default"[^}]*source="redis"[^}]*\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else None


def _samples(prom: Any, expr: str) -> list[tuple[float, float]]:
    """The raw samples of a one-series selector over the last 10 minutes: (time, value), oldest first."""
    found = prom.query(f"{expr}[10m]")
    return [(float(t), float(v)) for t, v in found[0]["values"]] if found else []


def _seconds(rfc3339: str) -> float:
    """Prometheus's timestamps carry nanoseconds; Python reads up to microseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", rfc3339.replace("Z", "+00:00"))).timestamp()


def _first(samples: list[tuple[float, float]], test: Callable[[float], bool] = lambda v: True) -> float:
    return next(t for t, v in samples if test(v))


def _run(n: int, work: Any, config: dict[str, Any], exp: Exporter, r: Any) -> dict[str, Any]:
    from alert_chain import AlertChain

    r.delete("saq:default:queued", "saq:default:incomplete")
    if not wait_until(lambda: _exported_depth(exp) == 0, 3 * EXPORTER_S, 0.5):
        raise RuntimeError("the exporter did not see the queue emptied")
    interval = f"{SCRAPE_S}s"
    with AlertChain(
        work / f"run{n}",
        config,
        f"127.0.0.1:{exp.port}",
        interval=interval,
        scrape_timeout="10s",
        group_wait=f"{GROUP_WAIT_S}s",
    ) as chain:
        prom = chain.prometheus
        if not wait_until(lambda: prom.query(f"{DEPTH} == 0"), 3 * SCRAPE_S, 0.5):
            raise RuntimeError("Prometheus did not scrape the empty queue")
        t0, m0 = time.time(), time.monotonic()
        push_saq_jobs(r, "default", [t0] * BACKLOG, prefix=f"bench{n}")
        say(f"alerts: run {n}: {BACKLOG} jobs queued; waiting for the diagnosis in Slack")
        posted = wait_until(
            lambda: chain.diagnosis_posted(ts) if (ts := _thread_ts(chain)) else None, 240, 0.1
        )
        if not posted:
            raise RuntimeError(f"no diagnosis in Slack within 240 s; alerts: {prom.alert_names()}")

        def wall(mono: float) -> float:  # the fake Slack stamps calls with this process's monotonic clock
            return t0 + (mono - m0)

        depth = _samples(prom, DEPTH)
        scraped = _first(depth, lambda v: v > QUEUE_FAIL)
        refreshed = dict(_samples(prom, 'lsready_last_refresh_timestamp_seconds{target="prod"}'))[scraped]
        alert = f'ALERTS{{alertname="{ALERT}",queue="saq:default"'
        pending = min(_seconds(a["activeAt"]) for a in prom.alerts(ALERT))  # when the rule went pending
        firing = _first(_samples(prom, alert + ',alertstate="firing"}'))
        message = wall(chain.alert_posts(ALERT)[0].at)
        diagnosed = wall(posted.at)
        kind = (
            "ingestion_backpressure"
            if "Ingestion backpressure" in str(posted.args.get("blocks"))
            else "other"
        )
        marks = [t0, refreshed, scraped, pending, firing, message, diagnosed]
        spans = zip(PHASES, marks[:-1], marks[1:], strict=True)
        phases = {name: round(b - a, 2) for (name, _), a, b in spans}
        total = diagnosed - t0
        say(f"alerts: run {n}: {total:.1f} s ({', '.join(f'{k} {v:g}' for k, v in phases.items())})")
        return {
            "total_s": round(total, 2),
            "phases_s": phases,
            "diagnosis": kind,
            "alert_messages": len(chain.alert_posts()),
        }


def _thread_ts(chain: Any) -> str | None:
    found = chain.alert_messages(ALERT)
    return found[0]["ts"] if found else None


def backlog_to_diagnosis(quick: bool) -> Result:
    """The chain `runs` times (fresh Prometheus, Alertmanager and bot each time) on the same engines."""
    import redis

    testkit()  # tests/ on the path: the chain's servers are the test suite's
    runs = 1 if quick else 2
    measured = []
    with demo_over_http() as (target, _), temp_dir() as work, contextlib.ExitStack() as stack:
        config = _config(target)
        (work / "exporter").mkdir()
        exp = Exporter(config, work / "exporter")
        stack.callback(exp.stop)
        if not wait_until(lambda: (h := exp.health()) and h["refreshed"], 120, 0.2):
            raise RuntimeError(f"the exporter did not get ready: {exp.log_path.read_text()[-2000:]}")
        r = redis.Redis.from_url(target["redis"]["url"])
        stack.callback(r.close)
        for n in range(1, runs + 1):
            measured.append(_run(n, work, config, exp, r))
    slowest = max(measured, key=lambda m: m["total_s"])
    intervals = (
        f"exporter.interval {EXPORTER_S} s, scrape and evaluation {SCRAPE_S} s, for {FOR_S} s, "
        f"group_wait {GROUP_WAIT_S} s"
    )
    bound = EXPORTER_S + 2 * SCRAPE_S + FOR_S + GROUP_WAIT_S
    backpressure = sum(m["diagnosis"] == "ingestion_backpressure" for m in measured)
    worst = f"{runs} run(s); {intervals}"
    rows = [
        row("alerts", "backlog to diagnosis in Slack, worst", slowest["total_s"], "s", "<", TARGET_S, worst),
        *(
            row("alerts", f"  {name} (slowest run)", slowest["phases_s"][name], "s", note=what)
            for name, what in PHASES
        ),
        row("alerts", "waits the intervals allow at worst, triage aside", bound, "s", note=BOUND),
        row("alerts", "runs diagnosed ingestion_backpressure", backpressure, "count", "==", runs),
        row(
            "alerts",
            "alert messages per run, most",
            max(m["alert_messages"] for m in measured),
            "count",
            "==",
            1,
        ),
    ]
    return Result(rows=rows, details={"runs": measured, "intervals": intervals, "backlog_jobs": BACKLOG})
