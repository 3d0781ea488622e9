"""Kubernetes probes: EKS storage, ClickHouse volumes, autoscaling, KEDA, monitoring, LangSmith env.

Every probe reads `clients.cluster` (live API or snapshot, the same dicts either way). Object names
follow the chart: `<fullname>-<component>`, e.g. `langsmith-backend`, PVC `data-langsmith-clickhouse-0`.
The helpers at the top are shared with the blob and network probes.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from checks.clients import Clients
from checks.cluster import INSTANCE_LABEL, Cluster, ClusterError
from checks.model import Evidence, Status
from checks.probes.common import quantity

# LangSmith's Deployments (facts §1); host-backend, listener and operator only exist with deployments on.
COMPONENTS = ("backend", "platform-backend", "queue", "ingest-queue", "frontend", "playground", "ace-backend")
READ_PATH = ("backend",)
WRITE_PATH = ("platform-backend", "ingest-queue", "queue")
CORE = READ_PATH + WRITE_PATH  # missing autoscaling here fails; on the others it warns

DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
EBS_CSI = "ebs.csi.aws.com"
EBS_IN_TREE = "kubernetes.io/aws-ebs"
RESIZE_CONDITIONS = ("Resizing", "FileSystemResizePending")
GIB = 1024**3


# -- shared helpers --------------------------------------------------------------------------------


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", "?"))


def release_objects(cluster: Cluster, plural: str) -> list[dict[str, Any]]:
    """Objects of the release: its instance label, or the chart's name prefix."""
    release, prefix = cluster.release, cluster.fullname + "-"
    return [
        o
        for o in cluster.objects(plural)
        if (meta(o).get("labels") or {}).get(INSTANCE_LABEL) == release or name_of(o).startswith(prefix)
    ]


