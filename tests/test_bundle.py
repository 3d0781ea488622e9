"""Support bundles on the real engines and the Kubernetes API fake: contents, manifest, caps, deadline."""

from __future__ import annotations

import json
import tarfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from k8s_fake import configmap, event, running_pod, service, statefulset

from bot.cli import cli
from conftest import make_config
from runbooks.bundle import BundleOptions, build_bundle, parse_size
from runbooks.demo.schema import build_clickhouse

NOW = datetime.now(UTC)
FAST = {"probe_s": 2, "run_s": 8}


def cluster_objects(env: dict[str, str] | None = None, config_data: dict[str, str] | None = None) -> dict:
    pods = [
        running_pod("langsmith-backend-7f9-abcde", {"backend": 3}, env=env),
        running_pod("langsmith-queue-5c8-fghij", {"queue": 0}),
    ]
    return {
        "pods": pods,
        "deployments": [],
        "statefulsets": [statefulset("clickhouse")],
        "services": [service("backend", 1984)],
        "configmaps": [configmap("langsmith-config", config_data or {"LOG_LEVEL": "info"})],
        "persistentvolumeclaims": [],
        "storageclasses": [],
        "nodes": [],
        "ingresses": [],
        "horizontalpodautoscalers": [],
        "events": [
            event(
                "e-late",
                "BackOff",
                "Back-off restarting failed container",
                ("Pod", pods[0]["metadata"]["name"]),
                at=NOW - timedelta(minutes=1),
            ),
            event(
                "e-early",
                "OOMKilling",
                "Memory cgroup out of memory",
                ("Pod", pods[0]["metadata"]["name"]),
                at=NOW - timedelta(minutes=30),
            ),
        ],
    }


def cluster_logs(lines: list[str] | None = None, previous: list[str] | None = None) -> dict:
    old = NOW - timedelta(days=3)
    current = [(old, "line from three days ago")] + [
        (NOW - timedelta(seconds=60 - i), text) for i, text in enumerate(lines or ["backend started"])
    ]
    return {
        ("langsmith-backend-7f9-abcde", "backend", False): current,
        ("langsmith-backend-7f9-abcde", "backend", True): [
            (NOW - timedelta(minutes=5), t) for t in previous or ["fatal: out of memory"]
        ],
        ("langsmith-queue-5c8-fghij", "queue", False): [(NOW, "worker ready")],
    }


def read_archive(path: Path) -> dict[str, bytes]:
    """Member path (without the root folder) -> bytes."""
    out: dict[str, bytes] = {}
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                out[name.split("/", 1)[1]] = z.read(name)
        return out
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            out[m.name.split("/", 1)[1]] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return out


@pytest.fixture
def engines(clickhouse: Any, redis_url: str, postgres_url: str) -> dict[str, Any]:
    url, admin, db = clickhouse
    build_clickhouse(admin, db, runs=200)
    return {"clickhouse": {"url": url}, "redis": {"url": redis_url}, "postgres": {"url": postgres_url}}


def _opts(**kw: Any) -> BundleOptions:
    return BundleOptions(**{"deadline_s": 30, "triage_sample_s": 0.1, **kw})


