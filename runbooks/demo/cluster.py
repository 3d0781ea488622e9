"""A LangSmith release as Kubernetes objects, for `lsready demo` and the tests.

`chart_defaults()` is what `helm install` of the LangSmith chart with default values leaves in the
namespace; `write_snapshot` writes it as the offline snapshot directory `kubernetes.snapshot_dir`
reads. The tests build other releases (tests/cluster_objects.py) from the same pieces.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from checks.cluster import NOT_INSTALLED_NOTE, READ_KINDS

Objects = dict[str, list[dict[str, Any]]]  # plural -> items, like `kubectl get <plural> -A -o json`


# -- snapshots ------------------------------------------------------------------------------------


def write_snapshot(objects: Objects, directory: Path) -> Path:
    """Write `<plural>.json` per kind as `snapshot_commands()` would (absent CRDs get the marker)."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in READ_KINDS:
        if kind.plural in objects:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "List", "items": objects[kind.plural]}
        elif kind.crd:
            body = {
                "apiVersion": "v1",
                "kind": "List",
                "items": [],
                NOT_INSTALLED_NOTE: f"{kind.resource} not installed",
            }
        else:
            continue
        (directory / f"{kind.plural}.json").write_text(json.dumps(body))
    return directory


# -- objects modelled on the chart ------------------------------------------------------------------

NS = "langsmith"
RELEASE = "langsmith"
FULLNAME = "langsmith"
CHART_LABELS = {
    "app.kubernetes.io/name": "langsmith",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": "langsmith-0.17.0",
}
# requests cpu, memory / limits cpu, memory (facts §1, chart defaults)
RESOURCES = {
    "backend": ("1", "2Gi", "2", "4Gi"),
    "platform-backend": ("1", "2Gi", "2", "4Gi"),
    "queue": ("1", "2Gi", "2", "4Gi"),
    "ingest-queue": ("1", "2Gi", "2", "4Gi"),
    "frontend": ("500m", "1Gi", "1", "2Gi"),
    "playground": ("500m", "1Gi", "1", "8Gi"),
    "ace-backend": ("1", "2000Mi", "2", "4000Mi"),
    "clickhouse": ("3500m", "12Gi", "8", "32Gi"),
    "postgres": ("2", "8Gi", "4", "16Gi"),
    "redis": ("2", "4Gi", "4", "8Gi"),
}
PORTS = {
    "backend": 1984,
    "platform-backend": 1986,
    "queue": 8080,
    "ingest-queue": 1989,
    "frontend": 8080,
    "playground": 1988,
    "ace-backend": 1987,
    "clickhouse": 8123,
    "postgres": 5432,
    "redis": 6379,
}
DEPLOYMENTS = (
    "backend",
    "platform-backend",
    "queue",
    "ingest-queue",
    "frontend",
    "playground",
    "ace-backend",
)
DEFAULT_REPLICAS = {"backend": 2, "platform-backend": 3, "ingest-queue": 3}


def nginx_conf(max_body: str, read_timeout: str = "300") -> str:
    """The frontend ConfigMap's nginx.conf as the chart renders it (abridged)."""
    return f"""proxy_ssl_server_name on;
server {{
    listen       8080;
    server_name  localhost;
    client_max_body_size {max_body};
    proxy_read_timeout {read_timeout};
    proxy_connect_timeout 60;
    proxy_send_timeout 300;
    location ~ /api/v1 {{
        proxy_pass http://{FULLNAME}-backend:1984;
    }}
}}
"""


def meta(name: str, namespace: str | None = NS, **extra: Any) -> dict[str, Any]:
    """Object metadata: name, namespace (None for a cluster-scoped kind) and labels or annotations."""
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _container(component: str, env: dict[str, str]) -> dict[str, Any]:
    req_cpu, req_mem, lim_cpu, lim_mem = RESOURCES[component]
    container: dict[str, Any] = {
        "name": component,
        "image": f"docker.io/langchain/langsmith-{component}:0.12.0",
        "ports": [{"containerPort": PORTS[component], "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}]
        + [
            {
                "name": "POSTGRES_DATABASE_URI",
                "valueFrom": {"secretKeyRef": {"name": f"{FULLNAME}-postgres", "key": "connection_url"}},
            }
        ]
        + [{"name": k, "value": v} for k, v in env.items()],
        "resources": {
            "requests": {"cpu": req_cpu, "memory": req_mem},
            "limits": {"cpu": lim_cpu, "memory": lim_mem},
        },
    }
    if component not in ("clickhouse", "postgres", "redis", "frontend"):
        container["envFrom"] = [{"configMapRef": {"name": f"{FULLNAME}-config"}}]
    return container


def deployment(component: str, env: dict[str, str] | None = None, autoscaled: bool = False) -> dict[str, Any]:
    name = f"{FULLNAME}-{component}"
    labels = {**CHART_LABELS, "app.kubernetes.io/component": name}
    spec: dict[str, Any] = {
        "selector": {
            "matchLabels": {
                k: labels[k]
                for k in (
                    "app.kubernetes.io/name",
                    "app.kubernetes.io/instance",
                    "app.kubernetes.io/component",
                )
            }
        },
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [_container(component, env or {})]},
        },
    }
    if not autoscaled:  # the chart drops replicas when autoscaling is on
        spec["replicas"] = DEFAULT_REPLICAS.get(component, 1)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, labels=CHART_LABELS),
        "spec": spec,
        "status": {"readyReplicas": spec.get("replicas", 2)},
    }


