"""The cluster source: live API through the official client, or a snapshot directory, same dicts."""

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from k8s_fake import NS, chart_defaults, deployment, production, write_kubeconfig, write_snapshot
from waiting import wait_until

from checks import cluster_api as cluster_mod
from checks.backends import BackendUnavailable
from checks.clients import Clients
from checks.cluster import READ_KINDS, ClusterError, snapshot_commands
from checks.cluster_api import open_cluster
from checks.config import KubernetesConfig, TargetConfig
from checks.model import Status
from checks.registry import load_catalog
from checks.runner import run_checks

ROOT = Path(__file__).resolve().parent.parent


def _live(servers, objects, **cfg):
    api = servers.start(objects, **cfg.pop("server", {}))
    path = api.kubeconfig(servers.tmp_path / f"kc-{len(servers.started)}")
    return api, open_cluster(KubernetesConfig(kubeconfig=str(path), namespace=NS, **cfg), timeout_s=2)


def test_live_objects_are_kubectl_shaped_dicts_with_camelcase_keys(servers):
    _, cluster = _live(servers, production())
    sts = cluster.get("statefulsets", "langsmith-clickhouse")
    assert sts["kind"] == "StatefulSet" and sts["apiVersion"] == "apps/v1"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    hpa = cluster.objects("horizontalpodautoscalers")[0]
    assert "lastScaleTime" in hpa["status"] and "scaleTargetRef" in hpa["spec"]
    assert cluster.objects("servicemonitors")[0]["kind"] == "ServiceMonitor"


def test_release_is_discovered_from_chart_labels_and_fullname_follows_the_chart_rule(servers):
    _, cluster = _live(servers, chart_defaults())
    assert (cluster.release, cluster.fullname, cluster.name("backend")) == (
        "langsmith",
        "langsmith",
        "langsmith-backend",
    )
    _, named = _live(servers, chart_defaults(), release="prod")
    assert named.fullname == "prod-langsmith"
    _, containing = _live(servers, chart_defaults(), release="langsmith-eu")
    assert containing.fullname == "langsmith-eu"


def test_two_releases_in_one_namespace_ask_for_kubernetes_release(servers):
    objects = chart_defaults()
    other = deployment("backend")
    other["metadata"]["name"] = "other-langsmith-backend"
    other["metadata"]["labels"] = {**other["metadata"]["labels"], "app.kubernetes.io/instance": "other"}
    objects["deployments"].append(other)
    _, cluster = _live(servers, objects)
    with pytest.raises(
        ClusterError, match=r"several LangSmith releases .*langsmith, other.*kubernetes.release"
    ):
        _ = cluster.release


def test_namespaced_kinds_are_filtered_to_the_namespace_and_cluster_kinds_are_not(servers):
    objects = production()
    stray = deployment("backend")
    stray["metadata"]["namespace"] = "elsewhere"
    objects["deployments"].append(stray)
    api, cluster = _live(servers, objects)
    assert all(d["metadata"]["namespace"] == NS for d in cluster.objects("deployments"))
    assert len(cluster.objects("nodes")) == 3 and len(cluster.objects("storageclasses")) == 2
    # Monitoring objects live with Prometheus: listed in every namespace.
    assert {m["metadata"]["namespace"] for m in cluster.objects("servicemonitors")} == {"monitoring"}
    paths = {r.path for r in api.requests}
    assert f"/apis/apps/v1/namespaces/{NS}/deployments" in paths and "/api/v1/nodes" in paths