def test_bundle_holds_every_source_and_a_manifest_with_sha256_of_each_file(servers, engines, tmp_path):
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs())
    config = make_config({"prod": {**engines, "kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(), tmp_path / "b.tar.gz")
    files = read_archive(bundle.path)
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest == bundle.manifest
    assert manifest["complete"], manifest["missing"]
    assert {f["path"] for f in manifest["files"]} == set(files)
    import hashlib

    for f in manifest["files"]:
        assert (
            hashlib.sha256(files[f["path"]]).hexdigest() == f["sha256"]
            and len(files[f["path"]]) == f["bytes"]
        )
    expected = """lsready/check.json lsready/triage.json lsready/config.json kubernetes/pods.json
        kubernetes/events.json kubernetes/pod-states.json clickhouse/disks.json clickhouse/merges.json
        clickhouse/parts_per_partition.json clickhouse/trace_counts_daily.json clickhouse/mutations.json
        clickhouse/processes.json redis/info.json redis/queues.json redis/clients.json postgres/version.json
        postgres/connections.json postgres/databases.json postgres/settings.json"""
    assert set(expected.split()) <= set(files), set(expected.split()) - set(files)
    assert {s: v["status"] for s, v in manifest["sources"].items()} == {
        "lsready": "ok", "kubernetes": "ok", "logs": "ok", "clickhouse": "ok", "redis": "ok", "postgres": "ok"
    }  # fmt: skip
    assert manifest["lsready_version"] and manifest["created_at"].startswith(str(NOW.year))
    assert manifest["sources"]["redis"]["from"] == f"Redis {engines['redis']['url']}"
    assert manifest["sources"]["kubernetes"]["from"].startswith("kubeconfig ")
    # query_log is not enabled on the embedded engine: said so, not counted as missing
    assert "not enabled" in json.loads(files["clickhouse/query_exceptions.json"])["note"]
    traces = json.loads(files["clickhouse/trace_counts_daily.json"])
    assert sum(r["traces"] for r in traces) > 0
    # events oldest first, as kubectl --sort-by=.lastTimestamp
    assert [e["metadata"]["name"] for e in json.loads(files["kubernetes/events.json"])] == [
        "e-early",
        "e-late",
    ]
    states = {p["name"]: p for p in json.loads(files["kubernetes/pod-states.json"])}
    backend = states["langsmith-backend-7f9-abcde"]["containers"][0]
    assert backend["restartCount"] == 3 and backend["lastTermination"]["reason"] == "OOMKilled"


def test_logs_since_the_window_and_previous_logs_only_for_restarted_containers(servers, engines, tmp_path):
    api, k8s = servers.live_section(cluster_objects(), logs=cluster_logs(["a", "b"], ["crash"]))
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(since_s=3600), tmp_path / "b.tar.gz")
    files = read_archive(bundle.path)
    current = files["kubernetes/logs/langsmith-backend-7f9-abcde/backend.log"].decode()
    assert current.split() == ["a", "b"]  # the three-day-old line is outside --since
    assert (
        files["kubernetes/logs/langsmith-backend-7f9-abcde/backend.previous.log"].decode().strip() == "crash"
    )
    assert "kubernetes/logs/langsmith-queue-5c8-fghij/queue.previous.log" not in files
    assert "kubernetes/logs/langsmith-queue-5c8-fghij/queue.log" in files
    previous = [r for r in api.requests if r.resource == "pods/log"]
    assert len(previous) == 3 and {r.verb for r in previous} == {"get"}
    assert bundle.manifest["sources"]["logs"]["status"] == "ok"


def test_per_container_log_cap_keeps_the_newest_lines(servers, tmp_path):
    lines = [f"line {i:05d} " + "x" * 80 for i in range(3000)]
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs(lines))
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    opts = _opts(log_max_bytes=20_000, log_tail_lines=2000)
    files = read_archive(build_bundle(config, "prod", opts, tmp_path / "b.tar.gz").path)
    log = files["kubernetes/logs/langsmith-backend-7f9-abcde/backend.log"].decode().splitlines()
    assert len("\n".join(log)) <= 20_000
    assert log[-1].startswith("line 02999") and not any(x.startswith("line 00999") for x in log)


def test_total_size_cap_trims_logs_to_their_newest_lines_and_says_so(servers, tmp_path):
    import random

    rng = random.Random(7)  # incompressible text, so the cap is met by trimming, not by gzip
    lines = [
        f"line {i:05d} " + "".join(rng.choice("abcdefghij0123456789") for _ in range(100))
        for i in range(4000)
    ]
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs(lines))
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    cap = parse_size("200KB")
    bundle = build_bundle(config, "prod", _opts(max_bytes=cap, log_max_bytes=10 * 10**6), tmp_path / "b.zip")
    assert bundle.path.stat().st_size <= cap
    files = read_archive(bundle.path)
    log = files["kubernetes/logs/langsmith-backend-7f9-abcde/backend.log"].decode().splitlines()
    assert log[-1].startswith("line 03999") and len(log) < 4000
    assert "kubernetes/logs/langsmith-backend-7f9-abcde/backend.log" in bundle.manifest["trimmed_logs"]
    assert "kubernetes/pods.json" in files  # objects come before logs


