"""LangSmith releases and objects that only the tests build: a production-grade install, HPAs, KEDA.

`production()` is a production install of the release whose chart-defaults install `lsready demo`
reads (runbooks/demo/cluster.py); both are made of the same pieces.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbooks.demo.cluster import (
    CHART_LABELS,
    DEPLOYMENTS,
    FULLNAME,
    NS,
    PORTS,
    Objects,
    configmap,
    deployment,
    eks_node,
    hook_job,
    meta,
    nginx_conf,
    pod,
    pvc,
    service,
    statefulset,
    storageclass,
)

BLOB_ENV = {
    "FF_S3_STORAGE_ENABLED": "true",
    "FF_BLOB_STORAGE_ENABLED": "true",
    "BLOB_STORAGE_ENGINE": "S3",
    "MIN_BLOB_STORAGE_SIZE_KB": "20",
    "S3_BUCKET_NAME": "langsmith-traces",
    "S3_API_URL": "https://s3.us-west-2.amazonaws.com",
}
TTL_ENV = {
    "FF_TRACE_TIERS_ENABLED": "true",
    "TRACE_TIER_TTL_DURATION_SEC_MAP": '{ "longlived": 34560000, "shortlived": 1209600 }',
}


def hpa(
    target: str,
    low: int,
    high: int,
    scaled_ago: timedelta | None = timedelta(days=2),
    healthy: bool = True,
    name: str | None = None,
) -> dict[str, Any]:
    """An autoscaling/v2 HPA on CPU as the chart renders it, with the status the controller reports."""
    now = datetime.now(UTC)
    status: dict[str, Any] = {
        "currentReplicas": low,
        "desiredReplicas": low,
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
            {
                "type": "ScalingActive",
                "status": "True" if healthy else "False",
                "reason": "ValidMetricFound" if healthy else "FailedGetResourceMetric",
            },
            {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange"},
        ],
    }
    if healthy:
        status["currentMetrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 42, "averageValue": "420m"}},
            }
        ]
    if scaled_ago is not None:
        status["lastScaleTime"] = (now - scaled_ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name or target, labels=CHART_LABELS),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
        },
        "status": status,
    }


def scaledobject(target: str, triggers: list[dict[str, Any]], hpa_name: str | None = None) -> dict[str, Any]:
    """A KEDA ScaledObject like the chart's: the HPA it creates carries the Deployment's name."""
    advanced = {"horizontalPodAutoscalerConfig": {"name": hpa_name}} if hpa_name else {}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(
            target, labels=CHART_LABELS, annotations={"scaledobject.keda.sh/transfer-hpa-ownership": "true"}
        ),
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": 1,
            "maxReplicaCount": 10,
            "advanced": advanced,
            "triggers": triggers,
        },
    }


def queue_trigger() -> dict[str, Any]:
    return {
        "type": "metrics-api",
        "metadata": {
            "url": f"http://{FULLNAME}-backend:1984/metrics/queue/default",
            "valueLocation": "queued",
            "targetValue": "10",
        },
    }


def production() -> Objects:
    """A production-grade install: HPAs, blob storage, 100M bodies, gp3 7000 IOPS, monitoring and alerts."""
    common = {**BLOB_ENV, **TTL_ENV, "REDIS_RUNS_EXPIRY_SECONDS": "21600"}
    config = {"CLICKHOUSE_ASYNC_INSERT_WAIT_PCT_FLOAT": "0"}
    bounds = {
        "backend": (3, 10),
        "platform-backend": (3, 20),
        "queue": (3, 20),
        "ingest-queue": (3, 24),
        "frontend": (2, 5),
        "playground": (1, 5),
        "ace-backend": (1, 5),
    }
    exporters = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("redis-exporter"),
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "exporter", "image": "oliver006/redis_exporter:v1.62.0"}]
                    }
                }
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("postgres-exporter"),
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "exporter",
                                "image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
                            }
                        ]
                    }
                }
            },
        },
    ]
    return {
        "nodes": [eks_node(f"ip-10-0-{i}-10") for i in range(1, 4)],
        "csidrivers": [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSIDriver",
                "metadata": meta("ebs.csi.aws.com", None),
                "spec": {"attachRequired": True},
            }
        ],
        "storageclasses": [
            storageclass("gp2", "kubernetes.io/aws-ebs", type="gp2"),
            storageclass(
                "gp3",
                "ebs.csi.aws.com",
                default=True,
                expansion=True,
                type="gp3",
                iops="7000",
                throughput="1000",
                encrypted="true",
            ),
        ],
        "deployments": [deployment(c, common, autoscaled=True) for c in DEPLOYMENTS] + exporters,
        "statefulsets": [
            statefulset(
                "clickhouse", 3, "gp3", "500Gi", cpu="8", memory="32Gi", cpu_limit="8", memory_limit="32Gi"
            )
        ],
        "persistentvolumeclaims": [
            pvc(f"data-{FULLNAME}-clickhouse-{i}", "gp3", size="500Gi") for i in range(3)
        ],
        "pods": [pod(f"{FULLNAME}-clickhouse-{i}", ready=True) for i in range(3)],
        "services": [
            service(c, PORTS[c])
            for c in ("backend", "platform-backend", "playground", "ace-backend", "clickhouse", "frontend")
        ],
        "configmaps": [
            configmap(f"{FULLNAME}-frontend", {"nginx.conf": nginx_conf("100M", "600")}),
            configmap(f"{FULLNAME}-config", config),
        ],
        "horizontalpodautoscalers": [hpa(f"{FULLNAME}-{c}", *bounds[c]) for c in DEPLOYMENTS],
        "jobs": [hook_job(s, age_s=7200) for s in ("backend-migrations", "backend-ch-migrations")],
        "ingresses": [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta(
                    f"{FULLNAME}-ingress",
                    labels=CHART_LABELS,
                    annotations={
                        "alb.ingress.kubernetes.io/scheme": "internal",
                        "alb.ingress.kubernetes.io/load-balancer-attributes": (
                            "idle_timeout.timeout_seconds=600"
                        ),
                    },
                ),
                "spec": {
                    "ingressClassName": "alb",
                    "rules": [
                        {
                            "host": "langsmith.example.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": f"{FULLNAME}-frontend",
                                                "port": {"number": 80},
                                            }
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
        ],
        "ingressclasses": [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": meta("alb", None),
                "spec": {"controller": "ingress.k8s.aws/alb"},
            }
        ],
        "scaledobjects": [],
        "servicemonitors": [
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": meta("langsmith-clickhouse", "monitoring"),
                "spec": {
                    "namespaceSelector": {"matchNames": [NS]},
                    "selector": {"matchLabels": {"app.kubernetes.io/component": f"{FULLNAME}-clickhouse"}},
                    "endpoints": [{"port": "ch-metrics", "path": "/metrics"}],
                },
            },
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": meta("langsmith-backend", "monitoring"),
                "spec": {
                    "namespaceSelector": {"matchNames": [NS]},
                    "selector": {"matchLabels": {"app.kubernetes.io/component": f"{FULLNAME}-backend"}},
                    "endpoints": [{"port": "http", "path": "/metrics"}],
                },
            },
        ],
        "podmonitors": [],
        "prometheusrules": [
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": meta("langsmith", "monitoring"),
                "spec": {
                    "groups": [
                        {
                            "name": "langsmith",
                            "rules": [
                                {
                                    "alert": "LangSmithIngestionDelayHigh",
                                    "expr": "histogram_quantile(0.95, sum by (le) "
                                    "(rate(langsmith_ingestion_delay_seconds_bucket[5m]))) > 60",
                                    "for": "10m",
                                },
                                {
                                    "alert": "ClickHouseQuerySaturation",
                                    "expr": "ClickHouseMetrics_Query > 100",
                                    "for": "5m",
                                },
                                {"record": "langsmith:queue_depth", "expr": "sum(langsmith_queue_queued)"},
                            ],
                        }
                    ]
                },
            },
        ],
    }
