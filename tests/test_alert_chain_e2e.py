"""The whole way, on the embedded engines: a Redis backlog -> a real Prometheus scraping the exporter ->
the shipped rule fires -> a real Alertmanager -> `lsready serve` -> one alert message in Slack whose
thread holds the live triage, ending in ingestion backpressure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_chain import AlertChain
from alertmanager_server import BINARY as ALERTMANAGER
from alertmanager_server import MISSING as NO_ALERTMANAGER
from lsready_server import exporter_thread
from prometheus_server import BINARY as PROMETHEUS
from prometheus_server import MISSING as NO_PROMETHEUS
from waiting import wait_until

from bench import ch_http
from checks.config import validate
from runbooks.demo.scenarios import SCENARIO_THRESHOLDS
from runbooks.demo.schema import build_clickhouse, push_saq_jobs

pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS),
    pytest.mark.skipif(ALERTMANAGER is None, reason=NO_ALERTMANAGER),
]

ALERT = "LangSmithQueueBacklog"


@pytest.fixture
def clickhouse_over_http(clickhouse: tuple[str, Any, str]) -> Iterator[str]:
    """The test's database as `lsready serve`, a process of its own, reaches it: over HTTP, served from
    this process (the embedded engine opens its data path in one process only)."""
    url, _, db = clickhouse
    if not url.startswith("chdb://"):  # an external server: it speaks HTTP itself
        yield url
        return
    server = ch_http.serve(url.removeprefix("chdb://").split("?")[0])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{db}"
    server.shutdown()
    server.server_close()


def _config(redis_url: str, clickhouse_url: str) -> dict[str, Any]:
    # Test-sized timing, all through config: the exporter refreshes every second, alerts hold for 3 s,
    # the triage samples the queues 0.5 s apart; the machine's disk fill is not the incident.
    return {
        "targets": {"prod": {"redis": {"url": redis_url}, "clickhouse": {"url": clickhouse_url}}},
        "exporter": {"interval": 1},
        "thresholds": {
            "ops.alerts": {"for_minutes": 0.05},
            "redis.monitored": {"queue_warn": 5, "queue_fail": 10},
            "triage.queues": {"sample_interval_s": 0.5},
            **SCENARIO_THRESHOLDS,
        },
        "timeouts": {"probe_s": 3, "run_s": 8},
    }


def test_a_redis_backlog_reaches_slack_as_one_alert_whose_thread_diagnoses_ingestion_backpressure(
    tmp_path: Path,
    clickhouse: tuple[str, Any, str],
    clickhouse_over_http: str,
    redis_client: Any,
    redis_url: str,
) -> None:
    url, client, db = clickhouse
    build_clickhouse(client, db, runs=50)
    exporting = validate(_config(redis_url, url), "test")
    with (
        exporter_thread(exporting) as port,
        AlertChain(tmp_path, _config(redis_url, clickhouse_over_http), f"127.0.0.1:{port}") as chain,
    ):
        prom = chain.prometheus
        depth = 'lsready_queue_depth{job="lsready",queue="saq:default",source="redis"}'
        wait_until(lambda: prom.query(f"{depth} == 0"), timeout=30, what="an empty queue scraped")
        assert chain.alert_posts() == []

        push_saq_jobs(redis_client, "default", [time.time() - 5] * 25)

        ts = wait_until(lambda: chain.alert_messages(ALERT), timeout=45, what="the alert in Slack")[0]["ts"]
        done = wait_until(lambda: chain.diagnosis_posted(ts), timeout=30, what="the diagnosis in its thread")

        # Prometheus fired the shipped rule on what the exporter read from Redis.
        firing = [a for a in prom.alerts(ALERT) if a["state"] == "firing"]
        assert [a["labels"]["queue"] for a in firing] == ["saq:default"]
        # One alert message, saying what fired; the thread holds the live checklist, now the diagnosis.
        assert len(chain.alert_posts()) == len(chain.alert_posts(ALERT)) == 1
        alert = json.dumps(chain.message(ts)["blocks"])
        assert "LangSmith queue saq:default on prod: 25 jobs waiting" in alert
        assert "*Runbook:* `queue-depth`" in alert and "*Target:* prod" in alert
        thread = chain.thread(ts)
        assert len(thread) == 1
        triage = json.dumps(done.args["blocks"])
        assert "Triage: Queue depth" in triage and "Ingestion backpressure" in triage
        assert "Scale the ingest workers" in triage  # ClickHouse has headroom: more workers is the advice
        # The alert message now names the diagnosis, and the bot counted it.
        wait_until(lambda: "Last triage: `ingestion_backpressure`" in json.dumps(chain.message(ts)["blocks"]))
        counted = 'lsready_triage_diagnoses_total{diagnosis="ingestion_backpressure",target="prod"} 1.0'
        assert counted in chain.serve.metrics()
