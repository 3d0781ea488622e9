"""PostgreSQL probes: LangSmith's metadata store, latency-sensitive and connection-bound.

Every query is a SELECT (or a SHOW-like `current_setting`) in lsready's read-only session
(checks.clients.PostgresSession), and works for a role that has only `pg_monitor` and CONNECT
(deploy/grants/postgres.sql). A missing privilege raises, and the runner reports it as unknown.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks import endpoints
from checks.clients import Clients, PostgresSession
from checks.endpoints import PgEndpoint
from checks.model import Evidence, Status
from checks.probes.common import (
    Placement,
    classify_host,
    cluster_lookup,
    grade_above,
    grade_high,
    human_bytes,
    human_duration,
    pct,
    quantity,
    worst,
)

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


# --- Item: storage latency --------------------------------------------------------------------


def storage_latency(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Round-trip latency of trivial queries, with checkpoint and WAL timing as storage evidence."""
    pg = clients.postgres
    times = []
    for _ in range(int(params["samples"])):
        t0 = time.perf_counter()
        pg.query("SELECT 1")
        times.append((time.perf_counter() - t0) * 1000)
    query_ms = statistics.median(times)
    trips = getattr(pg, "round_trips_per_query", ROUND_TRIPS_PER_QUERY)
    roundtrip_ms = query_ms / trips
    observed: dict[str, Any] = {
        "roundtrip_ms": round(roundtrip_ms, 2),
        "query_ms_median": round(query_ms, 2),
        "query_ms_min": round(min(times), 2),
        "query_ms_max": round(max(times), 2),
        "round_trips_per_query": trips,
        **io_timing(pg),
    }
    warn_ms = params["roundtrip_warn_ms"]
    status = Status.WARN if roundtrip_ms > warn_ms else Status.PASS
    sync = observed.get("checkpoint_sync_ms_avg")
    sync_note = f", checkpoint fsync averages {sync:.0f} ms" if sync is not None else ""
    summary = (
        f"PostgreSQL answers a trivial query in {roundtrip_ms:.2f} ms per round trip (median of "
        f"{len(times)} read-only queries){sync_note}; warn above {warn_ms} ms, and this is latency "
        "evidence, not an IOPS measurement."
    )
    return Evidence(status, summary, observed, {"roundtrip_warn_ms": warn_ms})


def io_timing(pg: PostgresSession) -> dict[str, Any]:
    """Checkpoint, WAL and block-read timings the statistics views expose (zero unless timed)."""
    has_checkpointer = pg.query("SELECT to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL AS x")[0][
        "x"
    ]
    if has_checkpointer:  # PostgreSQL 17 moved checkpoint counters out of pg_stat_bgwriter
        cp = pg.query(
            "SELECT num_timed + num_requested AS checkpoints, write_time, sync_time FROM pg_stat_checkpointer"
        )[0]
    else:
        cp = pg.query(
            "SELECT checkpoints_timed + checkpoints_req AS checkpoints,"
            " checkpoint_write_time AS write_time, checkpoint_sync_time AS sync_time FROM pg_stat_bgwriter"
        )[0]
    out: dict[str, Any] = {"checkpoints": cp["checkpoints"]}
    if cp["checkpoints"]:
        out["checkpoint_write_ms_avg"] = round(cp["write_time"] / cp["checkpoints"], 1)
        out["checkpoint_sync_ms_avg"] = round(cp["sync_time"] / cp["checkpoints"], 1)
    timing = pg.query(
        "SELECT current_setting('track_io_timing') AS io, current_setting('track_wal_io_timing', true) AS wal"
    )[0]
    out["track_io_timing"] = timing["io"]
    wal = pg.query("SELECT * FROM pg_stat_wal")[0]
    # Columns differ by version (wal_sync moved to pg_stat_io in 18); use what is there.
    if timing["wal"] == "on" and wal.get("wal_sync"):
        out["wal_sync_ms_avg"] = round(wal["wal_sync_time"] / wal["wal_sync"], 3)
    if timing["io"] == "on":
        db = pg.query(
            "SELECT blks_read, blk_read_time FROM pg_stat_database WHERE datname = current_database()"
        )[0]
        if db["blks_read"]:
            out["block_read_ms_avg"] = round(db["blk_read_time"] / db["blks_read"], 3)
    return out


