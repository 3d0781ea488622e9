"""The shipped alert rules: generated from the catalog, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import cli
from checks.engine import catalog_for
from checks.registry import load_catalog
from conftest import make_config
from runbooks.alert_rules import FILES, render_operator, render_rules, render_tests, rules
from runbooks.definitions import RUNBOOKS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's `prometheus` package (.ci/run does it in CI)",
)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_committed_rules_are_the_generated_ones() -> None:
    catalog = load_catalog()
    assert (DEPLOY / FILES["rules"]).read_text() == render_rules(catalog)
    assert (DEPLOY / FILES["operator"]).read_text() == render_operator(catalog)
    assert (DEPLOY / FILES["tests"]).read_text() == render_tests(catalog)


def test_every_alert_carries_the_labels_and_annotations_receivers_rely_on() -> None:
    doc = yaml.safe_load((DEPLOY / FILES["rules"]).read_text())
    seen = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
            assert name.startswith(("LangSmith", "Lsready")), name
            assert labels["runbook"] in RUNBOOKS, name
            assert labels["severity"] in ("warning", "critical"), name
            assert labels["lsready_target"] in ("{{ $labels.target }}", "all"), name
            assert "$value" in notes["summary"] + notes["description"], name
            assert notes["summary"] and notes["description"]
            seen.add(name)
    assert {
        "LangSmithIngestionDelayHigh",
        "LangSmithQueueGrowing",
        "LangSmithQueueBacklog",
        "LangSmithQueueOldestJobNearExpiry",
        "LangSmithClickHouseQuerySaturation",
        "LangSmithClickHousePartsPressure",
        "LangSmithClickHouseDiskFull",
        "LangSmithRequiredItemFailing",
        "LsreadyTargetStale",
        "LsreadyDown",
    } == seen


def test_every_rule_has_a_firing_case_and_a_quiet_case_just_under_it() -> None:
    for rule in rules(load_catalog()):
        assert rule.fires is not None and rule.quiet is not None, rule.name
        assert any(a["severity"] == rule.severity for a in rule.fires.firing), rule.name
        assert all(a["severity"] != rule.severity for a in rule.quiet.firing), rule.name


def test_thresholds_come_from_the_catalog_with_config_overrides() -> None:
    config = make_config(
        {},
        thresholds={
            "ops.alerts": {"ingestion_delay_p95_s": 30, "for_minutes": 2},
            "redis.monitored": {"queue_fail": 500, "runs_expiry_seconds": 3600},
            "clickhouse.disk_usage": {"warn_ratio": 0.6},
        },
    )
    by = {(r.name, r.severity): r for r in rules(catalog_for(config))}
    assert by[("LangSmithIngestionDelayHigh", "warning")].expr.endswith("> 30")
    assert by[("LangSmithIngestionDelayHigh", "warning")].for_s == 120
    assert by[("LangSmithQueueBacklog", "critical")].expr.endswith("> 500")
    assert by[("LangSmithQueueOldestJobNearExpiry", "critical")].expr.endswith("> 1800")
    assert by[("LangSmithClickHouseDiskFull", "warning")].expr.endswith("> 0.6")


def test_cli_prints_each_form_and_writes_all_three(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["alert-rules", "--format", "operator", "--namespace", "obs"])
    assert out.exit_code == 0 and yaml.safe_load(out.output)["metadata"]["namespace"] == "obs"
    out = runner.invoke(cli, ["alert-rules", "--write", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())


@needs_promtool
def test_promtool_checks_the_rules_file_and_the_prometheusrule(tmp_path: Path) -> None:
    result = _promtool("check", "rules", FILES["rules"], cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "14 rules found" in result.stdout
    spec = yaml.safe_load((DEPLOY / FILES["operator"]).read_text())["spec"]
    (tmp_path / "from-operator.yml").write_text(yaml.safe_dump(spec))
    result = _promtool("check", "rules", "from-operator.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _promtool("check", "config", "scrape-config.yml", cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass_for_every_shipped_alert() -> None:
    result = _promtool("test", "rules", FILES["tests"], cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_a_threshold_moves_under_them(tmp_path: Path) -> None:
    """The unit tests are not vacuous: rules with another threshold fail the shipped cases."""
    moved = catalog_for(make_config({}, thresholds={"ops.alerts": {"ingestion_delay_p95_s": 120}}))
    (tmp_path / FILES["rules"]).write_text(render_rules(moved))
    (tmp_path / FILES["tests"]).write_text((DEPLOY / FILES["tests"]).read_text())
    result = _promtool("test", "rules", FILES["tests"], cwd=tmp_path)
    assert result.returncode != 0 and "LangSmithIngestionDelayHigh" in result.stdout + result.stderr
    # ...and the tests generated for those rules pass again.
    (tmp_path / FILES["tests"]).write_text(render_tests(moved))
    result = _promtool("test", "rules", FILES["tests"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _fake(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def test_ci_installs_prometheus_and_alertmanager_when_missing_then_runs_the_readme_test_command(
    tmp_path: Path,
) -> None:
    repo, bin_dir, calls = tmp_path / "repo", tmp_path / "bin", tmp_path / "calls"
    (repo / ".ci").mkdir(parents=True)
    bin_dir.mkdir()
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    log = f'echo "$(basename "$0") $*" >> {calls}'
    for tool in ("apt-get", "pip"):
        _fake(bin_dir / tool, log)
    _fake(bin_dir / "id", "echo 0")
    venv = f"mkdir -p .venv/bin && cp {bin_dir}/pip .venv/bin/pip && cp {bin_dir}/pip .venv/bin/python"
    _fake(bin_dir / "python3", f"{log}; {venv}")
    for tool in ("dirname", "basename", "mkdir", "cp"):
        (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    result = subprocess.run(
        ["/bin/bash", str(repo / ".ci" / "run")], env={"PATH": str(bin_dir), "CI": "true"},
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "apt-get update -q"
    assert lines[1] == "apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager"
    readme = (ROOT / "README.md").read_text()
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
        in readme
    )
    assert lines[2:] == ["python3 -m venv .venv", "pip install -q -e .[test]", "python -m pytest"]


def _deployed(name: str) -> dict:
    doc = yaml.safe_load((DEPLOY / name).read_text())
    doc["metadata"]["namespace"] = "langsmith"  # what kustomize sets
    return doc


def _ops_alerts(servers, objects, source):
    from checks.clients import Clients
    from checks.config import TargetConfig
    from checks.probes.k8s.monitoring import alerts

    section = servers.kubernetes_section(objects, source)
    clients = Clients("t", TargetConfig.model_validate({"kubernetes": section}), timeout_s=5)
    return alerts(clients, {"ingestion_delay_p95_s": 60})


@pytest.mark.parametrize("source", ["api", "snapshot"])
def test_alert_item_passes_on_the_shipped_rules_loaded_and_lsready_scraped(servers, source: str) -> None:
    from k8s_fake import chart_defaults

    objects = chart_defaults()  # no alerting of its own
    objects["prometheusrules"] = [_deployed(FILES["operator"])]
    objects["servicemonitors"] = [_deployed("servicemonitor.yaml")]
    result = _ops_alerts(servers, objects, source)
    assert result.status.value == "pass", result.summary
    assert "PrometheusRule langsmith/lsready (14 alerts)" in result.summary
    assert "ServiceMonitor langsmith/lsready scrapes lsready's exporter" in result.summary


def test_alert_item_warns_when_the_shipped_rules_have_nothing_to_read(servers) -> None:
    from k8s_fake import chart_defaults

    objects = chart_defaults()
    objects["prometheusrules"] = [_deployed(FILES["operator"])]
    objects["servicemonitors"] = []
    result = _ops_alerts(servers, objects, "snapshot")
    assert result.status.value == "warn"
    assert "nothing visible scrapes lsready's exporter" in result.summary
    # The shipped Deployment's pods are annotated for scraping: that counts, and says so.
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    deployment["metadata"]["namespace"] = "langsmith"
    objects["deployments"] = [*objects["deployments"], deployment]
    result = _ops_alerts(servers, objects, "snapshot")
    assert (
        result.status.value == "pass" and "deployment lsready (prometheus.io annotations)" in result.summary
    )


def test_deploy_prometheus_manifests_select_lsready_and_its_metrics_port() -> None:
    from kubernetes.client import ApiClient

    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {"service.yaml", "servicemonitor.yaml", FILES["operator"]}
    service = ApiClient()._ApiClient__deserialize(
        yaml.safe_load((DEPLOY / "service.yaml").read_text()), "V1Service"
    )
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    assert service.spec.selector.items() <= pod["metadata"]["labels"].items()
    (port,) = service.spec.ports
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert port.target_port == "metrics" and container_ports["metrics"] == port.port == 9100
    monitor = yaml.safe_load((DEPLOY / "servicemonitor.yaml").read_text())
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service.metadata.labels.items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port.name]
    # The job Prometheus gives a ServiceMonitor's targets is the Service's name: LsreadyDown watches it.
    assert service.metadata.name == "lsready" and 'up{job="lsready"}' in (DEPLOY / FILES["rules"]).read_text()
