"""Kubernetes probes against clusters modelled on the LangSmith chart, live API and snapshot alike."""

import contextlib
from datetime import timedelta

import pytest
import yaml
from k8s_fake import (
    FULLNAME,
    chart_defaults,
    hpa,
    node,
    production,
    queue_trigger,
    scaledobject,
    storageclass,
)

from checks.clients import Clients
from checks.cluster import READ_KINDS
from checks.config import TargetConfig
from checks.model import Status
from checks.probes import blob, k8s, network
from checks.probes.k8s.autoscaling import (
    hpa_configured,
    hpa_metrics,
    hpa_scaled,
    keda_hpa_interaction,
    read_write_scaling,
    resources_set,
)
from checks.probes.k8s.monitoring import alerts, monitoring
from checks.probes.k8s.sizing import (
    async_insert_wait,
    clickhouse_iops,
    clickhouse_node_size,
    clickhouse_replicas,
    clickhouse_ssd,
)
from checks.probes.k8s.storage import default_storage_class, ebs_csi_driver, volume_expansion
from checks.probes.release import hook_jobs
from checks.registry import load_catalog
from checks.runner import run_checks
from conftest import ROOT

MINE = {**k8s.PROBES, **blob.PROBES, **network.PROBES}
CATALOG = load_catalog()  # shipped thresholds: chart defaults' 25M bodies fail the expected 100 MB
P, W, F, M, NA = Status.PASS, Status.WARN, Status.FAIL, Status.MANUAL, Status.NA
# item -> (chart defaults, production-grade)
EXPECTED = {
    "clickhouse.read_write_scaling": (F, P),
    "clickhouse.ssd_storage": (P, P),  # gp2 is an SSD; its IOPS are what fall short
    "clickhouse.iops": (F, P),
    "clickhouse.disk_expansion": (F, P),
    "eks.ebs_csi_driver": (F, P),
    "eks.default_storage_class": (F, P),
    "eks.clickhouse_pvcs_bound": (F, P),
    "eks.volume_expansion": (F, P),
    "blob.enabled": (F, P),
    "autoscaling.hpa_configured": (F, P),
    "autoscaling.resources_set": (P, P),  # the chart sets requests and limits everywhere
    "autoscaling.hpa_metrics": (F, P),
    "autoscaling.hpa_tested": (F, P),
    "keda.triggers_documented": (NA, NA),
    "keda.hpa_interaction": (NA, NA),
    "keda.rollback_plan": (NA, NA),
    "keda.optional_understood": (NA, NA),
    "network.max_body_size": (F, P),
    "network.proxy_timeouts": (W, P),  # the chart's LoadBalancer Service is a Classic ELB: 60 s idle
    "ops.monitoring": (M, P),
    "ops.alerts": (M, P),
    "levers.async_insert_wait": (M, P),
}


def _clients(servers, objects, source="api", **sections):
    section = servers.kubernetes_section(objects, source)
    return Clients("t", TargetConfig.model_validate({"kubernetes": section, **sections}), timeout_s=5)


def _run(clients, ids):
    report = run_checks(CATALOG, clients, items=[CATALOG.get(i) for i in ids])
    return {r.item.id: r for r in report.results}


@pytest.mark.parametrize("source", ["api", "snapshot"])
@pytest.mark.parametrize(("profile", "column"), [(chart_defaults, 0), (production, 1)])
def test_chart_defaults_fail_and_production_grade_passes_from_api_and_snapshot(
    servers, source, profile, column
):
    results = _run(_clients(servers, profile(), source), EXPECTED)
    got = {i: r.status for i, r in results.items()}
    assert got == {i: statuses[column] for i, statuses in EXPECTED.items()}
    for result in results.values():
        assert result.summary.endswith(".") and "Could not tell" not in result.summary


