"""Kubernetes objects of a LangSmith release: names, Deployments, containers, env, the cloud."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checks.cluster import INSTANCE_LABEL, Cluster, ClusterError
from checks.model import Evidence, Status

# LangSmith's Deployments (facts §1); host-backend, listener and operator only exist with deployments on.
COMPONENTS = ("backend", "platform-backend", "queue", "ingest-queue", "frontend", "playground", "ace-backend")
READ_PATH = ("backend",)
WRITE_PATH = ("platform-backend", "ingest-queue", "queue")
CORE = READ_PATH + WRITE_PATH  # missing autoscaling here fails; on the others it warns


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


def not_eks(why: str) -> Evidence:
    return Evidence(
        Status.NA, f"The nodes are not on AWS ({why}), so the EBS CSI items do not apply.", {"eks": False}
    )