# --- Item: backups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archiving:
    """WAL archiving as pg_settings and pg_stat_archiver show it."""

    mode: str
    command: str
    library: str
    archived_count: int
    failed_count: int
    last_archived_age_s: float | None
    failed_after_success: bool

    @property
    def on(self) -> bool:
        command_set = self.command not in ("", "(disabled)")
        return self.mode in ("on", "always") and (command_set or bool(self.library))

    @property
    def tool(self) -> str:
        """The archiver's program name only: the rest of the command may hold credentials."""
        if self.library:
            return self.library
        first = self.command.split()[0] if self.command.split() else ""
        return first.rsplit("/", 1)[-1][:40]


def archiving(pg: PostgresSession) -> Archiving:
    """Archive settings and the archiver's last success and failure."""
    settings = {
        r["name"]: r["setting"] or ""
        for r in pg.query(
            "SELECT name, setting FROM pg_settings"
            " WHERE name IN ('archive_mode', 'archive_command', 'archive_library')"
        )
    }
    st = pg.query(
        "SELECT archived_count, failed_count,"
        " extract(epoch FROM now() - last_archived_time)::float AS age_s,"
        " coalesce(last_failed_time > last_archived_time, last_failed_time IS NOT NULL) AS failed_after"
        " FROM pg_stat_archiver"
    )[0]
    return Archiving(
        mode=settings.get("archive_mode", "off"),
        command=settings.get("archive_command", ""),
        library=settings.get("archive_library", ""),
        archived_count=st["archived_count"],
        failed_count=st["failed_count"],
        last_archived_age_s=st["age_s"],
        failed_after_success=bool(st["failed_after"]),
    )


