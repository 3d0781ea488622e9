import json
import re
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


def test_demo_scenario_ends_with_the_diagnosis_and_the_check_comes_first_in_brief(tmp_path):
    """The last screen was the check's score, ~125 lines after the diagnosis."""
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--scenario", "ingestion-delay"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("lsready check of the same engines: Score ")
    order = [
        text.index(h)
        for h in ("lsready triage:", "Steps taken:", "INSERT PATH DELAY", "What to do, in order:")
    ]
    assert order == sorted(order), order
    tail = text.rstrip().splitlines()[-8:]
    assert any(line.startswith("  1. Look at the insert path") for line in tail) or "Not measured:" in text
    assert len(text.splitlines()) < 60


def test_triage_and_check_grade_the_same_disk_reading_the_same_way(tmp_path):
    """The triage said '70% full (warn 97%, fail 99%)', the check '69.5% full (warn 70%, fail 85%)'."""
    script = (
        "import json, re\n"
        "from runbooks.demo import run_demo\n"
        "run = run_demo('healthy')\n"
        "load = next(s for s in run.triage.steps if s.step_id == 'clickhouse-load')\n"
        "disk = next(r for r in run.report.results if r.item.id == 'clickhouse.disk_usage')\n"
        "print(json.dumps({'triage': load.summary, 'check': disk.summary}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout.strip().splitlines()[-1])
    pattern = re.compile(r"is ([\d.]+%) full \(?[^)]*?warn ([\d.]+%), fail ([\d.]+%)")
    triage, check = pattern.search(said["triage"]), pattern.search(said["check"])
    assert triage and check, said
    assert triage.groups()[1:] == check.groups()[1:] == ("97%", "99%"), said  # the same limits
    # Read a moment apart on a disk others write to: the same reading, to within a point.
    assert abs(float(triage.group(1)[:-1]) - float(check.group(1)[:-1])) < 1, said
