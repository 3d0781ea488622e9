import json
import subprocess
import sys


def test_demo_runs_real_checks_on_embedded_engines(tmp_path):
    # Its own process: the embedded ClickHouse opens one data path per process.
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_id = {r["id"]: r for r in data["results"]}
    assert len(by_id) == 69
    assert by_id["clickhouse.migrations"]["status"] == "pass"
    assert by_id["clickhouse.migrations"]["evidence"]["version"] > 0
    assert by_id["postgres.max_connections"]["status"] == "pass"
    assert by_id["redis.memory_sized"]["status"] in ("warn", "pass")
    # The cluster side is a chart-defaults install: blob storage off, no HPA.
    for item in ("blob.enabled", "autoscaling.hpa_configured"):
        assert by_id[item]["status"] in ("fail", "warn"), (item, by_id[item]["summary"])
    assert "Traceback" not in out.stderr
