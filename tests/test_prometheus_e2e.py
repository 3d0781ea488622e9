"""The real Prometheus scrapes a real `lsready exporter` and fires the shipped queue alert on a backlog."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.exporter import run_exporter
from checks.engine import catalog_for
from conftest import make_config
from runbooks.alert_rules import render_rules
from runbooks.demo.engines import free_port
from runbooks.demo.schema import build_clickhouse, push_saq_jobs

PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
)
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not found: install Debian's `prometheus` package (.ci/run does it in CI)",
)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(
    what: str, check: Callable[[], Any], timeout_s: float, proc: subprocess.Popen[Any] | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {proc.returncode} while waiting for {what}")
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


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
def exporter_port(exporter_config: Any) -> Iterator[int]:
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(
        target=run_exporter,
        args=(exporter_config,),
        kwargs={"port": port, "host": "127.0.0.1", "stop": stop, "say": lambda line: None},
        daemon=True,
    )
    thread.start()
    _wait("the exporter", lambda: _get_json(f"http://127.0.0.1:{port}/healthz")["refreshed"], 30)
    yield port
    stop.set()
    thread.join(10)


@pytest.fixture
def prometheus(tmp_path: Path, exporter_config: Any, exporter_port: int) -> Iterator[str]:
    (tmp_path / "lsready-rules.yml").write_text(render_rules(catalog_for(exporter_config)))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": ["lsready-rules.yml"],
        "scrape_configs": [
            {"job_name": "lsready", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,  # type: ignore[list-item]
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(
            "prometheus to be ready",
            lambda: urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200,
            30,
            proc,
        )
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    return _get_json(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")["data"]["result"]


def _alerts(base: str, name: str) -> list[dict[str, Any]]:
    return [
        a for a in _get_json(f"{base}/api/v1/alerts")["data"]["alerts"] if a["labels"]["alertname"] == name
    ]


def test_prometheus_fires_the_queue_alert_on_a_backlog_created_in_redis(
    prometheus: str, redis_client: Any
) -> None:
    base = prometheus
    depth = 'lsready_queue_depth{job="lsready",queue="saq:default",source="redis"}'
    _wait("the queue depth to be scraped", lambda: _query(base, depth), 30)
    assert float(_query(base, depth)[0]["value"][1]) == 0
    _wait("lsready to be up", lambda: _query(base, 'up{job="lsready"} == 1'), 10)
    assert _alerts(base, "LangSmithQueueBacklog") == []
    assert _query(base, 'lsready_backend_up{backend="clickhouse"} == 1')

    push_saq_jobs(redis_client, "default", [time.time() - 5] * 25)

    pending = _wait("the alert to go pending", lambda: _alerts(base, "LangSmithQueueBacklog"), 30)
    assert pending[0]["state"] in ("pending", "firing")
    firing = _wait(
        "the alert to fire",
        lambda: [a for a in _alerts(base, "LangSmithQueueBacklog") if a["state"] == "firing"],
        30,
    )
    labels, notes = firing[0]["labels"], firing[0]["annotations"]
    assert labels["runbook"] == "queue-depth" and labels["lsready_target"] == "prod"
    assert labels["severity"] == "critical" and labels["queue"] == "saq:default"
    assert notes["summary"] == "LangSmith queue saq:default on prod: 25 jobs waiting"
    assert "25 jobs wait in saq:default on prod (critical above 10)" in notes["description"]
    # lsready itself is healthy: scraped, and its readings of the target are fresh.
    others = {a["labels"]["alertname"] for a in _get_json(f"{base}/api/v1/alerts")["data"]["alerts"]}
    assert not others & {"LsreadyDown", "LsreadyTargetStale"}