def test_parts_beyond_the_cap_are_dropped_and_listed_as_missing(servers, tmp_path):
    big = {f"KEY_{i}": "v" * 2000 for i in range(100)}  # a 200 kB ConfigMap
    _, k8s = servers.live_section(cluster_objects(config_data=big), logs=cluster_logs())
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(max_bytes=parse_size("100KB")), tmp_path / "b.tar.gz")
    assert bundle.path.stat().st_size <= 100_000
    assert not bundle.manifest["complete"]
    assert any(m.startswith("kubernetes/configmaps.json: dropped") for m in bundle.manifest["missing"])
    assert "kubernetes/configmaps.json" not in read_archive(bundle.path)


def test_a_black_holed_source_is_in_the_manifest_and_the_bundle_still_arrives_in_time(
    servers, engines, blackhole, tmp_path
):
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs())
    target = {
        **engines,
        "kubernetes": k8s,
        "clickhouse": {"url": f"http://127.0.0.1:{blackhole.port}/default"},
    }
    config = make_config({"prod": target}, timeouts={"probe_s": 1, "run_s": 3})
    started = time.monotonic()
    bundle = build_bundle(config, "prod", _opts(deadline_s=8), tmp_path / "b.tar.gz")
    assert time.monotonic() - started < 8 + 1
    ch = bundle.manifest["sources"]["clickhouse"]
    assert ch["status"] in ("failed", "timeout") and ch["problems"]
    assert not bundle.manifest["complete"]
    assert any(m.startswith("clickhouse:") for m in bundle.manifest["missing"])
    files = read_archive(bundle.path)
    assert "redis/info.json" in files and "kubernetes/pods.json" in files


def test_a_source_still_running_at_the_deadline_is_recorded_as_timed_out(servers, blackhole, tmp_path):
    from k8s_fake import write_kubeconfig

    kubeconfig = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{blackhole.port}")
    # The check's own deadline (run_s) is longer than the bundle's: the bundle does not wait for it.
    config = make_config(
        {"prod": {"kubernetes": {"kubeconfig": str(kubeconfig)}}}, timeouts={"probe_s": 30, "run_s": 60}
    )
    started = time.monotonic()
    bundle = build_bundle(config, "prod", _opts(deadline_s=6), tmp_path / "b.tar.gz")
    assert time.monotonic() - started < 6 + 1
    sources = bundle.manifest["sources"]
    assert sources["lsready"]["status"] == "timeout" and "6 s deadline" in sources["lsready"]["problems"][-1]
    # each API call is bounded by half the bundle's deadline, so the API itself is named as the cause
    assert sources["kubernetes"]["status"] == "failed"
    assert "did not answer list" in sources["kubernetes"]["problems"][0]
    assert any(m.startswith("lsready: running the") for m in bundle.manifest["missing"])


def test_a_snapshot_target_bundles_the_snapshots_objects_and_says_logs_are_missing(servers, tmp_path):
    k8s = servers.kubernetes_section(cluster_objects(), "snapshot")
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(), tmp_path / "b.tar.gz")
    files = read_archive(bundle.path)
    assert json.loads(files["kubernetes/pods.json"])[0]["metadata"]["name"].startswith("langsmith-")
    assert bundle.manifest["sources"]["kubernetes"]["from"].startswith("snapshot ")
    missing = bundle.manifest["missing"]
    assert any("holds no container logs" in m for m in missing)
    assert any("kubectl get events -n langsmith -o json >" in m for m in missing)  # what to add, not where


def test_cli_bundle_writes_a_zip_and_exits_0_when_complete(servers, tmp_path, monkeypatch):
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs())
    cfg = tmp_path / "lsready.yaml"
    cfg.write_text(json.dumps({"targets": {"prod": {"kubernetes": k8s}}, "timeouts": FAST}))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "support.zip"
    result = CliRunner().invoke(cli, ["--config", str(cfg), "bundle", "--out", str(out), "--since", "2h"])
    assert result.exit_code == 0, result.output
    assert "support.zip: Support bundle of prod" in result.output and "complete" in result.output
    assert zipfile.is_zipfile(out)
    assert json.loads(read_archive(out)["manifest.json"])["options"]["since_s"] == 7200


