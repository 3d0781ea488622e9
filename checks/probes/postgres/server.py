"""Where LangSmith's PostgreSQL runs: managed or bundled, the server's facts and extensions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks import endpoints
from checks.clients import Clients
from checks.endpoints import PgEndpoint
from checks.model import Evidence, Status
from checks.probes.common import (
    Placement,
    classify_host,
    cluster_lookup,
)
from checks.sessions import PostgresSession

REQUIRED_EXTENSIONS = ("btree_gin", "btree_gist", "pgcrypto", "citext", "pg_trgm")
MANAGED_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".rds.amazonaws.com", "AWS RDS"),
    (".rds.amazonaws.com.cn", "AWS RDS"),
    (".postgres.database.azure.com", "Azure Database for PostgreSQL"),
    (".postgres.cosmos.azure.com", "Azure Cosmos DB for PostgreSQL"),
    (".supabase.co", "Supabase"),
    (".supabase.com", "Supabase"),
    (".neon.tech", "Neon"),
    (".aivencloud.com", "Aiven"),
    (".db.ondigitalocean.com", "DigitalOcean Managed Databases"),
)
# Settings only a provider's build registers; visible in pg_settings to pg_monitor.
SETTING_PROVIDERS = (
    ("rds.", "AWS RDS"),
    ("cloudsql.", "Google Cloud SQL"),
    ("alloydb.", "Google AlloyDB"),
    ("azure.", "Azure Database for PostgreSQL"),
)
POOLER_PORT = 6432  # PgBouncer's default, also Azure Flexible Server's built-in PgBouncer
# A query through PostgresSession is one round trip: the session is read-only with a statement
# timeout from its startup options. Behind a pooler that refuses them it is four (BEGIN, SET LOCAL,
# the statement, COMMIT); storage_latency divides by the session's own `round_trips_per_query`.
ROUND_TRIPS_PER_QUERY = 1


# --- Where the server runs ----------------------------------------------------------------------


def host_placement(endpoint: PgEndpoint) -> Placement:
    """Where the address alone says PostgreSQL runs."""
    if endpoint.socket:
        if "/cloudsql/" in f"{endpoint.socket}/":
            return Placement("managed", "a Cloud SQL Auth Proxy socket (/cloudsql/...)", "Google Cloud SQL")
        return Placement("local", f"a Unix socket ({endpoint.socket}) on the lsready host")
    host = endpoint.host or endpoint.hostaddr
    place = classify_host(host, MANAGED_SUFFIXES, ("postgres", "postgresql"))
    if place.provider == "AWS RDS":
        labels = (host or "").lower().split(".")
        if any(label.startswith("proxy-") for label in labels):
            return Placement("managed", place.reason, "AWS RDS Proxy")
        if any(label.startswith("cluster-") for label in labels):
            return Placement("managed", place.reason, "AWS Aurora")
    return place


def server_provider(
    settings: Sequence[str], rds_superuser: bool, aurora: str | None
) -> tuple[str | None, str]:
    """A provider named by the server itself (provider settings, roles, functions), and why."""
    if aurora:
        return "AWS Aurora", f"aurora_version() {aurora}"
    for prefix, provider in SETTING_PROVIDERS:
        names = [s for s in settings if s.startswith(prefix)]
        if names:
            return provider, f"{prefix}* settings ({', '.join(names[:3])})"
    if rds_superuser:
        return "AWS RDS", "the rds_superuser role exists"
    return None, ""


@dataclass(frozen=True)
class ServerFacts:
    """What the address and the server say about where and what PostgreSQL is."""

    endpoint: PgEndpoint
    placement: Placement
    version_num: int
    server_version: str
    version: str
    database: str
    server_port: int | None
    in_recovery: bool
    provider_settings: list[str] = field(default_factory=list)

    @property
    def managed(self) -> bool:
        return self.placement.kind == "managed"

    def observed(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint.display(),
            "placement": self.placement.kind,
            "reason": self.placement.reason,
            "provider": self.placement.provider,
            "server_version": self.server_version,
            "version": self.version,
            "database": self.database,
            "in_recovery": self.in_recovery,
            "provider_settings": self.provider_settings[:10],
        }


def server_facts(clients: Clients) -> ServerFacts:
    """Provider, version and address of the target's PostgreSQL, from the URL and the server."""
    pg = clients.postgres
    row = pg.query(
        "SELECT current_setting('server_version_num')::int AS version_num,"
        " current_setting('server_version') AS server_version, version() AS version,"
        " current_database() AS database, inet_server_port() AS server_port,"
        " pg_is_in_recovery() AS in_recovery,"
        " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser') AS rds_superuser,"
        " EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'aurora_version') AS has_aurora"
    )[0]
    settings = [
        r["name"]
        for r in pg.query(
            "SELECT name FROM pg_settings WHERE name LIKE 'rds.%' OR name LIKE 'cloudsql.%'"
            " OR name LIKE 'alloydb.%' OR name LIKE 'azure.%' ORDER BY name"
        )
    ]
    aurora = pg.query("SELECT aurora_version() AS v")[0]["v"] if row["has_aurora"] else None
    endpoint = endpoints.postgres(clients.target.postgres.url)
    place = host_placement(endpoint)
    provider, why = server_provider(settings, row["rds_superuser"], aurora)
    if provider and place.kind != "managed":
        place = Placement("managed", why, provider)
    return ServerFacts(
        endpoint=endpoint,
        placement=place,
        version_num=row["version_num"],
        server_version=row["server_version"],
        version=row["version"],
        database=row["database"],
        server_port=row["server_port"],
        in_recovery=row["in_recovery"],
        provider_settings=settings,
    )


