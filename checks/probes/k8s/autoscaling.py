"""Kubernetes autoscaling: HPAs, resource requests, KEDA ScaledObjects and read/write scaling."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.model import Evidence, Status
from checks.probes.k8s.objects import (
    CORE,
    READ_PATH,
    WRITE_PATH,
    containers,
    deployments,
    meta,
    name_of,
    release_objects,
)
from checks.probes.k8s.storage import clickhouse_facts


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
