"""Raw reads for a support bundle: what LangSmith's support asks for, each read bounded like a probe.

The equivalents of the chart's `scripts/get_k8s_debugging_info.sh` (objects, events by time, pod
states, logs since a time and the previous container's logs where it restarted) and of
`scripts/support_queries/` (ClickHouse disk per replica, query exceptions and hourly statistics,
trace counts per workspace per day; PostgreSQL counts), plus Redis INFO and queue lengths.
ClickHouse queries go through `ClickHouseSession.query` (readonly, max_execution_time, a
`-- lsready:bundle_*` comment); query text is collected only as `normalizeQuery` leaves it (literals
replaced by `?`), so no run payload or literal secret is read. Nothing here reads a Secret or a key's
value in Redis. Callers scrub what these return before it is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.backends import describe
from checks.cluster import Cluster
from checks.sessions import ClickHouseSession, PostgresSession

# Kinds a bundle lists (beyond events): workloads, their pods, how they are reached and scaled, storage.
BUNDLE_KINDS = (
    "deployments",
    "statefulsets",
    "pods",
    "services",
    "ingresses",
    "horizontalpodautoscalers",
    "scaledobjects",
    "persistentvolumeclaims",
    "storageclasses",
    "configmaps",
    "nodes",
)
MAX_ROWS = 2000  # per support query
QUERY_TEXT_CHARS = 500  # of a normalized query


# -- Kubernetes -----------------------------------------------------------------------------------


def node_summary(node: dict[str, Any]) -> dict[str, Any]:
    """What support needs of a node: labels, capacity, allocatable, conditions, taints, versions."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    info = status.get("nodeInfo") or {}
    return {
        "name": meta.get("name"),
        "labels": meta.get("labels") or {},
        "providerID": spec.get("providerID"),
        "unschedulable": spec.get("unschedulable", False),
        "taints": spec.get("taints") or [],
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "lastTransitionTime")}
            for c in status.get("conditions") or []
        ],
        "kubeletVersion": info.get("kubeletVersion"),
        "osImage": info.get("osImage"),
        "containerRuntimeVersion": info.get("containerRuntimeVersion"),
    }


def pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    """Phase, conditions and each container's state, restarts and last termination, like `describe`."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = []
    for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        last = (c.get("lastState") or {}).get("terminated") or {}
        containers.append(
            {
                "name": c.get("name"),
                "ready": c.get("ready"),
                "restartCount": c.get("restartCount", 0),
                "state": c.get("state") or {},
                "lastTermination": {k: last.get(k) for k in ("reason", "exitCode", "finishedAt")}
                if last
                else None,
                "image": c.get("image"),
            }
        )
    return {
        "name": meta.get("name"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": status.get("phase"),
        "reason": status.get("reason"),
        "conditions": status.get("conditions") or [],
        "containers": containers,
    }


def event_time(event: dict[str, Any]) -> str:
    """When an event last happened: lastTimestamp, else eventTime, else its creation (as kubectl sorts)."""
    meta = event.get("metadata") or {}
    return str(event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or "")


def sorted_events(cluster: Cluster) -> list[dict[str, Any]]:
    """The namespace's events, oldest first, like `kubectl get events --sort-by=.lastTimestamp`."""
    events = cluster.events()
    for e in events:
        (e.get("metadata") or {}).pop("managedFields", None)
    return sorted(events, key=event_time)