def test_chart_defaults_name_what_fails(servers):
    results = _run(_clients(servers, chart_defaults()), EXPECTED)
    assert "FF_BLOB_STORAGE_ENABLED" in results["blob.enabled"].summary
    assert "7 of 7 LangSmith Deployments have no HPA" in results["autoscaling.hpa_configured"].summary
    assert "25 MiB" in results["network.max_body_size"].summary
    assert "100 MB" in results["network.max_body_size"].summary
    assert "1 replica" in results["clickhouse.read_write_scaling"].summary
    assert "150 IOPS" in results["clickhouse.iops"].summary


@pytest.mark.parametrize("source", ["api", "snapshot"])
def test_clickhouse_statefulset_replicas_and_size_fail_on_defaults_and_pass_in_production(servers, source):
    defaults, prod = _clients(servers, chart_defaults(), source), _clients(servers, production(), source)
    size = {"min_cpus": 8, "min_memory_gib": 32}
    replicas = clickhouse_replicas(defaults, {"min": 3})
    assert replicas.status is F and "runs 1 ClickHouse replica" in replicas.summary
    assert clickhouse_replicas(prod, {"min": 3}).status is P
    # Chart defaults request 3500m / 12Gi and only limit at 8 / 32Gi: not guaranteed.
    assert clickhouse_node_size(defaults, size).status is W
    assert clickhouse_node_size(prod, size).status is P


def test_every_kubernetes_request_of_a_full_run_is_allowed_by_deploy_rbac_and_every_rule_is_used(
    servers, s3_endpoint
):
    blob_cfg = {
        "bucket": "lsready-rbac",
        "endpoint_url": s3_endpoint,
        "access_key_id": "k",
        "secret_access_key": "s",
    }
    for profile in (chart_defaults, production):
        clients = _clients(servers, profile(), blob=blob_cfg)
        for name, fn in MINE.items():
            params = next((i.thresholds for i in CATALOG.items if i.probe == name), {})
            with contextlib.suppress(Exception):  # verdicts are not the point here, the requests are
                fn(clients, params)
        with contextlib.suppress(Exception):  # the upgrade preflight also reads the chart's hook Jobs
            hook_jobs(clients.cluster)
    requests = [r for api in servers.started for r in api.requests]
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    roles = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "ClusterRole"}
    cluster_wide = [r for d in docs if d["kind"] == "ClusterRoleBinding" for r in roles[d["roleRef"]["name"]]]
    in_namespace = {
        d["metadata"]["namespace"]: roles[d["roleRef"]["name"]] for d in docs if d["kind"] == "RoleBinding"
    }

    def allowed(rules, r):
        return any(
            r.group in x["apiGroups"] and r.resource in x["resources"] and r.verb in x["verbs"] for x in rules
        )

    for r in requests:
        rules = cluster_wide + (in_namespace.get(r.namespace, []) if r.namespace else [])
        assert allowed(rules, r), (
            f"{r.verb} {r.group}/{r.resource} in {r.namespace or 'the cluster'} is not granted"
        )
    granted = {
        (g, res) for rules in roles.values() for x in rules for g in x["apiGroups"] for res in x["resources"]
    }
    assert granted == {(r.group, r.resource) for r in requests} == {(k.group, k.plural) for k in READ_KINDS}
    assert {r.verb for r in requests} == {"list"}


def _with(objects, **changes):
    objects.update(changes)
    return objects


def test_ebs_items_do_not_apply_on_a_non_aws_cluster(servers):
    gke = node("gke-pool-1", "gce://proj/us-central1-a/gke-pool-1", {"cloud.google.com/gke-nodepool": "pool"})
    clients = _clients(servers, _with(production(), nodes=[gke]))
    results = _run(clients, ["eks.ebs_csi_driver", "eks.default_storage_class", "eks.clickhouse_pvcs_bound"])
    assert {r.status for r in results.values()} == {NA}
    assert "gce" in results["eks.ebs_csi_driver"].summary


def test_eks_is_recognised_from_node_labels_alone(servers):
    labelled = node("n1", "", {"eks.amazonaws.com/compute-type": "auto"})
    assert ebs_csi_driver(_clients(servers, _with(production(), nodes=[labelled])), {}).status is P


