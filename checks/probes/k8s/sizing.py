"""The bundled ClickHouse as Kubernetes runs it: disk type, IOPS, replicas, node size, async insert wait."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.model import Evidence, Status
from checks.probes.k8s.objects import env_on, name_of, release_objects
from checks.probes.k8s.storage import (
    HDD_TYPES,
    SSD_TYPES,
    ClickHouseStorage,
    clickhouse_facts,
    external_clickhouse,
    volume_performance,
    volume_type,
    with_bundled_clickhouse,
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


@with_bundled_clickhouse(Status.MANUAL)
def clickhouse_ssd(clients: Clients, params: Mapping[str, Any], storage: ClickHouseStorage) -> Evidence:
    """The ClickHouse volumes' StorageClass provisions SSDs."""
    cluster = clients.cluster
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


@with_bundled_clickhouse(Status.MANUAL)
def clickhouse_iops(clients: Clients, params: Mapping[str, Any], storage: ClickHouseStorage) -> Evidence:
    """The ClickHouse volumes' provisioned IOPS and throughput meet the baseline."""
    cluster = clients.cluster
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


@with_bundled_clickhouse(Status.MANUAL)
def clickhouse_disk_expansion(
    clients: Clients, params: Mapping[str, Any], storage: ClickHouseStorage
) -> Evidence:
    """The ClickHouse PVCs' StorageClass has allowVolumeExpansion."""
    cluster = clients.cluster
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
