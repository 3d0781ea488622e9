"""LangSmith's published queue depths as a source, and the exporter's families and cache."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from waiting import wait_until

from bot.exporter import Exporter
from bot.observability import Metrics, serve_observability
from checks.config import validate
from checks.probes.published_queues import endpoints, fullname_of
from conftest import make_config
from runbooks.demo.schema import build_clickhouse, push_asynq_tasks, push_saq_jobs
from runbooks.signals import Signals, collect


class LangSmithQueues:
    """A local server answering like LangSmith's backend and platform-backend metrics endpoints."""

    def __init__(self) -> None:
        self.queued = {"default": 0, "host": 0}
        self.pending = {"ingestion_queue": 0, "feedback_queue": 0, "adhoc_queue": 0}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics/queue/"):
                    queue = self.path.rsplit("/", 1)[1]
                    body = {"queued": owner.queued[queue]} if queue in owner.queued else None
                elif self.path == "/metrics?format=json":
                    body = {name: {"pending": n, "running": 0} for name, n in owner.pending.items()}
                else:
                    body = None
                data = json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server.socket.fileno() != -1:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def langsmith() -> Iterator[LangSmithQueues]:
    server = LangSmithQueues()
    yield server
    server.close()


def _target(redis_url: str, ch_url: str | None = None, **extra: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"redis": {"url": redis_url}, **extra}
    if ch_url:
        target["clickhouse"] = {"url": ch_url}
    return target


def test_endpoint_urls_come_from_the_release_and_namespace_unless_configured() -> None:
    cfg = validate({"targets": {"t": {"kubernetes": {"namespace": "ls", "release": "prod"}}}})
    found = endpoints(cfg.targets["t"])
    assert found is not None and found.derived
    assert found.backend == "http://prod-langsmith-backend.ls:1984"
    assert found.platform_backend == "http://prod-langsmith-platform-backend.ls:1986"
    assert fullname_of("langsmith") == "langsmith"
    own = validate({"targets": {"t": {"queue_endpoints": {"backend_url": "http://b:1"}, "kubernetes": {}}}})
    assert endpoints(own.targets["t"]).backend == "http://b:1"  # type: ignore[union-attr]
    off = validate({"targets": {"t": {"queue_endpoints": {"enabled": False}, "kubernetes": {}}}})
    assert endpoints(off.targets["t"]) is None
    assert endpoints(validate({"targets": {"t": {}}}).targets["t"]) is None


def test_published_and_redis_depths_are_both_read_and_a_disagreement_names_the_stale_one(
    redis_client: Any, redis_url: str, langsmith: LangSmithQueues
) -> None:
    now = time.time()
    push_saq_jobs(redis_client, "default", [now - 30] * 5)
    push_asynq_tasks(redis_client, "ingestion", [now - 10] * 3)
    langsmith.queued["default"] = 120  # the backend says far more than Redis holds
    langsmith.pending["ingestion_queue"] = 3
    config = make_config(
        {
            "t": _target(
                redis_url,
                queue_endpoints={"backend_url": langsmith.url, "platform_backend_url": langsmith.url},
            )
        }
    )
    from checks.engine import catalog_for

    s = collect(config, "t", catalog_for(config))
    depths = {(q.queue, q.source): q.depth for q in s.queues}
    assert depths[("saq:default", "redis")] == 5 and depths[("saq:default", "backend")] == 120
    assert depths[("asynq:ingestion", "redis")] == 3 and depths[("asynq:ingestion", "platform-backend")] == 3
    assert depths[("asynq:feedback", "platform-backend")] == 0
    assert s.up == {"redis": True, "backend": True, "platform-backend": True}
    [d] = s.disagreements
    assert (d.queue, d.published, d.redis, d.stale) == ("saq:default", 120, 5, "backend")
    assert "backend reports 120 waiting in saq:default, Redis has 5" in d.sentence()