def test_external_clickhouse_leaves_storage_items_to_a_person(servers):
    clients = _clients(servers, _with(production(), statefulsets=[]))
    results = _run(clients, ["clickhouse.ssd_storage", "clickhouse.iops", "eks.clickhouse_pvcs_bound"])
    assert (
        results["clickhouse.ssd_storage"].status is M
        and "outside the cluster" in results["clickhouse.ssd_storage"].summary
    )
    assert results["clickhouse.iops"].status is M
    assert results["eks.clickhouse_pvcs_bound"].status is NA


@pytest.mark.parametrize(
    ("params", "ssd", "iops"),
    [
        ({"type": "gp3"}, P, F),  # gp3 defaults: 3000 IOPS / 125 MiB/s
        ({"type": "io2", "iopsPerGB": "20"}, P, P),  # 500 GiB x 20 = 10000 IOPS, 2500 MiB/s
        ({"type": "st1"}, F, F),
        ({"type": "sc1"}, F, F),
    ],
)
def test_clickhouse_volume_type_decides_ssd_and_iops(servers, params, ssd, iops):
    objects = production()
    objects["storageclasses"] = [
        storageclass("gp3", "ebs.csi.aws.com", default=True, expansion=True, **params)
    ]
    clients = _clients(servers, objects, "snapshot")
    thresholds = CATALOG.get("clickhouse.iops").thresholds
    assert clickhouse_ssd(clients, {}).status is ssd
    result = clickhouse_iops(clients, thresholds)
    assert result.status is iops
    if params == {"type": "gp3"}:
        assert "3000 IOPS and 125 MiB/s (gp3 defaults)" in result.summary


def test_unknown_provisioner_asks_for_attestation_rather_than_guessing(servers):
    objects = production()
    objects["storageclasses"] = [storageclass("gp3", "rancher.io/local-path", default=True)]
    clients = _clients(servers, objects, "snapshot")
    assert clickhouse_ssd(clients, {}).status is W
    assert clickhouse_iops(clients, CATALOG.get("clickhouse.iops").thresholds).status is W


def test_pvc_stuck_resizing_warns(servers):
    objects = production()
    objects["persistentvolumeclaims"][0]["status"]["conditions"] = [
        {"type": "FileSystemResizePending", "status": "True"}
    ]
    result = volume_expansion(_clients(servers, objects, "snapshot"), {})
    assert result.status is W and "data-langsmith-clickhouse-0 (FileSystemResizePending)" in result.summary


def test_two_default_storage_classes_warn(servers):
    objects = production()
    objects["storageclasses"].append(storageclass("gp3-b", "ebs.csi.aws.com", default=True))
    assert default_storage_class(_clients(servers, objects, "snapshot"), {}).status is W


def test_missing_autoscaler_only_on_the_ui_services_warns(servers):
    objects = production()
    objects["horizontalpodautoscalers"] = [
        h for h in objects["horizontalpodautoscalers"] if h["metadata"]["name"] != f"{FULLNAME}-frontend"
    ]
    result = hpa_configured(_clients(servers, objects, "snapshot"), {})
    assert result.status is W and "langsmith-frontend" in result.summary


def test_write_path_without_autoscaling_fails_read_write_scaling(servers):
    objects = production()
    write = {f"{FULLNAME}-{c}" for c in ("platform-backend", "queue", "ingest-queue")}
    objects["horizontalpodautoscalers"] = [
        h for h in objects["horizontalpodautoscalers"] if h["metadata"]["name"] not in write
    ]
    result = read_write_scaling(_clients(servers, objects, "snapshot"), {})
    assert result.status is F and "write path" in result.summary


def test_hpa_without_metrics_fails_naming_the_reason(servers):
    objects = production()
    objects["horizontalpodautoscalers"][0] = hpa(f"{FULLNAME}-backend", 3, 10, healthy=False)
    result = hpa_metrics(_clients(servers, objects, "snapshot"), {})
    assert result.status is F
    assert "langsmith-backend ScalingActive=False (FailedGetResourceMetric)" in result.summary
    assert "no current metric values" in result.summary