def test_each_kind_is_listed_once_per_run_even_from_concurrent_probes(servers):
    api, cluster = _live(servers, production())
    threads = [threading.Thread(target=cluster.objects, args=("deployments",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cluster.objects("deployments")
    assert [r.resource for r in api.requests] == ["deployments"]


def test_long_lists_are_read_page_by_page(servers, monkeypatch):
    monkeypatch.setattr(cluster_mod, "PAGE_SIZE", 3)
    api, cluster = _live(servers, production())
    assert len(cluster.objects("deployments")) == 9
    assert len([r for r in api.requests if r.resource == "deployments"]) == 3


def test_a_crd_that_is_not_installed_is_an_empty_list_with_a_note(servers):
    _, cluster = _live(servers, chart_defaults())
    assert cluster.objects("scaledobjects") == []
    assert "scaledobjects.keda.sh is not installed" in cluster.notes["scaledobjects"]


def test_forbidden_kind_raises_an_error_naming_kind_and_verb(servers):
    _, cluster = _live(servers, production(), server={"forbidden": frozenset({"horizontalpodautoscalers"})})
    with pytest.raises(
        ClusterError, match=r"denied verb 'list' on horizontalpodautoscalers.autoscaling.*rbac"
    ):
        cluster.objects("horizontalpodautoscalers")


def test_an_api_that_never_answers_fails_within_the_timeout(tmp_path, blackhole):
    kubeconfig = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{blackhole.port}")
    cluster = open_cluster(KubernetesConfig(kubeconfig=str(kubeconfig)), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"did not answer list deployments.apps .* within 0.5 s"):
        cluster.objects("deployments")
    assert time.monotonic() - started < 3


def test_snapshot_gives_the_same_objects_as_the_live_api(servers, tmp_path):
    _, live = _live(servers, production())
    snap = open_cluster(KubernetesConfig(snapshot_dir=str(write_snapshot(production(), tmp_path / "s"))), 2)
    for kind in READ_KINDS:
        assert live.objects(kind.plural) == snap.objects(kind.plural), kind.plural
    assert snap.release == "langsmith"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "is missing; make it with `lsready snapshot-commands`"),
        ("{not json", "cannot be read (not valid JSON)"),
        ('{"kind": "DeploymentList"}', "is not a kubectl List"),
        ("", "cannot be read (not valid JSON)"),  # what a failed `kubectl get ... > file` leaves
    ],
)
def test_a_missing_or_malformed_snapshot_file_raises_naming_the_file(tmp_path, content, reason):
    directory = write_snapshot(production(), tmp_path / "s")
    target = directory / "deployments.json"
    target.unlink()
    if content is not None:
        target.write_text(content)
    cluster = open_cluster(KubernetesConfig(snapshot_dir=str(directory)), 2)
    with pytest.raises(ClusterError) as err:
        cluster.objects("deployments")
    assert str(target) in str(err.value) and reason in str(err.value)


def test_partial_snapshot_makes_only_the_probes_that_need_the_file_unknown(tmp_path):
    directory = write_snapshot(production(), tmp_path / "s")
    (directory / "horizontalpodautoscalers.json").unlink()
    (directory / "storageclasses.json").write_text("[1, 2")
    clients = Clients("t", TargetConfig.model_validate({"kubernetes": {"snapshot_dir": str(directory)}}), 5)
    catalog = load_catalog()
    wanted = ["autoscaling.hpa_configured", "clickhouse.iops", "eks.ebs_csi_driver"]
    report = run_checks(catalog, clients, items=[catalog.get(i) for i in wanted])
    by_id = {r.item.id: r for r in report.results}
    hpa, iops = by_id["autoscaling.hpa_configured"], by_id["clickhouse.iops"]
    assert hpa.status is Status.UNKNOWN and "horizontalpodautoscalers.json is missing" in hpa.summary
    assert iops.status is Status.UNKNOWN and "storageclasses.json cannot be read" in iops.summary
    assert by_id["eks.ebs_csi_driver"].status is Status.PASS


def test_snapshot_dir_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(ClusterError, match=r"snapshot directory .*nope does not exist"):
        open_cluster(KubernetesConfig(snapshot_dir=str(tmp_path / "nope")), 2)


FAKE_KUBECTL = """#!{python}
import json, os, sys
args = sys.argv[1:]
data = os.environ["FAKE_KUBE_DATA"]
installed = json.load(open(os.path.join(data, "_installed.json")))
if args[0] == "api-resources":
    group = [a.split("=", 1)[1] for a in args if a.startswith("--api-group=")][0]
    print("\\n".join(r for r in installed if r.endswith("." + group)))
elif args[0] == "get":
    plural = args[1].split(".")[0]
    if args[1] in {forbidden!r}:
        sys.exit("Error from server (Forbidden)")
    items = json.load(open(os.path.join(data, plural + ".json")))
    if "-n" in args:
        ns = args[args.index("-n") + 1]
        items = [i for i in items if i["metadata"].get("namespace") == ns]
    print(json.dumps({{"apiVersion": "v1", "kind": "List", "items": items}}))
"""


