"""Datastore items answered from the cluster when the datastore cannot be asked (a support bundle,
a kubeconfig without datastore credentials), and the cluster's scraping as evidence when it can."""

import pytest
from k8s_fake import chart_defaults, production
from test_probes_kubernetes import _clients, _run

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status

P, W, F, M = Status.PASS, Status.WARN, Status.FAIL, Status.MANUAL
# item -> (chart defaults, production-grade), from cluster input alone
EXPECTED = {
    "redis.external": (W, M),  # bundled StatefulSet; production's Redis is outside: attest it
    "postgres.managed": (F, M),
    "postgres.not_embedded": (F, M),
    "clickhouse.replicas_min": (F, P),  # 1 replica vs 3
    "clickhouse.replicas_max": (P, P),
    "clickhouse.node_size": (W, P),  # requests 3500m / 12Gi; only the limits reach 8 vCPU / 32 GiB
    "redis.monitored": (M, P),  # production runs redis_exporter
    "redis.eviction": (M, P),
    "postgres.monitoring": (M, P),  # postgres-exporter
    "clickhouse.concurrency": (M, P),  # a ServiceMonitor on ch-metrics
}


@pytest.mark.parametrize("source", ["api", "snapshot"])
@pytest.mark.parametrize(("profile", "column"), [(chart_defaults, 0), (production, 1)])
def test_with_only_cluster_input_datastore_items_get_the_clusters_verdict(servers, source, profile, column):
    results = _run(_clients(servers, profile(), source), EXPECTED)
    got = {i: r.status for i, r in results.items()}
    assert got == {i: statuses[column] for i, statuses in EXPECTED.items()}
    for item_id, result in results.items():
        assert "was not asked" in result.summary and "is not configured" in result.summary, item_id
        assert result.evidence["from"] == "cluster", item_id
    if column == 0:
        assert (
            "StatefulSet langsmith-clickhouse runs 1 ClickHouse replica(s)"
            in results["clickhouse.replicas_min"].summary
        )
        assert "bundled StatefulSet langsmith-redis" in results["redis.external"].summary
    else:
        assert "redis-exporter" in results["redis.monitored"].summary


def test_an_unreachable_datastore_falls_back_to_the_cluster_and_says_why(servers, unused_port):
    port = unused_port
    clients = _clients(
        servers,
        chart_defaults(),
        "snapshot",
        redis={"url": f"redis://127.0.0.1:{port}/0"},
        clickhouse={"url": f"http://127.0.0.1:{port}/default"},
    )
    results = _run(clients, ["redis.external", "clickhouse.replicas_min", "redis.monitored"])
    # What the cluster shows against them counts; a configured store that is down never passes.
    assert [r.status for r in results.values()] == [W, F, Status.UNKNOWN]
    for result in results.values():
        assert "refused" in result.summary.lower() or "connect" in result.summary.lower(), result.summary
    assert "From the cluster: No ServiceMonitor" in results["redis.monitored"].summary
    watched = _run(
        _clients(servers, production(), "snapshot", redis={"url": f"redis://127.0.0.1:{port}/0"}),
        ["redis.monitored"],
    )
    assert watched["redis.monitored"].status is Status.UNKNOWN  # scraped, but Redis itself is down


def test_without_cluster_input_an_unconfigured_datastore_stays_unknown():
    clients = Clients("t", TargetConfig.model_validate({}), timeout_s=5)
    results = _run(clients, ["redis.external", "clickhouse.replicas_min", "redis.monitored"])
    assert all(r.status is Status.UNKNOWN and "not configured" in r.summary for r in results.values())


def test_a_reachable_datastore_is_asked_and_the_cluster_adds_who_scrapes_it(servers, redis_url, redis_client):
    redis = {"url": redis_url}
    bare = _run(_clients(servers, chart_defaults(), redis=redis), ["redis.monitored", "redis.external"])
    # Healthy readings, but nothing in the cluster scrapes Redis: a person must say who watches it.
    assert bare["redis.monitored"].status is M and "Redis has" in bare["redis.monitored"].summary
    assert "Nothing in namespace langsmith scrapes Redis" in bare["redis.monitored"].summary
    assert bare["redis.monitored"].evidence["scraped_by"] == []
    assert bare["redis.external"].evidence.get("from") is None  # Redis itself answered
    assert "Redis at 127.0.0.1" in bare["redis.external"].summary
    watched = _run(_clients(servers, production(), redis=redis), ["redis.monitored"])
    assert watched["redis.monitored"].status is P and "Scraped by deployment redis-exporter" in (
        watched["redis.monitored"].summary
    )
    alone = _run(Clients("t", TargetConfig.model_validate({"redis": redis})), ["redis.monitored"])
    assert alone["redis.monitored"].status is P and "scrape" not in alone["redis.monitored"].summary.lower()