def restarted(pod: dict[str, Any]) -> dict[str, int]:
    """Containers of the pod that restarted, with their restart counts."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return {str(c.get("name")): int(c.get("restartCount") or 0) for c in statuses if c.get("restartCount")}


def containers(pod: dict[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]


# -- ClickHouse -----------------------------------------------------------------------------------


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _on_replicas(ch: ClickHouseSession, table: str) -> str:
    return f"clusterAllReplicas({_literal(ch.cluster)}, {table})" if ch.cluster else table


def _remote(ch: ClickHouseSession) -> str:
    return " SETTINGS skip_unavailable_shards = 1" if ch.cluster else ""


def _kind_expr(column: str = "query") -> str:
    # LangSmith starts each query with a `-- <name>` line: the kind, as the chart's hourly statistics.
    return f"if(startsWith({column}, '--'), trim(substring(splitByChar('\\n', {column})[1], 3, 120)), '')"


def clickhouse_queries(ch: ClickHouseSession, since_s: int) -> dict[str, str]:
    """Support query name -> SQL, for this session's database and cluster."""
    db = _literal(ch.database)
    since = f"now() - INTERVAL {int(since_s)} SECOND"
    query_log = _on_replicas(ch, "system.query_log")
    text = f"left(normalizeQuery(query), {QUERY_TEXT_CHARS})"
    return {
        # ch_get_pvc_status.sql
        "disks": (
            "SELECT hostName() AS host, name, path, type, free_space, total_space, "
            "round(100.0 * free_space / nullIf(total_space, 0), 1) AS pct_free "
            f"FROM {_on_replicas(ch, 'system.disks')} WHERE type != 'ObjectStorage' "
            f"ORDER BY host, name LIMIT {MAX_ROWS}{_remote(ch)}"
        ),
        # ch_get_query_exceptions.sql, without the query's literals
        "query_exceptions": (
            f"SELECT hostName() AS host, event_time, type, exception_code, {_kind_expr()} AS query_kind, "
            f"normalized_query_hash, {text} AS query_normalized, left(exception, 1000) AS exception, user "
            f"FROM {query_log} WHERE exception != '' AND event_time >= {since} "
            f"AND event_date >= toDate({since}) ORDER BY event_time DESC LIMIT {MAX_ROWS}{_remote(ch)}"
        ),
        # ch_get_query_stats_hourly.sql
        "query_stats_hourly": (
            "SELECT toStartOfHour(query_start_time) AS hour, "
            f"{_kind_expr()} AS query_kind, "
            "countIf(type = 'QueryFinish') AS completed, "
            "countIf(type = 'ExceptionBeforeStart') AS exception_before_start, "
            "countIf(type = 'ExceptionWhileProcessing') AS exception_while_processing, "
            "round(avgIf(query_duration_ms, type != 'ExceptionBeforeStart') / 1000, 3) AS avg_s, "
            "round(maxIf(query_duration_ms, type != 'ExceptionBeforeStart') / 1000, 3) AS max_s, "
            "sum(read_rows) AS read_rows, sum(read_bytes) AS read_bytes, "
            "max(memory_usage) AS max_memory_bytes, "
            "groupUniqArrayIf(5)(exception_code, exception_code != 0) AS exception_codes "
            f"FROM {query_log} WHERE type != 'QueryStart' AND event_time >= {since} "
            f"AND event_date >= toDate({since}) AND startsWith(query, '--') "
            f"GROUP BY hour, query_kind ORDER BY hour DESC, avg_s DESC LIMIT {MAX_ROWS}{_remote(ch)}"
        ),
        "processes": (
            f"SELECT hostName() AS host, elapsed, user, {_kind_expr()} AS query_kind, "
            f"normalized_query_hash, {text} AS query_normalized, read_rows, memory_usage "
            f"FROM {_on_replicas(ch, 'system.processes')} ORDER BY elapsed DESC LIMIT 200{_remote(ch)}"
        ),
        # ch_get_current_trace_counts_by_ws_daily.sql (uniq: a full count(distinct) is too heavy mid-incident)
        "trace_counts_daily": (
            "SELECT toDate(inserted_at) AS day, tenant_id AS workspace_id, uniq(id) AS traces "
            f"FROM {_ident(ch.database)}.runs WHERE is_root = 1 AND inserted_at >= {since} "
            f"GROUP BY day, workspace_id ORDER BY day, workspace_id LIMIT {MAX_ROWS}"
        ),
        "parts_per_partition": (
            "SELECT hostName() AS host, database, table, partition, count() AS parts, sum(rows) AS rows, "
            "sum(bytes_on_disk) AS bytes_on_disk "
            f"FROM {_on_replicas(ch, 'system.parts')} WHERE active AND database = {db} "
            f"GROUP BY host, database, table, partition ORDER BY parts DESC LIMIT 500{_remote(ch)}"
        ),
        "merges": (
            "SELECT hostName() AS host, database, table, round(elapsed, 1) AS elapsed, "
            "round(progress, 3) AS progress, num_parts, result_part_name, total_size_bytes_compressed, "
            f"memory_usage, is_mutation FROM {_on_replicas(ch, 'system.merges')} "
            f"ORDER BY elapsed DESC LIMIT 200{_remote(ch)}"
        ),
        "mutations": (
            "SELECT hostName() AS host, database, table, mutation_id, create_time, parts_to_do, is_done, "
            "latest_fail_time, left(latest_fail_reason, 500) AS latest_fail_reason "
            f"FROM {_on_replicas(ch, 'system.mutations')} WHERE NOT is_done OR latest_fail_reason != '' "
            f"ORDER BY create_time DESC LIMIT 200{_remote(ch)}"
        ),
    }


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def run_support_queries(
    ch: ClickHouseSession, since_s: int, add: Callable[[str, Any], None], fail: Callable[[str, str], None]
) -> None:
    """Each query's rows to `add(name, rows)`; a query the server refuses goes to `fail(name, why)`.

    A transport failure (timeout, refused connection) ends the whole read: the next query would only
    wait as long again.
    """
    from checks.probes.clickhouse.reads import UNKNOWN_TABLE, error_code

    for name, sql in clickhouse_queries(ch, since_s).items():
        try:
            rows = ch.query(f"bundle_{name}", sql)
        except Exception as exc:
            code = error_code(exc)
            if code is None:
                raise
            if code == UNKNOWN_TABLE and "system.query_log" in sql:
                add(name, {"note": "system.query_log is not enabled on this server"})
            else:
                fail(name, describe(exc))
            continue
        add(name, rows)