def _fake_kubectl(tmp_path, objects, forbidden=()):
    """A `kubectl` on PATH that serves `objects`; CRDs absent from `objects` are not installed."""
    data = tmp_path / "kube-data"
    data.mkdir()
    for plural, items in objects.items():
        (data / f"{plural}.json").write_text(json.dumps(items))
    installed = [k.resource for k in READ_KINDS if k.crd and k.plural in objects]
    (data / "_installed.json").write_text(json.dumps(installed))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "kubectl"
    exe.write_text(FAKE_KUBECTL.format(python=sys.executable, forbidden=set(forbidden)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_KUBE_DATA": str(data)}


def test_snapshot_commands_write_a_snapshot_lsready_reads(tmp_path):
    lines = snapshot_commands(NS, str(tmp_path / "bundle"))
    assert len(lines) == 1 + len(READ_KINDS)
    assert "kubectl get deployments.apps -n langsmith -o json > " in "\n".join(lines)
    env = _fake_kubectl(tmp_path, chart_defaults())
    subprocess.run(["bash", "-euc", "\n".join(lines)], env=env, check=True, cwd=tmp_path)
    cluster = open_cluster(KubernetesConfig(snapshot_dir=str(tmp_path / "bundle"), namespace=NS), 2)
    assert cluster.release == "langsmith" and len(cluster.objects("deployments")) == 7
    assert cluster.objects("scaledobjects") == [] and "not installed" in cluster.notes["scaledobjects"]


def test_snapshot_commands_leave_a_forbidden_crd_unreadable_rather_than_empty(tmp_path):
    lines = snapshot_commands(NS, str(tmp_path / "bundle"))
    env = _fake_kubectl(tmp_path, production(), forbidden={"prometheusrules.monitoring.coreos.com"})
    subprocess.run(["bash", "-uc", "\n".join(lines)], env=env, cwd=tmp_path, capture_output=True)
    cluster = open_cluster(KubernetesConfig(snapshot_dir=str(tmp_path / "bundle"), namespace=NS), 2)
    assert len(cluster.objects("servicemonitors")) == 2
    with pytest.raises(ClusterError, match=r"prometheusrules\.json cannot be read"):
        cluster.objects("prometheusrules")


def test_rbac_manifest_grants_get_and_list_on_exactly_the_read_kinds():
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    granted = set()
    for doc in docs:
        for rule in doc.get("rules", []) if doc["kind"] == "ClusterRole" else []:
            assert sorted(rule["verbs"]) == ["get", "list"]
            granted |= {(group, res) for group in rule["apiGroups"] for res in rule["resources"]}
    assert granted == {(k.group, k.plural) for k in READ_KINDS}
    assert not any(res == "secrets" for _, res in granted)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_an_exec_plugin_that_never_returns_makes_kubernetes_unknown_in_time_and_is_killed(tmp_path):
    pidfile = tmp_path / "plugin.pid"
    # Like `aws eks get-token` waiting on an SSO login nobody completes.
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "/bin/sh",
        "args": ["-c", f"echo $$ > {pidfile}; exec sleep 600"],
    }
    kubeconfig = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", user={"exec": plugin})
    catalog = load_catalog()
    items = [i for i in catalog.items if i.probe and i.probe.startswith("kubernetes.")]
    clients = Clients("t", TargetConfig.model_validate({"kubernetes": {"kubeconfig": str(kubeconfig)}}), 0.5)
    pid = None
    try:
        started = time.monotonic()
        report = run_checks(catalog, clients, items=items, deadline_s=10)
        clients.close()
        assert time.monotonic() - started < 2, "a hung exec plugin held the run"
        for r in report.results:
            assert r.status in (Status.UNKNOWN, Status.MANUAL), (r.item.id, r.summary)
            assert "still waiting for the Kubernetes credentials to load" in r.summary, r.summary
        # The plugin is killed at twice the probe timeout, and the failure is remembered with its name.
        with pytest.raises(
            BackendUnavailable, match=r"credentials did not load within 1 s \(exec plugin sh hung\?\)"
        ):
            _ = clients.cluster
        pid = int(pidfile.read_text())
        wait_until(
            lambda: _gone(pid) and not any(t.name == "kube-credentials" for t in threading.enumerate()),
            timeout=3,
            what="the exec plugin and the thread loading it ending",
        )
    finally:
        if pid is not None and not _gone(pid):
            os.kill(pid, 9)