def backups(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """WAL archiving works, or a managed service (which only a person can confirm) owns backups."""
    facts = server_facts(clients)
    arch = archiving(clients.postgres)
    receivers = [
        r["application_name"]
        for r in clients.postgres.query(
            "SELECT application_name FROM pg_stat_replication"
            " WHERE application_name ~* '(receivewal|barman|backrest)'"
        )
    ]
    max_age = params["archive_max_age_seconds"]
    observed = {
        **facts.observed(),
        "archive_mode": arch.mode,
        "archiver": (arch.tool or None) if arch.on else None,
        "archived_count": arch.archived_count,
        "failed_count": arch.failed_count,
        "last_archived_age_s": None if arch.last_archived_age_s is None else round(arch.last_archived_age_s),
        "wal_receivers": receivers,
    }
    status, summary = backup_verdict(facts, arch, receivers, max_age)
    return Evidence(status, summary, observed, {"archive_max_age_seconds": max_age})


def backup_verdict(
    facts: ServerFacts, arch: Archiving, receivers: Sequence[str], max_age: float
) -> tuple[Status, str]:
    """pass: archiving recently succeeded; manual: provider or external tool owns backups; else warn/fail."""
    if facts.managed:
        return Status.MANUAL, (
            f"PostgreSQL is {facts.placement.provider}, so backups are managed by the provider; attest that "
            "automated backups with point-in-time recovery are enabled and a restore was tested."
        )
    if arch.on and arch.failed_after_success:
        return Status.FAIL, (
            f"PostgreSQL WAL archiving ({arch.tool}) is failing: {arch.failed_count} failures and no success "
            "since the latest one; fix archive_command before relying on point-in-time recovery."
        )
    if arch.on and arch.archived_count and arch.last_archived_age_s is not None:
        age = human_duration(arch.last_archived_age_s, max_age)
        if arch.last_archived_age_s > max_age:
            return Status.WARN, (
                f"PostgreSQL WAL archiving ({arch.tool}) last succeeded {age} ago, longer than "
                f"{human_duration(max_age)}; check the archiver and set archive_timeout."
            )
        return Status.PASS, (
            f"PostgreSQL archives WAL with {arch.tool}: last success {age} ago (within "
            f"{human_duration(max_age)}), no failure since; restores still need rehearsing."
        )
    if arch.on:
        return Status.WARN, (
            f"PostgreSQL WAL archiving ({arch.tool}) is on but has archived nothing yet; "
            "confirm a segment reaches the archive."
        )
    if receivers:
        return Status.MANUAL, (
            f"PostgreSQL has no archive_command but streams WAL to {', '.join(receivers)}; attest that these "
            "backups run and restore."
        )
    return Status.FAIL, (
        f"PostgreSQL has archive_mode {arch.mode} and no managed-service backups or WAL receiver are "
        "visible; enable automated backups with point-in-time recovery."
    )


# --- Item: max_connections ------------------------------------------------------------------------


def max_connections(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Connections in use stay well under max_connections (minus the superuser reserve)."""
    row = clients.postgres.query(
        "SELECT current_setting('max_connections')::int AS max_connections,"
        " current_setting('superuser_reserved_connections')::int AS reserved,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use"
    )[0]
    usable = max(1, row["max_connections"] - row["reserved"])
    ratio = row["in_use"] / usable
    observed = {**row, "usable": usable, "used_ratio": round(ratio, 4)}
    threshold = {"warn_ratio": params["warn_ratio"], "fail_ratio": params["fail_ratio"]}
    status = grade_high(ratio, params["warn_ratio"], params["fail_ratio"])
    shown = pct(ratio, params["warn_ratio"], params["fail_ratio"])
    summary = (
        f"PostgreSQL has {row['in_use']} of {usable} usable connections in use ({shown}, "
        f"max_connections {row['max_connections']}); warn at {pct(params['warn_ratio'])}, "
        f"fail at {pct(params['fail_ratio'])}."
    )
    pool_size = params.get("pool_size_per_pod")
    demand = cluster_lookup(clients, lambda c: worker_pool_demand(c, int(pool_size))) if pool_size else None
    if demand:
        threshold["pool_size_per_pod"] = pool_size
        observed["worker_pools"] = demand
        if demand["connections_at_max"] > usable:
            status = worst(status, Status.WARN)
            summary = (
                f"PostgreSQL has {usable} usable connections but the queue, ingest-queue and listener "
                f"pools need {demand['connections_at_max']} at their replica maximum "
                f"({pool_size} per pod), with {row['in_use']} in use now ({pct(ratio)})."
            )
    return Evidence(status, summary, observed, threshold)


def worker_pool_demand(cluster: Any, pool_size: int) -> dict[str, Any] | None:
    """Connections the worker pods' asyncpg pools need at their autoscaling maximum."""
    limits: dict[str, int] = {}
    for hpa in cluster.objects("horizontalpodautoscalers"):
        spec = hpa.get("spec") or {}
        limits[(spec.get("scaleTargetRef") or {}).get("name", "")] = int(spec.get("maxReplicas") or 0)
    pods: dict[str, int] = {}
    for component in ("queue", "ingest-queue", "listener"):
        name = cluster.name(component)
        deployment = cluster.get("deployments", name)
        if deployment is not None:
            replicas = int((deployment.get("spec") or {}).get("replicas") or 1)
            pods[name] = max(replicas, limits.get(name, 0))
    if not pods:
        return None
    return {"pods_at_max": pods, "connections_at_max": sum(pods.values()) * pool_size}


# --- Item: pooling --------------------------------------------------------------------------------


def pooling(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """A connection pooler (PgBouncer or equivalent) is visible in front of PostgreSQL."""
    pg = clients.postgres
    facts = server_facts(clients)
    roles = [
        r["rolname"]
        for r in pg.query(
            "SELECT rolname FROM pg_roles WHERE rolname ~* '(pgbouncer|pgcat|odyssey|pooler)'"
            " ORDER BY 1 LIMIT 5"
        )
    ]
    apps = [
        r["application_name"]
        for r in pg.query(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE application_name ~* '(pgbouncer|pgcat|odyssey|pooler)' LIMIT 5"
        )
    ]
    status, summary = pooling_verdict(
        facts.endpoint, facts.server_port, roles + apps, params["pool_size_per_pod"]
    )
    observed = {
        "endpoint": facts.endpoint.display(),
        "url_port": facts.endpoint.port or 5432,
        "server_port": facts.server_port,
        "pooler_roles": roles,
        "pooler_clients": apps,
        "pool_size_per_pod": params["pool_size_per_pod"],
    }
    return Evidence(status, summary, observed, {"expected": "PgBouncer or equivalent in session mode"})


def pooling_verdict(
    endpoint: PgEndpoint, server_port: int | None, signs: Sequence[str], pool_size: int
) -> tuple[Status, str]:
    """pass when lsready's own path runs through a pooler, manual for indirect signs, warn for none."""
    host = (endpoint.host or endpoint.hostaddr or "").lower()
    url_port = endpoint.port or 5432
    session = "confirm it runs pool_mode = session, which LangSmith requires"
    if host_placement(endpoint).provider == "AWS RDS Proxy":
        return Status.PASS, f"PostgreSQL is reached through AWS RDS Proxy ({host}); {session}."
    if re.search(r"pgbouncer|pooler|pgcat|odyssey", host):
        return Status.PASS, f"PostgreSQL is reached through a pooler host ({host}); {session}."
    if url_port == POOLER_PORT and not endpoint.socket:
        return Status.PASS, f"PostgreSQL is reached on port {POOLER_PORT}, PgBouncer's port; {session}."
    if server_port and server_port != url_port:
        return Status.MANUAL, (
            f"lsready connects on port {url_port} but PostgreSQL listens on {server_port}, so a proxy or "
            f"pooler sits in between; {session} and attest it."
        )
    if signs:
        return Status.MANUAL, (
            f"PostgreSQL has pooler roles or clients ({', '.join(signs[:3])}) but lsready connects directly; "
            "confirm LangSmith connects through the pooler in session mode and attest it."
        )
    return Status.WARN, (
        "No PgBouncer visible from lsready's connection (direct port, no pooler roles or clients); "
        f"LangSmith pools per pod (ASYNCPG_POOL_MAX_SIZE {pool_size}), so add PgBouncer in session mode "
        "as pods scale out."
    )


# --- Item: connection reuse ------------------------------------------------------------------------


def connection_reuse(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Few new sessions per second and few very young backends: clients keep their connections."""
    pg = clients.postgres
    first = _session_count(pg)
    # No connection is held while sleeping, so other probes proceed while this one waits.
    time.sleep(float(params["sample_seconds"]))
    second = _session_count(pg)
    elapsed = max(1e-3, second["t"] - first["t"])
    rate = (second["sessions"] - first["sessions"]) / elapsed
    ages = backend_ages(pg)
    short_s = params["short_lived_seconds"]
    short = [a for a in ages if a < short_s]
    short_ratio = len(short) / len(ages) if ages else 0.0
    rate_status = grade_above(rate, params["sessions_per_s_warn"], params["sessions_per_s_fail"])
    young = len(short) >= params["short_lived_min"] and short_ratio >= params["short_lived_ratio_warn"]
    status = worst(rate_status, Status.WARN if young else Status.PASS)
    observed = {
        "new_sessions_per_s": round(rate, 2),
        "sample_seconds": round(elapsed, 2),
        "client_backends": len(ages),
        "short_lived": len(short),
        "short_lived_ratio": round(short_ratio, 3),
        "backend_age_s": _age_distribution(ages, short_s),
    }
    threshold = {
        k: params[k]
        for k in (
            "sessions_per_s_warn",
            "sessions_per_s_fail",
            "short_lived_seconds",
            "short_lived_ratio_warn",
        )
    }
    young_pct = pct(short_ratio, params["short_lived_ratio_warn"])
    summary = (
        f"PostgreSQL opened {rate:.1f} new sessions/s over {elapsed:.1f} s and {len(short)} of {len(ages)} "
        f"client backends are younger than {short_s} s ({young_pct}); warn above "
        f"{params['sessions_per_s_warn']}/s or {pct(params['short_lived_ratio_warn'])} young, fail above "
        f"{params['sessions_per_s_fail']}/s"
        + (" (looks like per-request connections)." if status is not Status.PASS else ".")
    )
    return Evidence(status, summary, observed, threshold)


def _session_count(pg: PostgresSession) -> dict[str, Any]:
    return pg.query(
        "SELECT sessions, extract(epoch FROM clock_timestamp())::float AS t"
        " FROM pg_stat_database WHERE datname = current_database()"
    )[0]


def backend_ages(pg: PostgresSession) -> list[float]:
    """Age in seconds of every client backend but ours (the session holds a few connections)."""
    rows = pg.query(
        "SELECT extract(epoch FROM now() - backend_start)::float AS age FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> ALL(%s::int[])"
        " AND backend_start IS NOT NULL",
        [pg.backend_pids()],
    )
    return [r["age"] for r in rows]


def _age_distribution(ages: Sequence[float], short_s: float) -> dict[str, Any]:
    buckets = {f"<{short_s}s": 0, "<60s": 0, "<1h": 0, ">=1h": 0}
    for age in ages:
        key = f"<{short_s}s" if age < short_s else "<60s" if age < 60 else "<1h" if age < 3600 else ">=1h"
        buckets[key] += 1
    median = round(statistics.median(ages), 1) if ages else None
    return {**buckets, "median": median}


# --- Item: monitoring -----------------------------------------------------------------------------


def monitoring(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """pg_stat_statements is installed, loaded and readable; slow queries and connections as evidence."""
    pg = clients.postgres
    ext = pg.query(
        "SELECT n.nspname AS schema, e.extversion AS version FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
    )
    conns = pg.query(
        "SELECT count(*) FILTER (WHERE state = 'active') AS active, count(*) AS total,"
        " current_setting('max_connections')::int AS max_connections,"
        " current_setting('shared_preload_libraries') AS preload, current_database() AS database"
        " FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )[0]
    observed: dict[str, Any] = {
        "active_connections": conns["active"],
        "connections": conns["total"],
        "max_connections": conns["max_connections"],
        "monitoring_clients": _monitoring_clients(pg),
    }
    where = f"PostgreSQL database {conns['database']}"
    if not ext:
        return Evidence(
            Status.WARN,
            f"{where} has no pg_stat_statements, so slow queries are invisible; install it "
            "(shared_preload_libraries, then CREATE EXTENSION pg_stat_statements) and export it.",
            {**observed, "pg_stat_statements": None},
            {"pg_stat_statements": "installed"},
        )
    observed["pg_stat_statements"] = ext[0]["version"]
    if "pg_stat_statements" not in conns["preload"]:
        return Evidence(
            Status.WARN,
            f"{where} has the pg_stat_statements extension but it is not in shared_preload_libraries, so "
            "it records nothing; add it and restart.",
            observed,
            {"pg_stat_statements": "loaded"},
        )
    slow = slow_queries(pg, ext[0]["schema"])
    observed["slow_queries"] = slow
    top = (
        f"; slowest statement averages {slow[0]['mean_ms']} ms over {slow[0]['calls']} calls" if slow else ""
    )
    return Evidence(
        Status.PASS,
        f"{where} has pg_stat_statements {ext[0]['version']} loaded and readable{top}, and "
        f"{conns['active']} of {conns['total']} connections are active "
        f"(max_connections {conns['max_connections']}).",
        observed,
        {"pg_stat_statements": "loaded"},
    )


def slow_queries(pg: PostgresSession, schema: str, limit: int = 5) -> list[dict[str, Any]]:
    """Top statements by mean time; texts are normalized by pg_stat_statements and cut to 120 chars."""
    ident = '"' + schema.replace('"', '""') + '"'
    rows = pg.query(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query, calls,"
        f" round(mean_exec_time::numeric, 2)::float AS mean_ms FROM {ident}.pg_stat_statements"
        " ORDER BY mean_exec_time DESC LIMIT %s",
        [limit],
    )
    return [dict(r) for r in rows]


def _monitoring_clients(pg: PostgresSession) -> list[str]:
    # An exporter or agent polling PostgreSQL is evidence that someone watches these numbers.
    rows = pg.query(
        "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name"
        " ~* '(exporter|datadog|pganalyze|pgwatch|newrelic|telegraf|zabbix|otel|cloudwatch)' LIMIT 5"
    )
    return [r["application_name"] for r in rows]


# --- Item: disk ---------------------------------------------------------------------------------


def disk(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Database and WAL sizes against the volume when Kubernetes shows it; else a person confirms alerting."""
    pg = clients.postgres
    sizes = pg.query(
        "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database"
        " WHERE datallowconn ORDER BY 2 DESC"
    )
    wal = pg.query("SELECT coalesce(sum(size), 0)::bigint AS bytes, count(*) AS files FROM pg_ls_waldir()")[0]
    total = sum(r["bytes"] for r in sizes) + wal["bytes"]
    observed: dict[str, Any] = {
        "databases": {r["datname"]: r["bytes"] for r in sizes[:10]},
        "wal_bytes": wal["bytes"],
        "used_bytes": total,
    }
    threshold = {"warn_ratio": params["warn_ratio"], "fail_ratio": params["fail_ratio"]}
    pvc = cluster_lookup(clients, _postgres_pvc)
    status, summary = disk_verdict(total, pvc, params)
    if pvc:
        observed["volume"] = pvc
    return Evidence(status, summary, observed, threshold)


def disk_verdict(used: float, pvc: Mapping[str, Any] | None, params: Mapping[str, Any]) -> tuple[Status, str]:
    """Grade used/capacity when the capacity is known, else ask a person to confirm the alert."""
    warn, fail = params["warn_ratio"], params["fail_ratio"]
    if not pvc or not pvc.get("capacity_bytes"):
        return Status.MANUAL, (
            f"PostgreSQL data and WAL total {human_bytes(used)} but the volume size is not visible over "
            f"SQL; verify your monitoring alerts on its disk above {pct(warn)} (e.g. RDS FreeStorageSpace) "
            "and attest it."
        )
    ratio = used / pvc["capacity_bytes"]
    return grade_high(ratio, warn, fail), (
        f"PostgreSQL data and WAL use at least {human_bytes(used)} of PVC {pvc['name']} "
        f"({human_bytes(pvc['capacity_bytes'])}, {pct(ratio, warn, fail)}); warn at {pct(warn)}, "
        f"fail at {pct(fail)}."
    )


def _postgres_pvc(cluster: Any) -> dict[str, Any] | None:
    name = f"data-{cluster.name('postgres')}-0"
    pvc = cluster.get("persistentvolumeclaims", name)
    if pvc is None:
        return None
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    return {
        "name": name,
        "capacity": capacity,
        "capacity_bytes": quantity(capacity) if capacity else None,
    }


# --- Item: autovacuum -----------------------------------------------------------------------------


def autovacuum(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Autovacuum is on, no table is bloated with stale dead tuples, and XID age is far from wraparound."""
    pg = clients.postgres
    settings = {
        r["name"]: r["setting"]
        for r in pg.query(
            "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts')"
        )
    }
    bloated = dead_tuple_tables(pg, params)
    xid = pg.query(
        "SELECT datname, age(datfrozenxid)::bigint AS xid_age FROM pg_database ORDER BY 2 DESC LIMIT 1"
    )[0]
    observed = {
        "settings": settings,
        "tables_over_threshold": bloated[0]["total"] if bloated else 0,
        "top_tables": [{k: v for k, v in t.items() if k != "total"} for t in bloated],
        "max_xid_age": xid["xid_age"],
        "oldest_xid_database": xid["datname"],
    }
    threshold = {
        k: params[k]
        for k in (
            "dead_tuple_ratio",
            "min_dead_tuples",
            "stale_vacuum_seconds",
            "xid_age_warn",
            "xid_age_fail",
        )
    }
    status, summary = autovacuum_verdict(settings, bloated, xid, params)
    return Evidence(status, summary, observed, threshold)


def dead_tuple_tables(pg: PostgresSession, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The 5 tables with most dead tuples above the ratio and count and no recent (auto)vacuum."""
    return pg.query(
        "SELECT s.schemaname || '.' || s.relname AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,"
        " round((s.n_dead_tup::float / greatest(s.n_live_tup + s.n_dead_tup, 1))::numeric, 3)::float"
        " AS ratio,"
        " extract(epoch FROM now() - greatest(s.last_autovacuum, s.last_vacuum))::float AS since_vacuum_s,"
        " coalesce(array_to_string(c.reloptions, ','), '') AS reloptions, count(*) OVER () AS total"
        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.n_dead_tup > %(min_dead)s"
        " AND s.n_dead_tup::float / greatest(s.n_live_tup + s.n_dead_tup, 1) > %(ratio)s"
        " AND coalesce(greatest(s.last_autovacuum, s.last_vacuum) < now() - make_interval(secs => %(stale)s),"
        " true) ORDER BY s.n_dead_tup DESC LIMIT 5",
        {
            "min_dead": int(params["min_dead_tuples"]),
            "ratio": float(params["dead_tuple_ratio"]),
            "stale": float(params["stale_vacuum_seconds"]),
        },
    )


def autovacuum_verdict(
    settings: Mapping[str, str],
    bloated: Sequence[Mapping[str, Any]],
    xid: Mapping[str, Any],
    params: Mapping[str, Any],
) -> tuple[Status, str]:
    """fail: autovacuum or stats off, or XID age past fail; warn: bloated tables or XID age past warn."""
    off = [name for name in ("autovacuum", "track_counts") if settings.get(name) != "on"]
    xid_status = grade_high(xid["xid_age"], params["xid_age_warn"], params["xid_age_fail"])
    xid_text = (
        f"max XID age {xid['xid_age']:,} "
        f"(warn at {params['xid_age_warn']:,}, fail at {params['xid_age_fail']:,})"
    )
    if off:
        return Status.FAIL, (
            f"PostgreSQL has {' and '.join(off)} off, so dead tuples pile up and XID wraparound looms; "
            f"turn {'them' if len(off) > 1 else 'it'} on ({xid_text})."
        )
    if xid_status is Status.FAIL:
        return Status.FAIL, f"PostgreSQL database {xid['datname']} is near XID wraparound: {xid_text}."
    if bloated:
        top = bloated[0]
        return Status.WARN, (
            f"PostgreSQL has {top['total']} table(s) with stale dead tuples, worst {top['name']} at "
            f"{top['dead']:,} dead ({pct(top['ratio'], params['dead_tuple_ratio'])}, "
            f"over {pct(params['dead_tuple_ratio'])}) and no "
            f"vacuum in {human_duration(params['stale_vacuum_seconds'])}; {xid_text}."
        )
    if xid_status is Status.WARN:
        return (
            Status.WARN,
            f"PostgreSQL database {xid['datname']} is aging toward XID wraparound: {xid_text}.",
        )
    return Status.PASS, (
        f"PostgreSQL autovacuum and track_counts are on, no table has more than "
        f"{pct(params['dead_tuple_ratio'])} stale dead tuples, and {xid_text}."
    )


PROBES = {
    "postgres.managed": managed,
    "postgres.not_embedded": not_embedded,
    "postgres.storage_latency": storage_latency,
    "postgres.backups": backups,
    "postgres.max_connections": max_connections,
    "postgres.pooling": pooling,
    "postgres.connection_reuse": connection_reuse,
    "postgres.monitoring": monitoring,
    "postgres.disk": disk,
    "postgres.autovacuum": autovacuum,
}