def test_unreachable_endpoints_are_unknown_for_that_source_only(
    redis_client: Any, redis_url: str, unused_port: int
) -> None:
    push_saq_jobs(redis_client, "default", [time.time()] * 2)
    url = f"http://127.0.0.1:{unused_port}"
    config = make_config(
        {"t": _target(redis_url, queue_endpoints={"backend_url": url, "platform_backend_url": url})}
    )
    from checks.engine import catalog_for

    s = collect(config, "t", catalog_for(config))
    assert s.up == {"redis": True, "backend": False, "platform-backend": False}
    assert "did not answer" in s.errors["backend"] and "did not answer" in s.errors["platform-backend"]
    assert {q.source for q in s.queues} == {"redis"}
    assert {(q.queue, q.depth) for q in s.queues} >= {("saq:default", 2)}


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def _sample(body: str, prefix: str) -> float:
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in exposition")


def test_exporter_families_carry_the_write_path(clickhouse: Any, redis_client: Any, redis_url: str) -> None:
    url, client, db = clickhouse
    build_clickhouse(client, db, runs=200)
    push_saq_jobs(redis_client, "default", [time.time() - 90] * 7)
    config = make_config({"prod": _target(redis_url, url)})
    exporter = Exporter(config)
    s = exporter.refresh("prod")
    assert s.successful, s.errors
    body = exporter.exposition().decode()
    assert _sample(body, 'lsready_queue_depth{queue="saq:default",source="redis",target="prod"}') == 7
    assert _sample(body, 'lsready_queue_oldest_job_age_seconds{queue="saq:default",source="redis"') >= 89
    assert 0 < _sample(body, 'lsready_readiness_score_ratio{target="prod"}') < 1
    assert _sample(body, 'lsready_item_status{item="redis.monitored",required="false",status="') == 1
    assert _sample(body, 'lsready_ingestion_delay_runs{target="prod"}') >= 0
    assert "lsready_clickhouse_running_queries{replica=" in body
    assert _sample(body, 'lsready_clickhouse_parts_to_delay_insert_ratio{target="prod"}') >= 0
    assert _sample(body, 'lsready_backend_up{backend="clickhouse",target="prod"}') == 1
    assert _sample(body, 'lsready_last_success_timestamp_seconds{target="prod"}') > time.time() - 120
    assert 0 <= _sample(body, 'lsready_data_age_seconds{target="prod"}') < 120
    # One series per item, labelled with its status; required items also as failing 0/1.
    ones = [ln for ln in body.splitlines() if ln.startswith('lsready_item_status{item="redis.monitored"')]
    assert len(ones) == 1
    failing = [ln for ln in body.splitlines() if ln.startswith("lsready_required_item_failing{")]
    required = [r for r in s.report.results if r.item.required]  # type: ignore[union-attr]
    assert len(failing) == len(required) > 0
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in failing) == len(s.report.score.required_failing)  # type: ignore[union-attr]


def test_a_scrape_never_waits_for_a_black_holed_refresh(blackhole: Any) -> None:
    config = make_config(
        {"hung": {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}}},
        timeouts={"probe_s": 3, "run_s": 6},
        exporter={"interval": 60},
    )
    started = threading.Event()

    def slow_collect(*args: Any, **kwargs: Any) -> Signals:
        started.set()
        return collect(*args, **kwargs)

    exporter = Exporter(config, collect_fn=slow_collect)
    metrics = Metrics()
    metrics.attach(exporter.exposition)
    server = serve_observability(metrics, 0, host="127.0.0.1", health=exporter.health)
    try:
        assert exporter.refresh_async("hung") and started.wait(5)
        assert not exporter.refresh_async("hung")  # still running: not started twice
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for _ in range(20):
            t0 = time.monotonic()
            status, body = _get(base + "/metrics")
            assert status == 200 and time.monotonic() - t0 < 1.0
        assert 'lsready_target_configured{target="hung"} 1.0' in body
        assert "lsready_last_success_timestamp_seconds" not in body
        assert json.loads(_get(base + "/healthz")[1])["stale"] == ["hung"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_refresh_against_a_black_holed_backend_ends_by_the_run_deadline(blackhole: Any) -> None:
    config = make_config(
        {"hung": {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}}},
        timeouts={"probe_s": 1, "run_s": 3},
    )
    exporter = Exporter(config)
    t0 = time.monotonic()
    s = exporter.refresh("hung")
    assert time.monotonic() - t0 < 5
    assert s.up["redis"] is False and not s.successful
    body = exporter.exposition().decode()
    assert 'lsready_backend_up{backend="redis",target="hung"} 0.0' in body