def statefulset(
    component: str, replicas: int = 1, storage_class: str | None = None, size: str = "50Gi", **resources: str
) -> dict[str, Any]:
    name = f"{FULLNAME}-{component}"
    container = _container(component, {})
    container["resources"] = {
        "requests": {
            "cpu": resources.get("cpu", RESOURCES[component][0]),
            "memory": resources.get("memory", RESOURCES[component][1]),
        },
        "limits": {
            "cpu": resources.get("cpu_limit", RESOURCES[component][2]),
            "memory": resources.get("memory_limit", RESOURCES[component][3]),
        },
    }
    if component == "clickhouse":
        container["ports"] += [
            {"name": "ch-native", "containerPort": 9000},
            {"name": "ch-metrics", "containerPort": 9363},
        ]
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        claim_spec["storageClassName"] = storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, labels=CHART_LABELS),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {**CHART_LABELS, "app.kubernetes.io/component": name}},
                "spec": {"containers": [container]},
            },
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data"},
                    "spec": claim_spec,
                }
            ],
        },
    }


def pvc(
    name: str, storage_class: str, phase: str = "Bound", size: str = "50Gi", **status: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(name, labels=CHART_LABELS),
        "spec": {"storageClassName": storage_class, "resources": {"requests": {"storage": size}}},
        "status": {"phase": phase, **status},
    }


def hook_job(
    suffix: str, state: str = "succeeded", age_s: float = 3600.0, message: str = ""
) -> dict[str, Any]:
    """One of the chart's hook Jobs (`<fullname>-backend-migrations`, ...) that ended `age_s` ago."""
    ended = (datetime.now(UTC) - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = (datetime.now(UTC) - timedelta(seconds=age_s + 60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {"startTime": started}
    if state == "succeeded":
        done = {"type": "Complete", "status": "True", "lastTransitionTime": ended}
        status.update(succeeded=1, completionTime=ended, conditions=[done])
    elif state == "failed":
        why = message or "Job has reached the specified backoff limit"
        failed = {"type": "Failed", "status": "True", "lastTransitionTime": ended, "message": why}
        status.update(failed=1, conditions=[{**failed, "reason": "BackoffLimitExceeded"}])
    else:
        status["active"] = 1
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{FULLNAME}-{suffix}", labels=CHART_LABELS, creationTimestamp=started),
        "spec": {"backoffLimit": 2},
        "status": status,
    }


def pod(name: str, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, labels=CHART_LABELS),
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def service(
    component: str, port: int, kind: str = "ClusterIP", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    name = f"{FULLNAME}-{component}"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, labels=CHART_LABELS, annotations=annotations or {}),
        "spec": {"type": kind, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    }


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, labels=CHART_LABELS),
        "data": data,
    }


def node(name: str, provider_id: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta(name, None, labels=labels or {}),
        "spec": {"providerID": provider_id},
    }


def eks_node(name: str) -> dict[str, Any]:
    labels = {"eks.amazonaws.com/nodegroup": "langsmith", "topology.kubernetes.io/zone": "us-west-2a"}
    return node(name, f"aws:///us-west-2a/i-0{sum(map(ord, name)):016x}", labels)


def storageclass(
    name: str, provisioner: str, default: bool = False, expansion: bool | None = None, **params: str
) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    sc: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta(name, None, annotations=annotations),
        "provisioner": provisioner,
        "parameters": params,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    if expansion is not None:
        sc["allowVolumeExpansion"] = expansion
    return sc


def chart_defaults() -> Objects:
    """`helm install langsmith langchain/langsmith` on a fresh EKS cluster: every default kept."""
    env = {"REDIS_RUNS_EXPIRY_SECONDS": "21600"}
    return {
        "nodes": [eks_node("ip-10-0-1-10"), eks_node("ip-10-0-2-20")],
        "csidrivers": [],
        "storageclasses": [
            storageclass("gp2", "kubernetes.io/aws-ebs", default=True, type="gp2", fsType="ext4")
        ],
        "deployments": [deployment(c, env) for c in DEPLOYMENTS],
        "statefulsets": [
            statefulset("clickhouse"),
            statefulset("postgres", size="8Gi"),
            statefulset("redis", size="8Gi"),
        ],
        "persistentvolumeclaims": [
            pvc(f"data-{FULLNAME}-clickhouse-0", "gp2", phase="Pending"),
            pvc(f"data-{FULLNAME}-postgres-0", "gp2", phase="Pending", size="8Gi"),
            pvc(f"data-{FULLNAME}-redis-0", "gp2", phase="Pending", size="8Gi"),
        ],
        "pods": [
            pod(f"{FULLNAME}-clickhouse-0", ready=False),
            pod(f"{FULLNAME}-backend-5d9c7-abcde", ready=False),
        ],
        "services": [
            service(c, PORTS[c])
            for c in (
                "backend",
                "platform-backend",
                "playground",
                "ace-backend",
                "clickhouse",
                "postgres",
                "redis",
            )
        ]
        + [service("frontend", 80, "LoadBalancer")],
        "configmaps": [
            configmap(f"{FULLNAME}-frontend", {"nginx.conf": nginx_conf("25M")}),
            configmap(
                f"{FULLNAME}-config",
                {"LANGSMITH_LICENSE_REQUIRED_CLAIMS": "", "X_SERVICE_AUTH_JWT_EXPIRATION_SECONDS": "60"},
            ),
        ],
        "horizontalpodautoscalers": [],
        "ingresses": [],
        "ingressclasses": [],
        "jobs": [hook_job("backend-migrations"), hook_job("backend-ch-migrations")],
    }