def test_cli_bundle_rejects_a_bad_size_in_one_line(tmp_path):
    cfg = tmp_path / "lsready.yaml"
    cfg.write_text(json.dumps({"targets": {"prod": {}}}))
    result = CliRunner().invoke(cli, ["--config", str(cfg), "bundle", "--max-size", "lots"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "lsready: 'lots' is not a size; use a number of bytes or e.g. 500KB, 50MB, 1GB"
    ]


def test_parse_size_units():
    assert parse_size("50MB") == 50_000_000 and parse_size("500k") == 500_000 and parse_size("1GB") == 10**9
    with pytest.raises(Exception, match="too small"):
        parse_size("10")


def test_without_the_bundle_role_logs_are_missing_with_the_grant_to_add(servers, tmp_path):
    api, k8s = servers.live_section(cluster_objects(), logs=cluster_logs(), forbidden=frozenset({"pods/log"}))
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(), tmp_path / "b.tar.gz")
    logs = bundle.manifest["sources"]["logs"]
    assert logs["status"] == "partial" and "rbac.yaml" in logs["problems"][0]
    assert len([r for r in api.requests if r.resource == "pods/log"]) == 1  # stops at the first refusal
    assert not bundle.manifest["complete"] and "kubernetes/pods.json" in read_archive(bundle.path)


def test_the_fake_answers_log_requests_as_the_api_does(servers):
    import urllib.error
    import urllib.request

    from k8s_fake import TOKEN

    api, _ = servers.live_section(cluster_objects(), logs=cluster_logs())

    def get(path):
        req = urllib.request.Request(api.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())["message"]

    base = "/api/v1/namespaces/langsmith/pods"
    assert get(f"{base}/langsmith-queue-5c8-fghij/log?previous=true") == (
        400,
        'previous terminated container "queue" in pod "langsmith-queue-5c8-fghij" not found',
    )
    assert get(f"{base}/nope/log")[0] == 404
    assert get(f"{base}/langsmith-queue-5c8-fghij/log?container=x")[0] == 400
    status, text = get(
        f"{base}/langsmith-backend-7f9-abcde/log?container=backend&tailLines=1&timestamps=true"
    )
    assert status == 200 and text.endswith(" backend started\n") and text[:4].isdigit()


def test_every_request_of_a_bundle_is_granted_by_the_read_only_roles_and_none_reads_secrets(
    servers, tmp_path
):
    import yaml

    root = Path(__file__).resolve().parent.parent
    api, k8s = servers.live_section(cluster_objects(), logs=cluster_logs())
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts=FAST)
    bundle = build_bundle(config, "prod", _opts(), tmp_path / "b.tar.gz")
    assert bundle.manifest["complete"], bundle.manifest["missing"]
    docs = [
        d
        for name in ("rbac.yaml", "rbac-bundle.yaml")
        for d in yaml.safe_load_all((root / "deploy" / name).read_text())
    ]
    roles = {
        (d["kind"], d["metadata"]["name"]): d["rules"] for d in docs if d["kind"] in ("ClusterRole", "Role")
    }
    bound = {  # namespace (None: cluster-wide) -> rules
        (d["metadata"].get("namespace") if d["kind"] == "RoleBinding" else None, i): roles[
            (d["roleRef"]["kind"], d["roleRef"]["name"])
        ]
        for i, d in enumerate(docs)
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
    }

    def allowed(r: Any) -> bool:
        rules = [x for (ns, _), rs in bound.items() if ns in (None, r.namespace) for x in rs]
        return any(
            r.group in x["apiGroups"] and r.resource in x["resources"] and r.verb in x["verbs"] for x in rules
        )

    assert api.requests and all(allowed(r) for r in api.requests), [r for r in api.requests if not allowed(r)]
    assert {r.resource for r in api.requests} >= {"events", "pods/log", "pods", "configmaps"}
    assert "secrets" not in {r.resource for r in api.requests}
