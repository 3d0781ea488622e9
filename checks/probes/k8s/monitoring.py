"""Kubernetes monitoring: scrape coverage of LangSmith's datastores and lsready's own alert rules."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.cluster import Cluster
from checks.model import Evidence, Status
from checks.probes.k8s.objects import containers, meta, name_of

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