def test_triage_shows_both_readings_and_names_the_stale_one(
    redis_client: Any, redis_url: str, langsmith: LangSmithQueues
) -> None:
    from runbooks.triage import triage

    push_saq_jobs(redis_client, "default", [time.time() - 5] * 5)
    langsmith.queued["default"] = 120
    endpoints_cfg = {"backend_url": langsmith.url, "platform_backend_url": langsmith.url}
    config = make_config({"t": _target(redis_url, queue_endpoints=endpoints_cfg)})
    result = triage(config, "t", "queue-depth", sample_interval_s=0.2)
    step = result.steps[0]
    assert step.step_id == "queue-drain"
    assert "Redis queue saq:default has 5 waiting jobs" in step.summary
    assert "backend reports 120 waiting in saq:default, Redis has 5" in step.summary
    assert "backend's figure is the stale one" in step.summary
    seen = step.evidence["langsmith_endpoints"]
    assert seen["depths"]["backend saq:default"] == 120 and seen["errors"] == {}
    # When they agree, the step says so; when the endpoints are down, only that source is unknown.
    langsmith.queued["default"] = 5
    agree = triage(config, "t", "queue-depth", sample_interval_s=0.2).steps[0]
    assert "LangSmith's own endpoints agree (saq:default 5" in agree.summary
    langsmith.close()
    down = triage(config, "t", "queue-depth", sample_interval_s=0.2).steps[0]
    assert "Redis queue saq:default has 5 waiting jobs" in down.summary
    assert "backend not read" in down.summary and down.status is not None


def _poll(check: Any, timeout_s: float = 30) -> Any:
    return wait_until(check, timeout=timeout_s, what="the exporter's answer", ignoring=(OSError,))


def test_serve_metrics_port_carries_the_same_gauges(redis_client: Any, redis_url: str, tmp_path: Any) -> None:
    from bot.exporter import start_beside
    from runbooks.readiness import Readiness

    push_saq_jobs(redis_client, "default", [time.time()] * 4)
    config = make_config({"prod": _target(redis_url)}, exporter={"interval": 30})
    readiness = Readiness.open(config, tmp_path / "lsready.db")
    metrics = Metrics()
    exporter = start_beside(readiness, metrics)
    assert exporter is not None
    try:
        line = 'lsready_queue_depth{queue="saq:default",source="redis",target="prod"} 4.0'
        body = _poll(lambda: (b := metrics.exposition().decode()) and line in b and b)
        assert "lsready_commands_total" in body or "lsready_start_time_seconds" in body  # the bot's own too
    finally:
        exporter.stop()
    assert start_beside(Readiness.open(make_config({}), tmp_path / "other.db"), Metrics()) is None


def test_cli_exporter_serves_until_sigterm(redis_client: Any, redis_url: str, tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    from runbooks.demo.engines import free_port

    push_saq_jobs(redis_client, "default", [time.time()] * 3)
    (tmp_path / "lsready.yaml").write_text(
        f"targets:\n  prod:\n    redis: {{url: '{redis_url}'}}\nexporter: {{interval: 2}}\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSREADY_")}
    env["LSREADY_CONFIG"] = str(tmp_path / "lsready.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "exporter", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _poll(lambda: json.loads(_get(base + "/healthz")[1])["refreshed"] == ["prod"])
        line = 'lsready_queue_depth{queue="saq:default",source="redis",target="prod"} 3.0'
        _poll(lambda: line in _get(base + "/metrics")[1])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert f"http://127.0.0.1:{port}/metrics, 1 target(s) every 2 s" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_exporter_interval_and_queue_endpoints_are_validated_config() -> None:
    from checks.errors import ConfigError

    with pytest.raises(ConfigError, match=r"exporter.interval: Input should be greater than or equal to 1"):
        make_config({}, exporter={"interval": 0.1})
    with pytest.raises(ConfigError, match=r"queue_endpoints.backend_url: queue endpoint URL must start with"):
        make_config({"t": {"queue_endpoints": {"backend_url": "ftp://x"}}})
    cfg = make_config({"t": {"queue_endpoints": {"backend_url": "http://u:s3cret-pw@b:1984"}}})
    assert cfg.redactor().text("it said s3cret-pw") == "it said ***"  # known, so masked even bare