# -- Redis ----------------------------------------------------------------------------------------

INFO_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keyspace")


def redis_support(r: Any) -> dict[str, Any]:
    """INFO (no key's contents), queue lengths, and connected clients counted by name and command."""
    from checks.probes.redis import queue_depths

    info = {section: r.info(section) for section in INFO_SECTIONS}
    clients: dict[tuple[str, str], int] = {}
    for c in r.client_list():
        key = (str(c.get("name") or ""), str(c.get("cmd") or ""))
        clients[key] = clients.get(key, 0) + 1
    return {
        "info": info,
        "queues": [q.to_dict() for q in queue_depths(r)],
        "clients": [
            {"name": name, "last_command": cmd, "connections": n}
            for (name, cmd), n in sorted(clients.items(), key=lambda kv: -kv[1])
        ],
    }


# -- PostgreSQL -----------------------------------------------------------------------------------

PG_SETTINGS = (
    "max_connections",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "max_wal_size",
    "wal_level",
    "autovacuum",
    "ssl",
    "server_version",
)

PG_QUERIES = {
    "version": "SELECT version() AS version",
    "settings": "SELECT name, setting, unit, source FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
    "databases": (
        "SELECT datname AS database, pg_database_size(datname) AS bytes FROM pg_database "
        "WHERE datallowconn ORDER BY bytes DESC"
    ),
    "connections": (
        "SELECT datname AS database, usename AS user, application_name, state, count(*) AS connections, "
        "max(extract(epoch FROM now() - state_change))::int AS longest_in_state_s "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "GROUP BY 1, 2, 3, 4 ORDER BY connections DESC LIMIT 200"
    ),
    # pg_get_ws_by_org.sql and friends, as counts: how many workspaces and tracing projects each org has.
    "workspaces_per_org": (
        "SELECT o.id AS organization_id, count(DISTINCT t.id) AS workspaces, count(ts.id) AS projects "
        "FROM organizations o LEFT JOIN tenants t ON t.organization_id = o.id "
        "LEFT JOIN tracer_session ts ON ts.tenant_id = t.id GROUP BY o.id ORDER BY workspaces DESC LIMIT 500"
    ),
}


def postgres_support(
    pg: PostgresSession, add: Callable[[str, Any], None], fail: Callable[[str, str], None]
) -> None:
    """Version, settings that matter, database sizes, connections, LangSmith counts per organisation."""
    import psycopg

    for name, sql in PG_QUERIES.items():
        try:
            rows = pg.query(sql, [list(PG_SETTINGS)] if "%s" in sql else None)
        except psycopg.errors.UndefinedTable:
            add(name, {"note": "LangSmith's tables are not in this database"})
            continue
        except psycopg.DatabaseError as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            fail(name, describe(exc))
            continue
        add(name, rows)
