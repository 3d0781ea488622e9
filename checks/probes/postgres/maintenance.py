"""PostgreSQL upkeep: monitoring (pg_stat_statements, slow queries) and autovacuum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import (
    grade_high,
    human_duration,
    pct,
)
from checks.sessions import PostgresSession

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