def deployments(cluster: Cluster, components: Iterable[str] = COMPONENTS) -> dict[str, dict[str, Any]]:
    """The release's Deployments for those components that are deployed, by object name."""
    found = {}
    for component in components:
        obj = cluster.get("deployments", cluster.name(component))
        if obj is not None:
            found[name_of(obj)] = obj
    return found


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return ((workload.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []


def container_env(cluster: Cluster, container: Mapping[str, Any]) -> dict[str, str | None]:
    """A container's environment as the kubelet builds it; None marks a value kept in a Secret."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            cm = cluster.get("configmaps", ref.get("name", ""))
            for key, value in ((cm or {}).get("data") or {}).items():
                env[source.get("prefix", "") + key] = value
    for var in container.get("env") or []:
        value_from = var.get("valueFrom")
        if value_from is None:
            env[var["name"]] = str(var.get("value", ""))
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            data = (cluster.get("configmaps", ref.get("name", "")) or {}).get("data") or {}
            env[var["name"]] = data.get(ref.get("key", ""))
        else:
            env[var["name"]] = None  # a Secret or the downward API: set, and lsready does not read Secrets
    return env


def workload_env(cluster: Cluster, workload: Mapping[str, Any]) -> dict[str, str | None]:
    """Environment of a workload's containers; the first (main) container wins on a clash."""
    merged: dict[str, str | None] = {}
    for container in reversed(containers(workload)):
        merged.update(container_env(cluster, container))
    return merged


def env_on(cluster: Cluster, workloads: Mapping[str, Mapping[str, Any]], var: str) -> dict[str, str | None]:
    """The variable's value on each workload that sets it."""
    found = {}
    for name, obj in workloads.items():
        env = workload_env(cluster, obj)
        if var in env:
            found[name] = env[var]
    return found


def is_eks(cluster: Cluster) -> tuple[bool, str]:
    """Whether the nodes run on AWS, and what said so."""
    nodes = cluster.objects("nodes")
    if not nodes:
        raise ClusterError("no Node objects are visible, so lsready cannot tell whether this is EKS")
    for node in nodes:
        provider = str((node.get("spec") or {}).get("providerID", ""))
        labels = meta(node).get("labels") or {}
        if provider.startswith("aws://"):
            return True, f"node {name_of(node)} has providerID {provider.split('/')[0]}//..."
        eks = sorted(k for k in labels if k.startswith("eks.amazonaws.com/"))
        if eks:
            return True, f"node {name_of(node)} carries label {eks[0]}"
    provider = str((nodes[0].get("spec") or {}).get("providerID", "")) or "none"
    return False, f"node providerID is {provider.split('://')[0]}"


def _not_eks(why: str) -> Evidence:
    return Evidence(
        Status.NA, f"The nodes are not on AWS ({why}), so the EBS CSI items do not apply.", {"eks": False}
    )


# -- ClickHouse storage ---------------------------------------------------------------------------


@dataclass
class ClickHouseStorage:
    """The bundled ClickHouse StatefulSet, its PVCs and the StorageClass they use."""

    sts: dict[str, Any]
    pvc_names: list[str]
    pvcs: dict[str, dict[str, Any]]
    class_name: str | None
    storage_class: dict[str, Any] | None
    size_gib: float | None

    @property
    def name(self) -> str:
        return name_of(self.sts)


def clickhouse_statefulset(cluster: Cluster) -> dict[str, Any] | None:
    return cluster.get("statefulsets", cluster.name("clickhouse"))


def clickhouse_facts(cluster: Cluster) -> dict[str, Any] | None:
    """Replicas and per-pod CPU/memory of the bundled ClickHouse; None when ClickHouse is external."""
    sts = clickhouse_statefulset(cluster)
    if sts is None:
        return None
    main = next(iter(containers(sts)), {})
    res = main.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}

    def cores(v: Any) -> float | None:
        q = quantity(v)
        return None if q is None else round(q, 2)

    def gib(v: Any) -> float | None:
        q = quantity(v)
        return None if q is None else round(q / GIB, 1)

    return {
        "statefulset": name_of(sts),
        "replicas": int((sts.get("spec") or {}).get("replicas", 1)),
        "cpu_request": cores(req.get("cpu")),
        "cpu_limit": cores(lim.get("cpu")),
        "memory_request_gib": gib(req.get("memory")),
        "memory_limit_gib": gib(lim.get("memory")),
    }


def clickhouse_storage(cluster: Cluster) -> ClickHouseStorage | None:
    """None when this release runs no ClickHouse StatefulSet (external ClickHouse)."""
    sts = clickhouse_statefulset(cluster)
    if sts is None:
        return None
    spec = sts.get("spec") or {}
    templates = spec.get("volumeClaimTemplates") or []
    replicas = int(spec.get("replicas", 1))
    names = [f"{name_of(t)}-{name_of(sts)}-{i}" for t in templates for i in range(replicas)]
    existing = {name_of(p): p for p in cluster.objects("persistentvolumeclaims")}
    pvcs = {n: existing[n] for n in names if n in existing}
    first = next(iter(pvcs.values()), None) or (templates[0] if templates else {})
    first_spec = first.get("spec") or {}
    class_name = first_spec.get("storageClassName")
    if class_name is None and templates:
        defaults = default_classes(cluster)
        class_name = name_of(defaults[0]) if len(defaults) == 1 else None
    storage_class = cluster.get("storageclasses", class_name) if class_name else None
    if class_name and storage_class is None:
        raise ClusterError(f"StorageClass '{class_name}' of the ClickHouse volumes is not in the cluster")
    size = quantity(((first_spec.get("resources") or {}).get("requests") or {}).get("storage"))
    return ClickHouseStorage(sts, names, pvcs, class_name, storage_class, size / GIB if size else None)


def default_classes(cluster: Cluster) -> list[dict[str, Any]]:
    return [
        sc
        for sc in cluster.objects("storageclasses")
        if any((meta(sc).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
    ]


def _param(sc: Mapping[str, Any], *keys: str) -> str | None:
    params = {k.lower(): v for k, v in (sc.get("parameters") or {}).items()}
    return next((str(params[k.lower()]) for k in keys if k.lower() in params), None)


SSD_TYPES = {
    "gp2", "gp3", "io1", "io2", "pd-ssd", "pd-balanced", "pd-extreme", "hyperdisk-balanced",
    "hyperdisk-extreme", "premium_lrs", "premium_zrs", "premiumv2_lrs", "ultrassd_lrs",
    "standardssd_lrs", "standardssd_zrs",
}  # fmt: skip
HDD_TYPES = {"st1", "sc1", "standard", "pd-standard", "standard_lrs", "hyperdisk-throughput"}
# The volume type each provisioner uses when the class names none.
DEFAULT_TYPES = {
    EBS_CSI: "gp3",
    EBS_IN_TREE: "gp2",
    "pd.csi.storage.gke.io": "pd-standard",
    "kubernetes.io/gce-pd": "pd-standard",
    "disk.csi.azure.com": "standardssd_lrs",
    "kubernetes.io/azure-disk": "standard_lrs",
}


def volume_type(sc: Mapping[str, Any]) -> str | None:
    """The disk type a class provisions, lower-cased; None when lsready cannot tell."""
    named = _param(sc, "type", "skuName", "storageaccounttype")
    return (named or DEFAULT_TYPES.get(str(sc.get("provisioner")), "")).lower() or None


def volume_performance(sc: Mapping[str, Any], size_gib: float | None) -> tuple[float, float, str] | None:
    """(IOPS, MiB/s, how it was derived) for a volume of that size, or None when not derivable."""
    kind = volume_type(sc)
    iops_param = _param(sc, "iops", "DiskIOPSReadWrite")
    mibps_param = _param(sc, "throughput", "DiskMBpsReadWrite")
    size = size_gib or 0
    if kind == "gp3":
        iops, mibps = float(iops_param or 3000), float(mibps_param or 125)
        how = "gp3 defaults" if not (iops_param or mibps_param) else "gp3 parameters"
        return iops, mibps, how
    if kind in ("io1", "io2"):
        per_gb = _param(sc, "iopsPerGB")
        cap = 64000 if kind == "io2" else 50000
        iops = float(iops_param) if iops_param else min(float(per_gb or 0) * size, cap)
        # Provisioned-IOPS throughput follows IOPS at 256 KiB per I/O, up to the type's ceiling.
        return iops, min(iops / 4, 4000 if kind == "io2" else 1000), f"{kind} provisioned IOPS"
    if kind == "gp2":
        return min(max(3 * size, 100), 16000), 250, "gp2 baseline of 3 IOPS/GiB, at most 250 MiB/s"
    if kind in ("st1", "sc1"):
        return (500, 500, "st1 maximum") if kind == "st1" else (250, 250, "sc1 maximum")
    if iops_param and mibps_param:
        return float(iops_param), float(mibps_param), "class parameters"
    return None


# -- EBS CSI (EKS) --------------------------------------------------------------------------------


def ebs_csi_driver(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The EBS CSI driver has registered its CSIDriver object on an EKS cluster."""
    cluster = clients.cluster
    eks, why = is_eks(cluster)
    if not eks:
        return _not_eks(why)
    present = cluster.get("csidrivers", EBS_CSI) is not None
    observed = {"eks": True, "csidriver": EBS_CSI, "present": present}
    if present:
        return Evidence(
            Status.PASS, f"CSIDriver {EBS_CSI} is installed ({why}); required: present.", observed
        )
    return Evidence(
        Status.FAIL,
        f"CSIDriver {EBS_CSI} is missing on this EKS cluster ({why}); without it ClickHouse PVCs never bind.",
        observed,
    )


def default_storage_class(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Exactly one default StorageClass, provisioned by the EBS CSI driver."""
    cluster = clients.cluster
    eks, why = is_eks(cluster)
    if not eks:
        return _not_eks(why)
    defaults = default_classes(cluster)
    observed: dict[str, Any] = {"defaults": {name_of(sc): sc.get("provisioner") for sc in defaults}}
    if not defaults:
        total = len(cluster.objects("storageclasses"))
        return Evidence(
            Status.FAIL,
            f'None of the {total} StorageClasses is annotated {DEFAULT_CLASS_ANNOTATIONS[0]}="true"; '
            "PVCs without a class stay Pending.",
            observed,
        )
    if len(defaults) > 1:
        names = ", ".join(sorted(observed["defaults"]))
        return Evidence(
            Status.WARN,
            f"{len(defaults)} StorageClasses are marked default ({names}); keep exactly one.",
            observed,
        )
    sc = defaults[0]
    provisioner = sc.get("provisioner")
    if provisioner == EBS_CSI:
        return Evidence(
            Status.PASS,
            f"Default StorageClass {name_of(sc)} provisions EBS volumes with {EBS_CSI}.",
            observed,
        )
    if provisioner == EBS_IN_TREE and cluster.get("csidrivers", EBS_CSI) is not None:
        return Evidence(
            Status.WARN,
            f"Default StorageClass {name_of(sc)} uses the in-tree {EBS_IN_TREE}, served by {EBS_CSI} through "
            "CSI migration; switch it to provisioner ebs.csi.aws.com.",
            observed,
        )
    return Evidence(
        Status.FAIL,
        f"Default StorageClass {name_of(sc)} uses provisioner {provisioner}, not {EBS_CSI}; "
        "it cannot provision EBS volumes without the CSI driver.",
        observed,
    )


def clickhouse_pvcs_bound(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every ClickHouse PVC is Bound and every ClickHouse pod is Ready."""
    cluster = clients.cluster
    eks, why = is_eks(cluster)
    if not eks:
        return _not_eks(why)
    storage = clickhouse_storage(cluster)
    if storage is None:
        return external_clickhouse(cluster, Status.NA)
    if not storage.pvc_names:
        return Evidence(
            Status.FAIL,
            f"StatefulSet {storage.name} has no volumeClaimTemplates, so ClickHouse data lives on "
            "ephemeral pod storage; enable clickhouse.statefulSet.persistence.",
            {"statefulset": storage.name},
        )
    problems = []
    phases = {}
    for pvc_name in storage.pvc_names:
        phase = ((storage.pvcs.get(pvc_name) or {}).get("status") or {}).get("phase", "missing")
        phases[pvc_name] = phase
        if phase != "Bound":
            problems.append(f"PVC {pvc_name} is {phase}")
    ready = {}
    for i in range(int((storage.sts.get("spec") or {}).get("replicas", 1))):
        pod = cluster.get("pods", f"{storage.name}-{i}")
        ready[f"{storage.name}-{i}"] = _pod_ready(pod)
        if not ready[f"{storage.name}-{i}"]:
            problems.append(f"pod {storage.name}-{i} is {'not Ready' if pod else 'missing'}")
    observed = {"pvcs": phases, "pods_ready": ready}
    if problems:
        return Evidence(
            Status.FAIL,
            f"ClickHouse volumes or pods are not up: {'; '.join(problems)} (required: Bound, Ready).",
            observed,
        )
    return Evidence(
        Status.PASS,
        f"All {len(phases)} ClickHouse PVCs ({', '.join(phases)}) are Bound and {len(ready)} pods are Ready.",
        observed,
    )


def _pod_ready(pod: Mapping[str, Any] | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def volume_expansion(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """ClickHouse's StorageClass allows expansion and no PVC is stuck resizing."""
    cluster = clients.cluster
    eks, why = is_eks(cluster)
    if not eks:
        return _not_eks(why)
    storage = clickhouse_storage(cluster)
    if storage is None:
        return external_clickhouse(cluster, Status.NA)
    allowed = bool((storage.storage_class or {}).get("allowVolumeExpansion"))
    resizing = {
        n: c.get("type")
        for n, pvc in storage.pvcs.items()
        for c in ((pvc.get("status") or {}).get("conditions") or [])
        if c.get("type") in RESIZE_CONDITIONS and c.get("status") == "True"
    }
    observed = {"storage_class": storage.class_name, "allowVolumeExpansion": allowed, "resizing": resizing}
    if not allowed:
        return Evidence(
            Status.FAIL,
            f"StorageClass {storage.class_name} of the ClickHouse PVCs has allowVolumeExpansion unset or "
            "false; required: true.",
            observed,
        )
    if resizing:
        shown = ", ".join(f"{n} ({t})" for n, t in sorted(resizing.items()))
        return Evidence(
            Status.WARN,
            f"StorageClass {storage.class_name} allows expansion, but {shown} is still resizing; "
            "check `kubectl describe pvc` (EBS allows one change per volume every 6 hours).",
            observed,
        )
    return Evidence(
        Status.PASS,
        f"StorageClass {storage.class_name} allows volume expansion and no ClickHouse PVC is mid-resize.",
        observed,
    )


# -- ClickHouse storage and size ------------------------------------------------------------------


def external_clickhouse(cluster: Cluster, status: Status) -> Evidence:
    what = "attest its storage from the provider's console" if status is Status.MANUAL else "nothing to check"
    return Evidence(
        status,
        f"No StatefulSet {cluster.name('clickhouse')} in namespace {cluster.namespace}: ClickHouse runs "
        f"outside the cluster, so {what}.",
        {"clickhouse_in_cluster": False},
    )


def _storage_observed(cluster: Cluster, storage: ClickHouseStorage) -> dict[str, Any]:
    sc = storage.storage_class or {}
    return {
        "storage_class": storage.class_name,
        "provisioner": sc.get("provisioner"),
        "parameters": sc.get("parameters") or {},
        "size_gib": storage.size_gib,
        "clickhouse": clickhouse_facts(cluster),
    }


def clickhouse_ssd(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The ClickHouse volumes' StorageClass provisions SSDs."""
    cluster = clients.cluster
    storage = clickhouse_storage(cluster)
    if storage is None:
        return external_clickhouse(cluster, Status.MANUAL)
    observed = _storage_observed(cluster, storage)
    if storage.storage_class is None:
        return Evidence(
            Status.FAIL,
            f"The ClickHouse PVCs of {storage.name} have no StorageClass; required: an SSD class.",
            observed,
        )
    kind = volume_type(storage.storage_class)
    observed["volume_type"] = kind
    where = f"StorageClass {storage.class_name} ({storage.storage_class.get('provisioner')})"
    if kind in SSD_TYPES:
        return Evidence(Status.PASS, f"{where} provisions {kind} SSD volumes for ClickHouse.", observed)
    if kind in HDD_TYPES:
        return Evidence(
            Status.FAIL,
            f"{where} provisions {kind} HDD volumes for ClickHouse; required: SSD (gp3, io2).",
            observed,
        )
    return Evidence(
        Status.WARN,
        f"{where} does not say whether its volumes are SSDs (type {kind or 'unset'}); attest the media.",
        observed,
    )


def clickhouse_iops(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The ClickHouse volumes' provisioned IOPS and throughput meet the baseline."""
    cluster = clients.cluster
    storage = clickhouse_storage(cluster)
    if storage is None:
        return external_clickhouse(cluster, Status.MANUAL)
    min_iops, min_mibps = params["min_iops"], params["min_throughput_mibps"]
    threshold = {"min_iops": min_iops, "min_throughput_mibps": min_mibps}
    observed = _storage_observed(cluster, storage)
    perf = volume_performance(storage.storage_class or {}, storage.size_gib)
    if perf is None:
        return Evidence(
            Status.WARN,
            f"StorageClass {storage.class_name} does not state IOPS or throughput; attest about {min_iops} "
            f"IOPS and {min_mibps} MiB/s per ClickHouse volume.",
            observed,
            threshold,
        )
    iops, mibps, how = perf
    observed.update(iops=iops, throughput_mibps=mibps, derived_from=how)
    status = Status.PASS if iops >= min_iops and mibps >= min_mibps else Status.FAIL
    return Evidence(
        status,
        f"ClickHouse volumes of StorageClass {storage.class_name} get {iops:.0f} IOPS and {mibps:.0f} MiB/s "
        f"({how}); required: {min_iops} IOPS and {min_mibps} MiB/s.",
        observed,
        threshold,
    )


def clickhouse_disk_expansion(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The ClickHouse PVCs' StorageClass has allowVolumeExpansion."""
    cluster = clients.cluster
    storage = clickhouse_storage(cluster)
    if storage is None:
        return external_clickhouse(cluster, Status.MANUAL)
    observed = _storage_observed(cluster, storage)
    allowed = bool((storage.storage_class or {}).get("allowVolumeExpansion"))
    observed["allowVolumeExpansion"] = allowed
    if allowed:
        return Evidence(
            Status.PASS,
            f"StorageClass {storage.class_name} of the ClickHouse PVCs allows volume expansion.",
            observed,
        )
    return Evidence(
        Status.FAIL,
        f"StorageClass {storage.class_name or '(none)'} of the ClickHouse PVCs does not allow volume "
        "expansion (allowVolumeExpansion unset or false); required: true.",
        observed,
    )


def clickhouse_replicas(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Replicas of the bundled ClickHouse StatefulSet against the minimum (for clickhouse.replicas_min)."""
    cluster = clients.cluster
    facts = clickhouse_facts(cluster)
    if facts is None:
        return external_clickhouse(cluster, Status.MANUAL)
    minimum = int(params["min"])
    status = Status.PASS if facts["replicas"] >= minimum else Status.FAIL
    return Evidence(
        status,
        f"StatefulSet {facts['statefulset']} runs {facts['replicas']} ClickHouse replica(s); required: "
        f"at least {minimum}.",
        facts,
        {"min": minimum},
    )


def clickhouse_node_size(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """CPU and memory guaranteed to each bundled ClickHouse pod against the minimum (for node_size)."""
    cluster = clients.cluster
    facts = clickhouse_facts(cluster)
    if facts is None:
        return external_clickhouse(cluster, Status.MANUAL)
    min_cpus, min_gib = params["min_cpus"], params["min_memory_gib"]
    threshold = {"min_cpus": min_cpus, "min_memory_gib": min_gib}
    req = (facts["cpu_request"] or 0, facts["memory_request_gib"] or 0)
    lim = (facts["cpu_limit"] or 0, facts["memory_limit_gib"] or 0)
    sized = f"requests {req[0]:g} CPU / {req[1]:g} GiB, limits {lim[0]:g} CPU / {lim[1]:g} GiB"
    where = f"StatefulSet {facts['statefulset']} gives each ClickHouse pod {sized}"
    if req[0] >= min_cpus and req[1] >= min_gib:
        return Evidence(
            Status.PASS, f"{where}; required: {min_cpus} vCPU and {min_gib} GiB.", facts, threshold
        )
    if lim[0] >= min_cpus and lim[1] >= min_gib:
        # Limits are only a ceiling: under node pressure the pod gets its requests.
        return Evidence(
            Status.WARN,
            f"{where}: only the limits reach {min_cpus} vCPU / {min_gib} GiB; raise the requests to "
            "guarantee it.",
            facts,
            threshold,
        )
    return Evidence(Status.FAIL, f"{where}; required: {min_cpus} vCPU and {min_gib} GiB.", facts, threshold)


# -- autoscaling ----------------------------------------------------------------------------------


def autoscalers(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """HPAs and KEDA ScaledObjects by the name of the workload they scale."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hpa in cluster.objects("horizontalpodautoscalers"):
        spec = hpa.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        entry = {"kind": "HPA", "name": name_of(hpa), "min": spec.get("minReplicas", 1)}
        found[target].append({**entry, "max": spec.get("maxReplicas")})
    for so in cluster.objects("scaledobjects"):
        spec = so.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        entry = {"kind": "ScaledObject", "name": name_of(so), "min": spec.get("minReplicaCount")}
        found[target].append({**entry, "max": spec.get("maxReplicaCount")})
    return found


def _scaled_by(scalers: Mapping[str, list[dict[str, Any]]], name: str) -> str:
    entries = scalers.get(name) or []
    return ", ".join(f"{e['kind']} {e['name']} {e['min']}-{e['max']}" for e in entries) or "none"


def hpa_configured(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every LangSmith Deployment has an HPA or a KEDA ScaledObject."""
    cluster = clients.cluster
    deps = deployments(cluster)
    if not deps:
        raise ClusterError(
            f"no LangSmith Deployments named {cluster.name('<component>')} in {cluster.namespace}"
        )
    scalers = autoscalers(cluster)
    observed = {name: _scaled_by(scalers, name) for name in deps}
    missing = [n for n in deps if not scalers.get(n)]
    core_missing = [n for n in missing if n in {cluster.name(c) for c in CORE}]
    if not missing:
        return Evidence(
            Status.PASS,
            f"All {len(deps)} LangSmith Deployments have an autoscaler (required: each).",
            observed,
        )
    status = Status.FAIL if core_missing else Status.WARN
    return Evidence(
        status,
        f"{len(missing)} of {len(deps)} LangSmith Deployments have no HPA or ScaledObject "
        f"({', '.join(missing)}); required: one each, e.g. `<svc>.autoscaling.hpa.enabled: true`.",
        observed,
    )


def resources_set(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """CPU and memory requests and limits on every container of the release's workloads."""
    cluster = clients.cluster
    workloads = release_objects(cluster, "deployments") + release_objects(cluster, "statefulsets")
    if not workloads:
        raise ClusterError(
            f"no Deployments or StatefulSets of release {cluster.release} in {cluster.namespace}"
        )
    no_requests, no_limits = [], []
    for workload in workloads:
        for container in containers(workload):
            res = container.get("resources") or {}
            where = f"{name_of(workload)}/{container.get('name')}"
            missing_req = [r for r in ("cpu", "memory") if r not in (res.get("requests") or {})]
            missing_lim = [r for r in ("cpu", "memory") if r not in (res.get("limits") or {})]
            if missing_req:
                no_requests.append(f"{where} ({'/'.join(missing_req)})")
            if missing_lim:
                no_limits.append(f"{where} ({'/'.join(missing_lim)})")
    total = sum(len(containers(w)) for w in workloads)
    observed = {"containers": total, "without_requests": no_requests, "without_limits": no_limits}
    if no_requests:
        return Evidence(
            Status.FAIL,
            f"{len(no_requests)} of {total} containers lack CPU/memory requests "
            f"({', '.join(no_requests[:5])}); an HPA cannot compute utilisation without them.",
            observed,
        )
    if no_limits:
        return Evidence(
            Status.WARN,
            f"{len(no_limits)} of {total} containers lack CPU/memory limits ({', '.join(no_limits[:5])}); "
            "required: requests and limits on each.",
            observed,
        )
    return Evidence(
        Status.PASS,
        f"All {total} containers of release {cluster.release} set CPU and memory requests and limits.",
        observed,
    )


def _release_hpas(cluster: Cluster) -> list[dict[str, Any]]:
    names = {name_of(d) for d in release_objects(cluster, "deployments")}
    return [
        h
        for h in cluster.objects("horizontalpodautoscalers")
        if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") in names
    ]


def _no_hpa(cluster: Cluster) -> Evidence:
    return Evidence(
        Status.FAIL,
        f"No HPA scales a Deployment of release {cluster.release} in {cluster.namespace}, so there is "
        "nothing to validate; enable `<svc>.autoscaling.hpa.enabled` first.",
        {"hpas": 0},
    )


def hpa_metrics(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Each HPA reports current metric values and is ScalingActive and AbleToScale."""
    cluster = clients.cluster
    hpas = _release_hpas(cluster)
    if not hpas:
        return _no_hpa(cluster)
    problems, observed = [], {}
    for hpa in hpas:
        status = hpa.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        current = status.get("currentMetrics") or []
        observed[name_of(hpa)] = {
            "current_metrics": len(current),
            **{
                t: (conditions.get(t) or {}).get("status", "absent") for t in ("ScalingActive", "AbleToScale")
            },
        }
        for ctype in ("ScalingActive", "AbleToScale"):
            cond = conditions.get(ctype) or {}
            if cond.get("status") != "True":
                reason = cond.get("reason") or "not reported"
                problems.append(f"{name_of(hpa)} {ctype}={cond.get('status', 'absent')} ({reason})")
        if not current:
            problems.append(f"{name_of(hpa)} reports no current metric values (<unknown>)")
    if problems:
        return Evidence(
            Status.FAIL,
            f"{len(problems)} HPA metric problem(s): {'; '.join(problems[:4])}; required: values reported, "
            "ScalingActive and AbleToScale True.",
            observed,
        )
    return Evidence(
        Status.PASS,
        f"All {len(hpas)} HPAs report current metric values and are ScalingActive and AbleToScale.",
        observed,
    )


def hpa_scaled(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Each HPA has scaled recently (status.lastScaleTime), as evidence of a load test."""
    cluster = clients.cluster
    hpas = _release_hpas(cluster)
    if not hpas:
        return _no_hpa(cluster)
    days = params["scaled_within_days"]
    since = datetime.now(UTC) - timedelta(days=days)
    stale, at_max, observed = [], [], {}
    for hpa in hpas:
        status, spec = hpa.get("status") or {}, hpa.get("spec") or {}
        last = _timestamp(status.get("lastScaleTime"))
        observed[name_of(hpa)] = {
            "lastScaleTime": status.get("lastScaleTime"),
            "currentReplicas": status.get("currentReplicas"),
            "maxReplicas": spec.get("maxReplicas"),
        }
        if last is None or last < since:
            stale.append(name_of(hpa))
        if status.get("currentReplicas") is not None and status.get("currentReplicas") >= spec.get(
            "maxReplicas", 1 << 30
        ):
            at_max.append(name_of(hpa))
    threshold = {"scaled_within_days": days}
    if stale:
        return Evidence(
            Status.WARN,
            f"{len(stale)} of {len(hpas)} HPAs never scaled in the last {days} days ({', '.join(stale)}): "
            "never seen scaling, load-test it.",
            observed,
            threshold,
        )
    if at_max:
        return Evidence(
            Status.WARN,
            f"HPAs {', '.join(at_max)} sit at maxReplicas; raise the ceiling before peak load "
            f"(all {len(hpas)} scaled within {days} days).",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS, f"All {len(hpas)} HPAs scaled within the last {days} days.", observed, threshold
    )


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_write_scaling(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The read path (backend) and write path (platform-backend, queues) autoscale separately."""
    cluster = clients.cluster
    scalers = autoscalers(cluster)
    read = deployments(cluster, READ_PATH)
    write = deployments(cluster, WRITE_PATH)
    if not read or not write:
        raise ClusterError(
            f"the read ({cluster.name('backend')}) or write ({cluster.name('platform-backend')}, ...) "
            f"Deployments are not in {cluster.namespace}"
        )
    observed: dict[str, Any] = {n: _scaled_by(scalers, n) for n in [*read, *write]}
    observed["clickhouse"] = clickhouse_facts(cluster)
    read_ok = [n for n in read if scalers.get(n)]
    write_ok = [n for n in write if scalers.get(n)]
    ch = observed["clickhouse"]
    tail = f"; ClickHouse StatefulSet runs {ch['replicas']} replica(s)" if ch else ""
    if read_ok and len(write_ok) == len(write):
        return Evidence(
            Status.PASS,
            f"Read ({', '.join(read)}) and write ({', '.join(write)}) Deployments autoscale "
            f"separately{tail}.",
            observed,
        )
    if not read_ok and not write_ok:
        return Evidence(
            Status.FAIL,
            f"Neither the read ({', '.join(read)}) nor the write ({', '.join(write)}) Deployments have an "
            f"autoscaler, so neither path can scale{tail}.",
            observed,
        )
    if not read_ok or not write_ok:
        side, names = ("read", read) if not read_ok else ("write", write)
        return Evidence(
            Status.FAIL,
            f"The {side} path ({', '.join(names)}) has no autoscaler, so reads and writes cannot scale "
            f"independently{tail}.",
            observed,
        )
    unscaled = [n for n in write if n not in write_ok]
    return Evidence(
        Status.WARN,
        f"Write-path Deployments {', '.join(unscaled)} have no autoscaler while the rest do{tail}.",
        observed,
    )


# -- KEDA -----------------------------------------------------------------------------------------


def _triggers(so: Mapping[str, Any]) -> list[str]:
    out = []
    for trigger in (so.get("spec") or {}).get("triggers") or []:
        md = trigger.get("metadata") or {}
        detail = md.get("url") or md.get("query") or md.get("value") or ""
        target = md.get("targetValue") or md.get("threshold") or md.get("value")
        where = f" {detail}" if detail else ""
        loc = f" ({md['valueLocation']})" if md.get("valueLocation") else ""
        out.append(f"{trigger.get('type')}{where}{loc} target {target}")
    return out


def _no_keda(cluster: Cluster) -> Evidence:
    note = cluster.notes.get("scaledobjects")
    why = f" ({note})" if note else ""
    return Evidence(
        Status.NA,
        f"No KEDA ScaledObjects in namespace {cluster.namespace}{why}; KEDA items do not apply.",
        {"scaledobjects": 0},
    )


def keda_in_use(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Evidence for the KEDA manual items: n/a without ScaledObjects, else their triggers to review."""
    cluster = clients.cluster
    objs = cluster.objects("scaledobjects")
    if not objs:
        return _no_keda(cluster)
    observed = {name_of(so): _triggers(so) for so in objs}
    listed = "; ".join(f"{n}: {', '.join(t) or 'no triggers'}" for n, t in observed.items())
    return Evidence(
        Status.MANUAL,
        f"{len(objs)} ScaledObjects use KEDA ({listed}); a person confirms this item.",
        observed,
    )


def keda_hpa_interaction(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """No Deployment is scaled both by a KEDA ScaledObject and by a separate HPA."""
    cluster = clients.cluster
    objs = cluster.objects("scaledobjects")
    if not objs:
        return _no_keda(cluster)
    hpas = cluster.objects("horizontalpodautoscalers")
    conflicts, observed = [], {}
    for so in objs:
        spec = so.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        own = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get("name")
        own = own or f"keda-hpa-{name_of(so)}"
        others = [
            name_of(h)
            for h in hpas
            if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == target
            and name_of(h) != own
            and not _owned_by(h, name_of(so))
        ]
        observed[name_of(so)] = {"target": target, "triggers": _triggers(so), "other_hpas": others}
        conflicts.extend(f"{target} (ScaledObject {name_of(so)} and HPA {h})" for h in others)
    if conflicts:
        return Evidence(
            Status.FAIL,
            f"{len(conflicts)} Deployment(s) have two autoscalers: {'; '.join(conflicts)}; "
            "keep one per service.",
            observed,
        )
    triggers = sorted({t for v in observed.values() for t in v["triggers"]})
    return Evidence(
        Status.PASS,
        f"{len(objs)} ScaledObjects each own their target's only HPA "
        f"(triggers: {', '.join(triggers) or 'none'}).",
        observed,
    )


def _owned_by(hpa: Mapping[str, Any], scaled_object: str) -> bool:
    owners = meta(hpa).get("ownerReferences") or []
    labels = meta(hpa).get("labels") or {}
    return labels.get("scaledobject.keda.sh/name") == scaled_object or any(
        o.get("kind") == "ScaledObject" and o.get("name") == scaled_object for o in owners
    )


# -- levers ---------------------------------------------------------------------------------------

ASYNC_INSERT_WAIT = "CLICKHOUSE_ASYNC_INSERT_WAIT_PCT_FLOAT"


def async_insert_wait(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Whether CLICKHOUSE_ASYNC_INSERT_WAIT_PCT_FLOAT is set on the LangSmith workloads."""
    cluster = clients.cluster
    workloads = {name_of(d): d for d in release_objects(cluster, "deployments")}
    if not workloads:
        raise ClusterError(f"no Deployments of release {cluster.release} in {cluster.namespace}")
    found = env_on(cluster, workloads, ASYNC_INSERT_WAIT)
    observed = {n: ("(from a Secret)" if v is None else v) for n, v in found.items()}
    if not found:
        return Evidence(
            Status.MANUAL,
            f"{ASYNC_INSERT_WAIT} is not set on any of {len(workloads)} LangSmith Deployments; evaluate it "
            '(the scale profiles set "0") and record the decision.',
            {"set_on": {}},
        )
    shown = ", ".join(f"{n}={v}" for n, v in sorted(observed.items()))
    return Evidence(
        Status.PASS, f"{ASYNC_INSERT_WAIT} is set, so it was evaluated: {shown}.", {"set_on": observed}
    )


# -- monitoring and alerts ------------------------------------------------------------------------

DATASTORES: dict[str, tuple[str, ...]] = {
    "Redis": ("redis",),
    "PostgreSQL": ("postgres",),
    "ClickHouse": ("clickhouse", "9363", "ch-metrics"),
}
EXPORTER_IMAGES: dict[str, tuple[str, ...]] = {
    "Redis": ("redis_exporter", "redis-exporter"),
    "PostgreSQL": ("postgres_exporter", "postgres-exporter", "postgresql-exporter"),
    "ClickHouse": ("clickhouse_exporter", "clickhouse-exporter"),
}
INGESTION_ALERT = re.compile(r"ingest|queue|pending|backlog|asynq|saq|inserted_at|received_at|delay", re.I)
SATURATION_ALERT = re.compile(
    r"ClickHouseMetrics_Query\b|clickhouse\w*_quer|concurrent\w*quer|quer\w*(concurren|saturat)", re.I
)


def _monitors_for(cluster: Cluster) -> list[tuple[str, str]]:
    """(label, searchable text) of the ServiceMonitors and PodMonitors that can reach the namespace."""
    found = []
    for plural, kind in (("servicemonitors", "ServiceMonitor"), ("podmonitors", "PodMonitor")):
        for mon in cluster.objects(plural):
            spec = mon.get("spec") or {}
            selector = spec.get("namespaceSelector") or {}
            home = meta(mon).get("namespace")
            if (
                home == cluster.namespace
                or selector.get("any")
                or cluster.namespace in (selector.get("matchNames") or [])
            ):
                text = " ".join([name_of(mon), json.dumps(spec.get("selector") or {})])
                text += json.dumps(spec.get("endpoints") or spec.get("podMetricsEndpoints") or [])
                found.append((f"{kind} {home}/{name_of(mon)}", text.lower()))
    return found


def _exporters(cluster: Cluster) -> dict[str, list[str]]:
    """Datastore -> workloads in the namespace that run an exporter or are annotated for scraping."""
    found: dict[str, list[str]] = defaultdict(list)
    for plural in ("deployments", "statefulsets"):
        for workload in cluster.objects(plural):
            images = " ".join(f"{c.get('name')} {c.get('image')}" for c in containers(workload)).lower()
            for store, keys in EXPORTER_IMAGES.items():
                if any(k in images for k in keys):
                    found[store].append(f"{plural[:-1]} {name_of(workload)}")
            pod_meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
            annotations = pod_meta.get("annotations") or {}
            if (
                annotations.get("prometheus.io/scrape") == "true"
                and annotations.get("prometheus.io/port") == "9363"
            ):
                found["ClickHouse"].append(f"{plural[:-1]} {name_of(workload)} (prometheus.io annotations)")
    return found


def scrape_coverage(cluster: Cluster, monitors: list[tuple[str, str]] | None = None) -> dict[str, list[str]]:
    """Redis, PostgreSQL, ClickHouse -> the monitors and exporters that scrape each (empty: none seen)."""
    monitors = _monitors_for(cluster) if monitors is None else monitors
    exporters = _exporters(cluster)
    return {
        store: [label for label, text in monitors if any(k in text for k in keys)] + exporters.get(store, [])
        for store, keys in DATASTORES.items()
    }


def monitoring(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Redis, PostgreSQL and ClickHouse are scraped: ServiceMonitors, PodMonitors or exporters."""
    cluster = clients.cluster
    monitors = _monitors_for(cluster)
    coverage = scrape_coverage(cluster, monitors)
    covered = [s for s, via in coverage.items() if via]
    observed = {"coverage": coverage, "monitors_seen": len(monitors), "notes": dict(cluster.notes)}
    if not covered:
        return Evidence(
            Status.MANUAL,
            f"No ServiceMonitor, PodMonitor or exporter for Redis, PostgreSQL or ClickHouse is visible in "
            f"{cluster.namespace}: nothing in the cluster; attest if monitoring lives elsewhere.",
            observed,
        )
    missing = [s for s in DATASTORES if s not in covered]
    if missing:
        return Evidence(
            Status.WARN,
            f"Scraping covers {', '.join(covered)} but not {', '.join(missing)} (required: all three); "
            "attest if those are monitored elsewhere.",
            observed,
        )
    shown = "; ".join(f"{s}: {via[0]}" for s, via in coverage.items())
    return Evidence(Status.PASS, f"Redis, PostgreSQL and ClickHouse are all scraped ({shown}).", observed)


# The rule group of lsready's own shipped rules (deploy/prometheus, runbooks.alert_rules).
LSREADY_RULE_GROUP = "lsready.langsmith-write-path"
LSREADY_APP = "lsready"  # app.kubernetes.io/name of lsready's Deployment, Service and monitors


def _lsready_rules(rules: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(namespace/name, alert count) of the PrometheusRules that carry lsready's shipped group."""
    found = []
    for obj in rules:
        groups = (obj.get("spec") or {}).get("groups") or []
        if any(g.get("name") == LSREADY_RULE_GROUP for g in groups):
            count = sum(1 for g in groups for r in g.get("rules") or [] if "alert" in r)
            found.append((f"{meta(obj).get('namespace')}/{name_of(obj)}", count))
    return found


def _lsready_scraped(cluster: Cluster) -> list[str]:
    """What scrapes lsready: monitors selecting it, or its pods annotated for scraping."""
    via = [label for label, text in _monitors_for(cluster) if LSREADY_APP in text]
    for workload in cluster.objects("deployments"):
        pod_meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
        labels, notes = pod_meta.get("labels") or {}, pod_meta.get("annotations") or {}
        if (
            labels.get("app.kubernetes.io/name") == LSREADY_APP
            and notes.get("prometheus.io/scrape") == "true"
        ):
            via.append(f"deployment {name_of(workload)} (prometheus.io annotations)")
    return via


def alerts(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """PrometheusRules alert on ingestion delay (or queue depth) and on ClickHouse query saturation;
    lsready's shipped rules count when something also scrapes lsready's exporter, their input."""
    cluster = clients.cluster
    rules = cluster.objects("prometheusrules")
    threshold = {"ingestion_delay_p95_s": params["ingestion_delay_p95_s"]}
    shipped = _lsready_rules(rules)
    if shipped:
        where = ", ".join(f"PrometheusRule {name} ({n} alerts)" for name, n in shipped)
        scraped = _lsready_scraped(cluster)
        observed = {
            "prometheusrules": len(rules),
            "lsready_rules": dict(shipped),
            "lsready_scraped_by": scraped,
        }
        if scraped:
            return Evidence(
                Status.PASS,
                f"lsready's shipped alert rules are loaded ({where}: ingestion delay, queue growth, query "
                f"saturation, parts, disk) and {scraped[0]} scrapes lsready's exporter; threshold P95 "
                f"ingestion delay {threshold['ingestion_delay_p95_s']} s.",
                observed,
                threshold,
            )
        return Evidence(
            Status.WARN,
            f"lsready's shipped alert rules are loaded ({where}) but nothing visible scrapes lsready's "
            f"exporter (no ServiceMonitor or PodMonitor selecting app.kubernetes.io/name={LSREADY_APP}, no "
            "prometheus.io/scrape on its pods), so they cannot fire: apply deploy/prometheus.",
            observed,
            threshold,
        )
    if not rules:
        why = cluster.notes.get("prometheusrules", "no PrometheusRule objects")
        return Evidence(
            Status.MANUAL,
            f"No alert rules are visible in the cluster ({why}): nothing in the cluster; attest if alerting "
            f"lives elsewhere (P95 ingestion delay > {threshold['ingestion_delay_p95_s']} s).",
            {"prometheusrules": 0},
            threshold,
        )
    ingestion, saturation = [], []
    for obj in rules:
        for group in (obj.get("spec") or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                text = f"{rule['alert']} {rule.get('expr', '')}"
                if INGESTION_ALERT.search(text):
                    ingestion.append(rule["alert"])
                if SATURATION_ALERT.search(text):
                    saturation.append(rule["alert"])
    observed = {"prometheusrules": len(rules), "ingestion_alerts": ingestion, "saturation_alerts": saturation}
    if ingestion and saturation:
        return Evidence(
            Status.PASS,
            f"Alerts cover ingestion delay ({', '.join(ingestion[:3])}) and query saturation "
            f"({', '.join(saturation[:3])}); threshold P95 ingestion delay "
            f"{threshold['ingestion_delay_p95_s']} s.",
            observed,
            threshold,
        )
    lacking = [
        w for w, found in (("ingestion delay", ingestion), ("query saturation", saturation)) if not found
    ]
    return Evidence(
        Status.WARN,
        f"{len(rules)} PrometheusRules have no alert on {' or '.join(lacking)}; add one (P95 ingestion delay "
        f"> {threshold['ingestion_delay_p95_s']} s, concurrent ClickHouse queries > 100).",
        observed,
        threshold,
    )


PROBES = {
    "kubernetes.ebs_csi_driver": ebs_csi_driver,
    "kubernetes.default_storage_class": default_storage_class,
    "kubernetes.clickhouse_pvcs_bound": clickhouse_pvcs_bound,
    "kubernetes.volume_expansion": volume_expansion,
    "kubernetes.clickhouse_ssd": clickhouse_ssd,
    "kubernetes.clickhouse_iops": clickhouse_iops,
    "kubernetes.clickhouse_disk_expansion": clickhouse_disk_expansion,
    # Not bound in the catalog: the ClickHouse items ask ClickHouse, and fall back to these views of
    # the bundled StatefulSet when it cannot be asked (checks/probes/incluster.py).
    "kubernetes.read_write_scaling": read_write_scaling,
    "kubernetes.hpa_configured": hpa_configured,
    "kubernetes.resources_set": resources_set,
    "kubernetes.hpa_metrics": hpa_metrics,
    "kubernetes.hpa_scaled": hpa_scaled,
    "kubernetes.keda_in_use": keda_in_use,
    "kubernetes.keda_hpa_interaction": keda_hpa_interaction,
    "kubernetes.async_insert_wait": async_insert_wait,
    "kubernetes.monitoring": monitoring,
    "kubernetes.alerts": alerts,
}
