"""Datastore items seen from the cluster when the datastore itself cannot be asked.

A support bundle (an offline snapshot) or a kubeconfig without datastore credentials still shows
the bundled Redis and PostgreSQL StatefulSets, the bundled ClickHouse StatefulSet's replicas and
resources, and what scrapes each datastore. `or_cluster` runs a datastore's probe and, only when
that datastore is not configured or cannot be reached and the target has cluster input, answers
from the cluster instead, saying so. `with_scraping` also gives a monitoring item the
ServiceMonitors, PodMonitors or exporters that scrape its datastore when both answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg
from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseUnreachable
from psycopg.errors import QueryCanceled
from redis.exceptions import ConnectionError as RedisUnreachable

from checks.backends import BackendUnavailable, describe
from checks.clients import Clients
from checks.errors import LsreadyError, NotConfigured
from checks.model import Evidence, Status
from checks.probes.common import cluster_lookup
from checks.probes.k8s.monitoring import scrape_coverage
from checks.probes.k8s.sizing import clickhouse_node_size, clickhouse_replicas
from checks.probes.k8s.storage import clickhouse_facts, external_clickhouse
from checks.probes.postgres.server import bundled_postgres
from checks.probes.redis import bundled_redis

if TYPE_CHECKING:
    from checks.probes.common import ProbeFn

# What "the datastore could not be asked" looks like; anything else is the probe's own answer.
UNREACHED: tuple[type[BaseException], ...] = (
    NotConfigured,
    BackendUnavailable,
    OSError,
    RedisUnreachable,
    psycopg.OperationalError,
    ClickHouseUnreachable,
)

ClusterView = Callable[[Clients, Mapping[str, Any], str], Evidence]


def _not_asked(store: str, why: str) -> str:
    return f"{store} itself was not asked ({why.rstrip('.')})"


def or_cluster(probe: ProbeFn, store: str, view: ClusterView) -> ProbeFn:
    """`probe`, or `view` of the cluster when `store` cannot be asked and the target has cluster input."""

    @functools.wraps(probe)
    def run(clients: Clients, params: Mapping[str, Any]) -> Evidence:
        try:
            return probe(clients, params)
        except QueryCanceled:  # the store answered and cancelled the query: that is its own answer
            raise
        except UNREACHED as exc:
            if not clients.has("kubernetes"):
                raise
            why, configured = describe(exc), not isinstance(exc, NotConfigured)
        try:
            ev = view(clients, params, _not_asked(store, why))
        except Exception as exc:
            raise LsreadyError(f"{why}; the cluster could not tell either: {describe(exc)}") from exc
        observed = {**ev.observed, "from": "cluster", "datastore_not_asked": why}
        if configured and ev.status not in (Status.WARN, Status.FAIL):
            # A configured store that did not answer never passes on the cluster's word; what the
            # cluster shows against it (a bundled StatefulSet, one replica) still does.
            summary = f"Could not tell: {store} did not answer. From the cluster: {ev.summary}"
            return Evidence(Status.UNKNOWN, summary, observed, ev.threshold)
        return replace(ev, observed=observed)

    return run


# --- Bundled datastores: items 2, 6, 7 -----------------------------------------------------------


def _bundled_view(
    store: str, component: str, lookup: Callable[[Any], Any], bundled_status: Status, advice: str
) -> ClusterView:
    """Bundled StatefulSet `<release>-<component>` present: `bundled_status`; absent: manual."""

    def view(clients: Clients, params: Mapping[str, Any], not_asked: str) -> Evidence:
        cluster = clients.cluster
        found = lookup(cluster)
        name = cluster.name(component)
        if found:
            return Evidence(
                bundled_status,
                f"{store} is the bundled StatefulSet {name} in namespace {cluster.namespace}, a single "
                f"in-cluster pod; {advice} ({not_asked}).",
                {"bundled_statefulset": found},
            )
        return Evidence(
            Status.MANUAL,
            f"No bundled StatefulSet {name} in namespace {cluster.namespace}, so {store} runs outside "
            f"the cluster; {not_asked}, so confirm it is a managed service and attest it.",
            {"bundled_statefulset": None},
        )

    return view


redis_external_view = _bundled_view(
    "Redis", "redis", bundled_redis, Status.WARN, "use a managed Redis for significant write volume"
)
postgres_managed_view = _bundled_view(
    "PostgreSQL", "postgres", bundled_postgres, Status.FAIL, "move to a managed or external PostgreSQL"
)
postgres_not_embedded_view = _bundled_view(
    "PostgreSQL",
    "postgres",
    bundled_postgres,
    Status.FAIL,
    "a single node with no failover; move to a managed PostgreSQL",
)


# --- ClickHouse size and replicas: items 19, 20, 24 ----------------------------------------------


def clickhouse_replicas_view(clients: Clients, params: Mapping[str, Any], not_asked: str) -> Evidence:
    ev = clickhouse_replicas(clients, params)
    return replace(ev, summary=f"{ev.summary.rstrip('.')}; {not_asked}.")


def clickhouse_replicas_max_view(clients: Clients, params: Mapping[str, Any], not_asked: str) -> Evidence:
    cluster = clients.cluster
    facts = clickhouse_facts(cluster)
    if facts is None:
        ev = external_clickhouse(cluster, Status.MANUAL)
        return replace(ev, summary=f"{ev.summary.rstrip('.')}; {not_asked}.")
    limit = int(params["max"])
    status = Status.FAIL if facts["replicas"] > limit else Status.PASS
    return Evidence(
        status,
        f"StatefulSet {facts['statefulset']} runs {facts['replicas']} ClickHouse replica(s); guardrail: at "
        f"most {limit} ({not_asked}).",
        facts,
        {"max": limit},
    )


def clickhouse_node_size_view(clients: Clients, params: Mapping[str, Any], not_asked: str) -> Evidence:
    ev = clickhouse_node_size(clients, params)
    return replace(ev, summary=f"{ev.summary.rstrip('.')}; {not_asked}.")


# --- Monitoring: items 4, 5, 13, 29 --------------------------------------------------------------


def _scrapers(cluster: Any, store: str) -> list[str]:
    return scrape_coverage(cluster)[store]


def with_scraping(probe: ProbeFn, store: str) -> ProbeFn:
    """A monitoring item: the datastore's own readings, and what in the cluster scrapes it.

    Healthy readings with nothing visible scraping the datastore are `manual` (healthy now is not
    watched); without cluster input the readings alone decide, as before.
    """

    def scraping_only(clients: Clients, params: Mapping[str, Any], not_asked: str) -> Evidence:
        cluster = clients.cluster
        via = _scrapers(cluster, store)
        if via:
            return Evidence(
                Status.PASS,
                f"{store} is scraped by {', '.join(via[:3])} in the cluster; {not_asked}.",
                {"scraped_by": via},
            )
        return Evidence(
            Status.MANUAL,
            f"No ServiceMonitor, PodMonitor or exporter for {store} is visible in namespace "
            f"{cluster.namespace} and {not_asked}; attest if it is monitored elsewhere.",
            {"scraped_by": []},
        )

    fallback = or_cluster(probe, store, scraping_only)

    @functools.wraps(probe)
    def run(clients: Clients, params: Mapping[str, Any]) -> Evidence:
        ev = fallback(clients, params)
        if ev.observed.get("from") == "cluster":
            return ev
        via = cluster_lookup(clients, lambda cluster: _scrapers(cluster, store))
        if via is None:  # no cluster input, or it could not be read: the readings alone
            return ev
        observed = {**ev.observed, "scraped_by": via}
        if via:
            return replace(ev, summary=f"{ev.summary} Scraped by {', '.join(via[:3])}.", observed=observed)
        unwatched = f"Nothing in namespace {clients.cluster.namespace} scrapes {store}"
        if ev.status is Status.PASS:
            return replace(
                ev,
                status=Status.MANUAL,
                summary=f"{ev.summary} {unwatched} (no ServiceMonitor, PodMonitor or exporter): attest if "
                "it is monitored elsewhere.",
                observed=observed,
            )
        return replace(ev, summary=f"{ev.summary} {unwatched}.", observed=observed)

    return run


def extend(probes: Mapping[str, ProbeFn]) -> dict[str, ProbeFn]:
    """The datastore probes that can also answer from the cluster, in place of the bare ones."""
    return {
        **probes,
        "redis.external": or_cluster(probes["redis.external"], "Redis", redis_external_view),
        "postgres.managed": or_cluster(probes["postgres.managed"], "PostgreSQL", postgres_managed_view),
        "postgres.not_embedded": or_cluster(
            probes["postgres.not_embedded"], "PostgreSQL", postgres_not_embedded_view
        ),
        "clickhouse.replicas_min": or_cluster(
            probes["clickhouse.replicas_min"], "ClickHouse", clickhouse_replicas_view
        ),
        "clickhouse.replicas_max": or_cluster(
            probes["clickhouse.replicas_max"], "ClickHouse", clickhouse_replicas_max_view
        ),
        "clickhouse.node_size": or_cluster(
            probes["clickhouse.node_size"], "ClickHouse", clickhouse_node_size_view
        ),
        "redis.monitored": with_scraping(probes["redis.monitored"], "Redis"),
        "redis.eviction": with_scraping(probes["redis.eviction"], "Redis"),
        "postgres.monitoring": with_scraping(probes["postgres.monitoring"], "PostgreSQL"),
        "clickhouse.concurrency": with_scraping(probes["clickhouse.concurrency"], "ClickHouse"),
    }