def bundled_postgres(cluster: Any) -> dict[str, Any] | None:
    name = cluster.name("postgres")
    sts = cluster.get("statefulsets", name)
    if sts is None:
        return None
    return {"name": name, "replicas": (sts.get("spec") or {}).get("replicas", 1)}


def extensions(pg: PostgresSession) -> dict[str, Any]:
    """LangSmith's required extensions: installed here, available to install, or missing."""
    rows = pg.query(
        "SELECT name, installed_version FROM pg_available_extensions WHERE name = ANY(%s)",
        [list(REQUIRED_EXTENSIONS)],
    )
    available = {r["name"]: r["installed_version"] for r in rows}
    return {
        "installed": sorted(n for n, v in available.items() if v),
        "not_installed": sorted(n for n, v in available.items() if not v),
        "unavailable": [n for n in REQUIRED_EXTENSIONS if n not in available],
    }


# --- Items: managed, not embedded ----------------------------------------------------------------


def managed(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """PostgreSQL is managed or externally hosted, version >= 14, with LangSmith's extensions available."""
    facts = server_facts(clients)
    ext = extensions(clients.postgres)
    bundled = cluster_lookup(clients, bundled_postgres)
    min_version = int(params["min_version"])
    observed = {**facts.observed(), "extensions": ext, "bundled_statefulset": bundled}
    threshold = {"min_version": min_version, "required_extensions": list(REQUIRED_EXTENSIONS)}
    where = f"PostgreSQL at {facts.endpoint.display()}"
    version = f"version {facts.server_version}"
    if facts.version_num < min_version * 10000:
        return Evidence(
            Status.FAIL,
            f"{where} runs {version}, below LangSmith's minimum {min_version}; upgrade it.",
            observed,
            threshold,
        )
    if bundled and facts.managed:
        return Evidence(Status.WARN, _both_summary(where, facts, bundled), observed, threshold)
    if bundled or facts.placement.kind == "in-cluster":
        why = f"the bundled StatefulSet {bundled['name']}" if bundled else facts.placement.reason
        return Evidence(
            Status.FAIL,
            f"{where} ({version}) runs inside the cluster ({why}), not on a managed or external host.",
            observed,
            threshold,
        )
    if ext["unavailable"]:
        return Evidence(
            Status.WARN,
            f"{where} ({version}) cannot install LangSmith's required extensions "
            f"{', '.join(ext['unavailable'])}; use a server that ships them (contrib).",
            observed,
            threshold,
        )
    if facts.managed:
        return Evidence(
            Status.PASS,
            f"{where} is {facts.placement.provider} ({facts.placement.reason}), {version}, "
            f"at least the required {min_version}.",
            observed,
            threshold,
        )
    return Evidence(
        Status.MANUAL,
        f"{where} ({version}) is {facts.placement.reason}, which names no managed service; "
        "confirm it is a managed or dedicated external server and attest it.",
        observed,
        threshold,
    )


def not_embedded(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith does not use the bundled single-replica PostgreSQL StatefulSet."""
    facts = server_facts(clients)
    standbys = int(clients.postgres.query("SELECT count(*) AS n FROM pg_stat_replication")[0]["n"])
    bundled = cluster_lookup(clients, bundled_postgres)
    observed = {**facts.observed(), "streaming_standbys": standbys, "bundled_statefulset": bundled}
    threshold = {"expected": "managed service or an external server with a standby"}
    where = f"PostgreSQL at {facts.endpoint.display()}"
    if bundled and facts.managed:
        return Evidence(Status.WARN, _both_summary(where, facts, bundled), observed, threshold)
    if bundled:
        summary = (
            f"{where} is the bundled StatefulSet {bundled['name']} ({bundled['replicas']} replica), a "
            "single node with no failover; move to a managed PostgreSQL."
        )
        return Evidence(Status.FAIL, summary, observed, threshold)
    if facts.placement.kind == "in-cluster":
        summary = (
            f"{where} is {facts.placement.reason}, so it runs in the cluster like the embedded single-node "
            "database; move to a managed PostgreSQL."
        )
        return Evidence(Status.FAIL, summary, observed, threshold)
    if facts.managed:
        summary = (
            f"{where} is {facts.placement.provider}, not the embedded single node; keep its "
            "high-availability option (Multi-AZ, regional) on."
        )
        return Evidence(Status.PASS, summary, observed, threshold)
    if standbys:
        summary = (
            f"{where} is an external server with {standbys} streaming standby(s), not a single embedded node."
        )
        return Evidence(Status.PASS, summary, observed, threshold)
    cluster_note = (
        "" if clients.has("kubernetes") else " (add the kubernetes section to look for the StatefulSet)"
    )
    summary = (
        f"{where} is {facts.placement.reason} with no streaming standby visible; confirm it is not a "
        f"single embedded node{cluster_note} and attest it."
    )
    return Evidence(Status.MANUAL, summary, observed, threshold)


def _both_summary(where: str, facts: ServerFacts, bundled: Mapping[str, Any]) -> str:
    return (
        f"{where} is {facts.placement.provider}, but the bundled StatefulSet {bundled['name']} also exists; "
        "make sure LangSmith's postgres.external settings point at the managed server, then remove it."
    )
