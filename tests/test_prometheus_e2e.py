"""The real Prometheus scrapes a real `lsready exporter` and fires the shipped queue alert on a backlog."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsready_server import exporter_thread
from prometheus_server import BINARY, MISSING, Prometheus
from waiting import wait_until

from checks.engine import catalog_for
from conftest import make_config
from runbooks.alert_rules import render_rules
from runbooks.demo.schema import build_clickhouse, push_saq_jobs

pytestmark = pytest.mark.skipif(BINARY is None, reason=MISSING)


@pytest.fixture
def exporter_config(clickhouse: Any, redis_client: Any, redis_url: str) -> Any:
    url, client, db = clickhouse
    build_clickhouse(client, db, runs=50)
    # Test-sized timing, all through config: alerts hold for 3 s, the exporter refreshes every second.
    return make_config(
        {"prod": {"redis": {"url": redis_url}, "clickhouse": {"url": url}}},
        exporter={"interval": 1},
        thresholds={
            "ops.alerts": {"for_minutes": 0.05},
            "redis.monitored": {"queue_warn": 5, "queue_fail": 10},
        },
        timeouts={"probe_s": 3, "run_s": 8},
    )


@pytest.fixture
def prometheus(tmp_path: Path, exporter_config: Any) -> Iterator[Prometheus]:
    with exporter_thread(exporter_config) as port:
        rules = render_rules(catalog_for(exporter_config))
        server = Prometheus(tmp_path, rules, f"127.0.0.1:{port}")
        try:
            yield server
        finally:
            server.close()


def test_prometheus_fires_the_queue_alert_on_a_backlog_created_in_redis(
    prometheus: Prometheus, redis_client: Any
) -> None:
    prom = prometheus
    depth = 'lsready_queue_depth{job="lsready",queue="saq:default",source="redis"}'
    wait_until(lambda: prom.query(depth), timeout=30, what="the queue depth to be scraped")
    assert float(prom.query(depth)[0]["value"][1]) == 0
    wait_until(lambda: prom.query('up{job="lsready"} == 1'), timeout=10, what="lsready to be up")
    assert prom.alerts("LangSmithQueueBacklog") == []
    assert prom.query('lsready_backend_up{backend="clickhouse"} == 1')

    push_saq_jobs(redis_client, "default", [time.time() - 5] * 25)

    pending = wait_until(lambda: prom.alerts("LangSmithQueueBacklog"), timeout=30, what="the alert pending")
    assert pending[0]["state"] in ("pending", "firing")
    firing = wait_until(
        lambda: [a for a in prom.alerts("LangSmithQueueBacklog") if a["state"] == "firing"],
        timeout=30,
        what="the alert to fire",
    )
    labels, notes = firing[0]["labels"], firing[0]["annotations"]
    assert labels["runbook"] == "queue-depth" and labels["lsready_target"] == "prod"
    assert labels["severity"] == "critical" and labels["queue"] == "saq:default"
    assert notes["summary"] == "LangSmith queue saq:default on prod: 25 jobs waiting"
    assert "25 jobs wait in saq:default on prod (critical above 10)" in notes["description"]
    # lsready itself is healthy: scraped, and its readings of the target are fresh.
    assert not prom.alert_names() & {"LsreadyDown", "LsreadyTargetStale"}
