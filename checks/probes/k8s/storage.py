"""Kubernetes storage: EBS CSI, the default StorageClass, ClickHouse volumes and their expansion."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.model import Evidence, Status
from checks.probes.common import quantity
from checks.probes.k8s.objects import containers, is_eks, meta, name_of, not_eks

if TYPE_CHECKING:
    from checks.probes.common import ProbeFn

DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
EBS_CSI = "ebs.csi.aws.com"
EBS_IN_TREE = "kubernetes.io/aws-ebs"
RESIZE_CONDITIONS = ("Resizing", "FileSystemResizePending")
GIB = 1024**3


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


# -- guards: a probe that does not apply says so before it reads anything --------------------------

StorageProbe = Callable[[Clients, Mapping[str, Any], "ClickHouseStorage"], Evidence]


def on_eks(probe: ProbeFn) -> ProbeFn:
    """The probe runs on EKS nodes only; elsewhere its item does not apply."""

    @functools.wraps(probe)
    def guarded(clients: Clients, params: Mapping[str, Any]) -> Evidence:
        eks, why = is_eks(clients.cluster)
        return probe(clients, params) if eks else not_eks(why)

    return guarded


def with_bundled_clickhouse(absent: Status) -> Callable[[StorageProbe], ProbeFn]:
    """The probe reads the bundled ClickHouse's storage; without that StatefulSet it is `absent`."""

    def decorate(probe: StorageProbe) -> ProbeFn:
        @functools.wraps(probe)
        def guarded(clients: Clients, params: Mapping[str, Any]) -> Evidence:
            cluster = clients.cluster
            storage = clickhouse_storage(cluster)
            if storage is None:
                return external_clickhouse(cluster, absent)
            return probe(clients, params, storage)

        return guarded

    return decorate


def ebs_csi_driver(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The EBS CSI driver has registered its CSIDriver object on an EKS cluster."""
    cluster = clients.cluster
    eks, why = is_eks(cluster)
    if not eks:
        return not_eks(why)
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


@on_eks
def default_storage_class(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Exactly one default StorageClass, provisioned by the EBS CSI driver."""
    cluster = clients.cluster
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


@on_eks
@with_bundled_clickhouse(Status.NA)
def clickhouse_pvcs_bound(
    clients: Clients, params: Mapping[str, Any], storage: ClickHouseStorage
) -> Evidence:
    """Every ClickHouse PVC is Bound and every ClickHouse pod is Ready."""
    cluster = clients.cluster
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


@on_eks
@with_bundled_clickhouse(Status.NA)
def volume_expansion(clients: Clients, params: Mapping[str, Any], storage: ClickHouseStorage) -> Evidence:
    """ClickHouse's StorageClass allows expansion and no PVC is stuck resizing."""
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
