"""Redis placement item: a managed or external instance, not the bundled StatefulSet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks import endpoints
from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import Placement, classify_host, cluster_lookup

# DNS suffixes of managed Redis endpoints. Memorystore has none: it hands out private IPs.
MANAGED_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".cache.amazonaws.com", "AWS ElastiCache"),
    (".cache.amazonaws.com.cn", "AWS ElastiCache"),
    (".memorydb.amazonaws.com", "AWS MemoryDB"),
    (".redis.cache.windows.net", "Azure Cache for Redis"),
    (".redisenterprise.cache.azure.net", "Azure Cache for Redis Enterprise"),
    (".redis.azure.net", "Azure Managed Redis"),
    (".redis-cloud.com", "Redis Cloud"),
    (".redislabs.com", "Redis Cloud"),
    (".upstash.io", "Upstash"),
)


def server_hints(server: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """A provider named by `INFO server`, and the facts worth showing, from one INFO reply."""
    os_name = str(server.get("os", ""))
    executable = str(server.get("executable", ""))
    keys = ("redis_version", "redis_mode", "os", "executable", "config_file")
    facts = [f"{k}={server[k]}" for k in keys if k in server]
    if "elasticache" in os_name.lower():
        return "AWS ElastiCache", facts
    # Managed services mask the binary path; a self-run redis-server reports a real path or nothing.
    if executable == "-":
        facts.append("executable path hidden, as managed services do")
    return None, facts


def placement_verdict(place: Placement, bundled: str | None, hint: str | None) -> Status:
    """pass for managed, warn for bundled/in-cluster/local, manual when the address cannot tell."""
    if bundled or place.kind in ("in-cluster", "local"):
        return Status.WARN
    if place.kind == "managed" or hint:
        return Status.PASS
    return Status.MANUAL


def external(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's Redis is a managed or external instance, not the bundled StatefulSet."""
    server = clients.redis.info("server")  # first, so an unconfigured target fails as NotConfigured
    endpoint = endpoints.redis(clients.target.redis.url)
    place = classify_host(endpoint.host, MANAGED_SUFFIXES, ("redis",))
    hint, facts = server_hints(server)
    bundled = cluster_lookup(clients, bundled_redis)
    status = placement_verdict(place, bundled, hint)
    provider = place.provider or hint
    observed = {
        "endpoint": endpoint.display(),
        "placement": place.kind,
        "reason": place.reason,
        "provider": provider,
        "server": facts,
        "bundled_statefulset": bundled,
    }
    where = f"Redis at {endpoint.display()}"
    if status is Status.PASS:
        summary = (
            f"{where} is {provider} ({place.reason if place.provider else 'INFO server'}), a managed service."
        )
    elif bundled:
        summary = (
            f"{where} is served by the bundled StatefulSet {bundled}, a single in-cluster pod; "
            "use a managed Redis for significant write volume."
        )
    elif status is Status.WARN:
        summary = (
            f"{where} is {place.reason}, so it runs in-cluster or locally rather than as a managed "
            "service; use a managed Redis for significant write volume."
        )
    else:
        summary = (
            f"{where} is {place.reason}; confirm it is a managed or dedicated external Redis "
            "(Memorystore, for one, only has private IPs) and attest it."
        )
    return Evidence(status, summary, observed, {"expected": "managed or external Redis"})


def bundled_redis(cluster: Any) -> str | None:
    name = cluster.name("redis")
    return name if cluster.get("statefulsets", name) is not None else None