def test_hpas_that_never_scaled_warn_to_load_test(servers):
    objects = production()
    objects["horizontalpodautoscalers"][1] = hpa(f"{FULLNAME}-platform-backend", 3, 20, scaled_ago=None)
    objects["horizontalpodautoscalers"][2] = hpa(f"{FULLNAME}-queue", 3, 20, scaled_ago=timedelta(days=90))
    result = hpa_scaled(_clients(servers, objects, "snapshot"), {"scaled_within_days": 30})
    assert result.status is W and "never seen scaling, load-test it" in result.summary
    assert "langsmith-platform-backend" in result.summary and "langsmith-queue" in result.summary


def test_container_without_requests_fails_resources(servers):
    objects = production()
    del objects["deployments"][0]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    result = resources_set(_clients(servers, objects, "snapshot"), {})
    assert result.status is F and "langsmith-backend/backend (cpu/memory)" in result.summary


def _keda(objects, *, extra_hpa: bool, own_hpa_name: str | None):
    queue = f"{FULLNAME}-queue"
    objects["scaledobjects"] = [scaledobject(queue, [queue_trigger()], hpa_name=own_hpa_name)]
    hpas = [h for h in objects["horizontalpodautoscalers"] if h["metadata"]["name"] != queue]
    if own_hpa_name:  # the HPA KEDA made for the ScaledObject, under the name it was told to use
        hpas.append(hpa(queue, 1, 10, name=own_hpa_name))
    if extra_hpa:
        hpas.append(hpa(queue, 3, 20, name="queue-by-hand"))
    objects["horizontalpodautoscalers"] = hpas
    return objects


def test_keda_and_a_separate_hpa_on_the_same_deployment_fail(servers):
    clients = _clients(
        servers, _keda(production(), extra_hpa=True, own_hpa_name=f"{FULLNAME}-queue"), "snapshot"
    )
    result = keda_hpa_interaction(clients, {})
    assert result.status is F and "ScaledObject langsmith-queue and HPA queue-by-hand" in result.summary


@pytest.mark.parametrize("own_hpa_name", [f"{FULLNAME}-queue", None])
def test_keda_alone_passes_with_its_triggers_as_evidence(servers, own_hpa_name):
    objects = _keda(production(), extra_hpa=False, own_hpa_name=own_hpa_name)
    clients = _clients(servers, objects, "snapshot")
    result = keda_hpa_interaction(clients, {})
    assert (
        result.status is P
        and "metrics-api http://langsmith-backend:1984/metrics/queue/default" in result.summary
    )
    assert hpa_configured(clients, {}).status is P  # a ScaledObject counts as the queue's autoscaler


def test_keda_manual_items_list_triggers_until_attested(servers):
    clients = _clients(servers, _keda(production(), extra_hpa=False, own_hpa_name=None), "snapshot")
    results = _run(clients, ["keda.triggers_documented", "keda.rollback_plan"])
    assert {r.status for r in results.values()} == {M}
    assert "(queued) target 10" in results["keda.triggers_documented"].summary


def test_monitoring_of_only_some_datastores_warns_naming_the_rest(servers):
    objects = production()
    objects["deployments"] = [d for d in objects["deployments"] if "exporter" not in d["metadata"]["name"]]
    result = monitoring(_clients(servers, objects, "snapshot"), {})
    assert result.status is W and "not Redis, PostgreSQL" in result.summary


def test_alert_rules_that_miss_saturation_warn(servers):
    objects = production()
    objects["prometheusrules"][0]["spec"]["groups"][0]["rules"].pop(1)
    result = alerts(_clients(servers, objects, "snapshot"), {"ingestion_delay_p95_s": 60})
    assert result.status is W and "query saturation" in result.summary


def test_async_insert_wait_found_through_an_envfrom_configmap(servers):
    result = async_insert_wait(_clients(servers, production(), "snapshot"), {})
    assert result.status is P and result.observed["set_on"]["langsmith-queue"] == "0"
