"""ClickHouse query plumbing: error codes, bounded tagged reads, identifiers and cluster-wide sources."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from checks.errors import LsreadyError
from checks.sessions import ClickHouseSession

# ClickHouse error codes the probes turn into a clear reason.
UNKNOWN_TABLE = 60
SYNTAX_ERROR = 62
READONLY = 164
ACCESS_DENIED = 497
UNKNOWN_USER_OR_ROLE = (192, 511)
CLUSTER_DOESNT_EXIST = 701
TIMEOUT_EXCEEDED = 159
QUERY_WAS_CANCELLED = 394

# Tables that are bookkeeping, not LangSmith data: golang-migrate's table is per node by design.
BOOKKEEPING_TABLES = frozenset({"schema_migrations"})
# A table is replicated when its engine keeps copies on other servers (Shared* is ClickHouse Cloud).
REPLICATED_PREFIXES = ("Replicated", "Shared")
# Disks whose space is not a local volume (object storage reports no meaningful free space).
REMOTE_DISK_TYPES = ("objectstorage", "s3", "s3_plain", "azure_blob_storage", "hdfs", "web")
# Cumulative I/O counters worth showing beside concurrency; absent ones are simply left out.
IO_EVENTS = (
    "ReadBufferFromFileDescriptorReadBytes",
    "WriteBufferFromFileDescriptorWriteBytes",
    "OSReadBytes",
    "OSWriteBytes",
    "DiskReadElapsedMicroseconds",
    "DiskWriteElapsedMicroseconds",
)
# lsready's own queries (and the secondary queries they start), excluded from query_log statistics.
NOT_LSREADY = "NOT startsWith(query, '-- lsready:') AND NOT startsWith(log_comment, 'lsready:')"

# --- Errors and query plumbing -------------------------------------------------------------------


class TableAbsent(LsreadyError):
    """A table a probe reads does not exist on this server (system log tables are opt-in)."""


class MissingPrivilege(LsreadyError):
    """The configured user may not read what a probe needs; the message names the grant."""

    def __init__(self, grant: str, what: str) -> None:
        self.grant = grant
        super().__init__(
            f"the ClickHouse user lacks {grant}, needed to read {what}; "
            "grant it to the lsready user (see deploy/grants/clickhouse.sql)"
        )


_CODE = re.compile(r"Code: (\d+)")
_NEEDED_GRANT = re.compile(r"necessary to have the grant (.+?)\.?\s*\(ACCESS_DENIED\)", re.S)
_LOG_TABLE = re.compile(r"^system\.\w+_log$|^system\.asynchronous_metrics$")


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a failed query, from the driver or the message text."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code:
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def needed_grant(exc: BaseException) -> str | None:
    """The grant an ACCESS_DENIED error names, e.g. 'SHOW ROW POLICIES ON *.*'."""
    match = _NEEDED_GRANT.search(str(exc))
    return " ".join(match.group(1).split()) if match else None


def _absent_reason(table: str, purpose: str) -> str:
    if _LOG_TABLE.match(table):
        return f"{table} is not enabled on this server; enable it to {purpose}"
    return f"{table} does not exist on this server; it is needed to {purpose}"


def query_rows(
    ch: ClickHouseSession,
    probe: str,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    reads: str,
    purpose: str,
) -> list[dict[str, Any]]:
    """Run one query; an absent table or cluster, or a missing privilege, becomes a clear reason."""
    try:
        return ch.query(probe, sql, dict(params) if params else None)
    except Exception as exc:
        code = error_code(exc)
        if code == UNKNOWN_TABLE:
            raise TableAbsent(_absent_reason(reads, purpose)) from exc
        if code == ACCESS_DENIED:
            raise MissingPrivilege(needed_grant(exc) or f"SELECT ON {reads}", reads) from exc
        if code == READONLY:
            raise LsreadyError(
                "the ClickHouse user's profile has readonly = 1, which forbids the per-query limits lsready "
                "sets; give it readonly = 2 (see deploy/grants/clickhouse.sql)"
            ) from exc
        if code == CLUSTER_DOESNT_EXIST:
            raise LsreadyError(
                f"cluster '{ch.cluster}' is not defined on this ClickHouse server (system.clusters); "
                "set targets.<name>.clickhouse.cluster to the cluster LangSmith was installed with"
            ) from exc
        raise


def merge_tree_tables(ch: ClickHouseSession, probe: str, purpose: str) -> list[dict[str, Any]]:
    """The MergeTree tables of the LangSmith database: `name`, `engine` and `engine_full`."""
    return query_rows(
        ch,
        probe,
        "SELECT name, engine, engine_full FROM system.tables WHERE database = {db:String} "
        "AND engine LIKE '%MergeTree' AND NOT is_temporary ORDER BY name LIMIT 1000",
        {"db": ch.database},
        reads="system.tables",
        purpose=purpose,
    )


def quote_ident(name: str) -> str:
    """A backquoted identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(text: str) -> str:
    """A single-quoted string literal, for places that take no query parameter (table functions)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_ref(ch: ClickHouseSession, name: str) -> str:
    return f"{quote_ident(ch.database)}.{quote_ident(name)}"


def system_source(ch: ClickHouseSession, table: str) -> str:
    """A per-server system table on this server, or on every replica of the configured cluster."""
    if ch.cluster:
        return f"clusterAllReplicas({_literal(ch.cluster)}, {table})"
    return table


def remote_settings(ch: ClickHouseSession) -> str:
    # A replica that is down must not hide the others; the probes count who answered instead.
    return " SETTINGS skip_unavailable_shards = 1" if ch.cluster else ""


def _cluster_hosts(ch: ClickHouseSession, probe: str) -> list[str]:
    """Host names of the configured cluster's replicas (empty without a cluster)."""
    if not ch.cluster:
        return []
    rows = query_rows(
        ch,
        probe,
        "SELECT host_name FROM system.clusters WHERE cluster = {c:String} ORDER BY shard_num, replica_num "
        "LIMIT 100",
        {"c": ch.cluster},
        reads="system.clusters",
        purpose="list the cluster's replicas",
    )
    return [str(r["host_name"]) for r in rows]


def replicas_answering(ch: ClickHouseSession, probe: str) -> tuple[int, int]:
    """(replicas that answer a clusterAllReplicas read, replicas in the cluster); (1, 1) without one."""
    if not ch.cluster:
        return 1, 1
    rows = query_rows(
        ch,
        probe,
        f"SELECT DISTINCT hostName() AS host FROM {system_source(ch, 'system.one')} "
        f"LIMIT 100{remote_settings(ch)}",
        reads="system.one",
        purpose="see which replicas answer",
    )
    return len(rows), len(_cluster_hosts(ch, probe))


def answered_replicas(ch: ClickHouseSession, probe: str, hosts_seen: set[str]) -> tuple[int, int]:
    """(replicas that answered, replicas in the cluster) for a clusterAllReplicas read."""
    if not ch.cluster:
        return len(hosts_seen) or 1, 1
    return len(hosts_seen), len(_cluster_hosts(ch, probe))


def silent_note(answered: int, expected: int) -> str:
    return f"; {expected - answered} of {expected} replicas did not answer" if answered < expected else ""
