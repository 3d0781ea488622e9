import urllib.request

import pytest

from bot.observability import Metrics, serve_observability
from checks.engine import check
from conftest import make_config


@pytest.fixture
def served():
    metrics = Metrics()
    server = serve_observability(metrics, 0, health=lambda: {"mode": "test"}, host="127.0.0.1")
    yield metrics, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_healthz_answers_ok(served):
    _, base = served
    status, body = _get(base + "/healthz")
    assert status == 200 and '"status": "ok"' in body and '"mode": "test"' in body


def test_metrics_export_score_probe_durations_and_commands(served):
    metrics, base = served
    report = check(make_config({"prod": {}}))
    metrics.observe_report(report, whole=True)
    metrics.command("triage", "ok")
    metrics.diagnosis("prod", "healthy")
    _, body = _get(base + "/metrics")
    assert f'lsready_readiness_score_percent{{target="prod"}} {report.score.percent}' in body
    assert 'lsready_commands_total{command="triage",outcome="ok"} 1.0' in body
    assert 'lsready_triage_diagnoses_total{diagnosis="healthy",target="prod"} 1.0' in body
    assert 'lsready_probe_duration_seconds_count{item="clickhouse.migrations",target="prod"} 1.0' in body
    unknown = report.score.buckets["unknown"]
    assert f'lsready_readiness_items{{status="unknown",target="prod"}} {float(unknown)}' in body


def test_a_section_or_single_item_check_leaves_the_score_alone(served):
    metrics, base = served
    metrics.observe_report(check(make_config({"prod": {}}), selector="clickhouse.migrations"), whole=False)
    metrics.observe_report(check(make_config({"prod": {}}), selector="redis"), whole=False)
    _, body = _get(base + "/metrics")
    assert "lsready_readiness_score_percent{" not in body
    assert 'lsready_probe_duration_seconds_count{item="redis.monitored",target="prod"} 1.0' in body


def test_the_scheduled_digest_feeds_the_score_gauges(served, tmp_path):
    from slack_fake import BOT_TOKEN, FakeSlack
    from slack_sdk import WebClient

    from bot.scheduler import send_digests
    from runbooks.readiness import Readiness

    metrics, base = served
    # Hourly: the current slot is always within the grace period, and finding it is quick.
    config = make_config({"prod": {}}, digest={"channel": "CDIGEST001", "cron": "0 * * * *"})
    readiness = Readiness.open(config, tmp_path / "x.db")
    slack = FakeSlack()
    try:
        assert send_digests(readiness, WebClient(token=BOT_TOKEN, base_url=slack.api_url), metrics=metrics)
    finally:
        slack.close()
    _, body = _get(base + "/metrics")
    assert 'lsready_readiness_score_percent{target="prod"}' in body


def test_an_extra_route_is_one_entry_and_unknown_paths_are_404():
    import urllib.error

    def hello(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b"got " + body]

    server = serve_observability(Metrics(), 0, host="127.0.0.1", routes={"/hook": hello})
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        request = urllib.request.Request(base + "/hook", data=b"ping", method="POST")
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert (resp.status, resp.read()) == (202, b"got ping")
        assert _get(base + "/healthz")[0] == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(base + "/elsewhere")
        assert err.value.code == 404
    finally:
        server.shutdown()
