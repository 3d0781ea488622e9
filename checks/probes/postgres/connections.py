"""PostgreSQL connections: max_connections against worker demand, pooling and connection reuse."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from checks.clients import Clients
from checks.endpoints import PgEndpoint
from checks.model import Evidence, Status
from checks.probes.common import (
    cluster_lookup,
    grade_above,
    grade_high,
    pct,
    worst,
)
from checks.probes.postgres.server import POOLER_PORT, host_placement, server_facts
from checks.sessions import PostgresSession

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
