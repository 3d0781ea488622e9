"""ClickHouse probes: LangSmith's trace store. Every query is read-only, bounded and tagged.

Every LangSmith table is qualified with the configured database. With a cluster configured,
per-server system tables are read on every replica through `clusterAllReplicas`, skipping replicas
that do not answer (and saying so). A table that is absent (system logs are opt-in) or not readable
raises an error naming it, which the runner reports as `unknown`. deploy/grants/clickhouse.sql
grants exactly what these queries read. `part_pressure` and `ingestion_delay` are reused by the
triage runbooks. Every number a verdict compares against comes in `params`, from checks/catalog.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from checks.clients import ClickHouseSession, Clients
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes.common import grade_high, human_bytes, pct, worst

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


def _rows(
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


def _ident(name: str) -> str:
    """A backquoted identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(text: str) -> str:
    """A single-quoted string literal, for places that take no query parameter (table functions)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _table(ch: ClickHouseSession, name: str) -> str:
    return f"{_ident(ch.database)}.{_ident(name)}"


def _source(ch: ClickHouseSession, table: str) -> str:
    """A per-server system table on this server, or on every replica of the configured cluster."""
    if ch.cluster:
        return f"clusterAllReplicas({_literal(ch.cluster)}, {table})"
    return table


def _remote_settings(ch: ClickHouseSession) -> str:
    # A replica that is down must not hide the others; the probes count who answered instead.
    return " SETTINGS skip_unavailable_shards = 1" if ch.cluster else ""


def _cluster_hosts(ch: ClickHouseSession, probe: str) -> list[str]:
    """Host names of the configured cluster's replicas (empty without a cluster)."""
    if not ch.cluster:
        return []
    rows = _rows(
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
    rows = _rows(
        ch,
        probe,
        f"SELECT DISTINCT hostName() AS host FROM {_source(ch, 'system.one')} "
        f"LIMIT 100{_remote_settings(ch)}",
        reads="system.one",
        purpose="see which replicas answer",
    )
    return len(rows), len(_cluster_hosts(ch, probe))


def _answered(ch: ClickHouseSession, probe: str, hosts_seen: set[str]) -> tuple[int, int]:
    """(replicas that answered, replicas in the cluster) for a clusterAllReplicas read."""
    if not ch.cluster:
        return len(hosts_seen) or 1, 1
    return len(hosts_seen), len(_cluster_hosts(ch, probe))


def _silent_note(answered: int, expected: int) -> str:
    return f"; {expected - answered} of {expected} replicas did not answer" if answered < expected else ""


# --- Topology: items 18, 19 and 20 ---------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaState:
    """One replicated LangSmith table as this server sees it (system.replicas)."""

    table: str
    engine: str
    is_readonly: bool
    total_replicas: int
    active_replicas: int
    queue_size: int
    absolute_delay: int


@dataclass(frozen=True)
class Topology:
    """The configured cluster's shape and how the LangSmith tables are replicated across it."""

    database: str
    cluster: str | None
    cluster_defined: bool
    shards: dict[int, tuple[str, ...]]  # shard number -> replica host names
    engines: dict[str, str]  # LangSmith MergeTree-family table -> engine
    replicas: tuple[ReplicaState, ...]

    @property
    def replicas_per_shard(self) -> tuple[int, ...]:
        """Replica count of each shard; a server outside any cluster counts as one replica."""
        return tuple(len(hosts) for hosts in self.shards.values()) or (1,)

    @property
    def unreplicated(self) -> list[str]:
        return sorted(
            t
            for t, engine in self.engines.items()
            if not engine.startswith(REPLICATED_PREFIXES) and t not in BOOKKEEPING_TABLES
        )

    @property
    def readonly(self) -> list[str]:
        return sorted(r.table for r in self.replicas if r.is_readonly)

    @property
    def min_active(self) -> int | None:
        """The fewest active replicas any replicated table has (None without replicated tables)."""
        return min((r.active_replicas for r in self.replicas), default=None)

    def observed(self) -> dict[str, Any]:
        hosts = [h for shard in self.shards.values() for h in shard]
        return {
            "database": self.database,
            "cluster": self.cluster,
            "cluster_defined": self.cluster_defined,
            "shards": len(self.shards),
            "replicas_per_shard": list(self.replicas_per_shard),
            "hosts": hosts[:20],
            "tables": len(self.engines),
            "unreplicated": self.unreplicated[:20],
            "readonly": self.readonly[:20],
            "min_active_replicas": self.min_active,
            "max_queue_size": max((r.queue_size for r in self.replicas), default=0),
            "max_absolute_delay_s": max((r.absolute_delay for r in self.replicas), default=0),
        }


def topology(ch: ClickHouseSession, probe: str = "topology") -> Topology:
    """Read system.clusters, the LangSmith tables' engines and system.replicas once."""
    shards: dict[int, list[str]] = {}
    if ch.cluster:
        rows = _rows(
            ch,
            probe,
            "SELECT shard_num, host_name FROM system.clusters WHERE cluster = {c:String} "
            "ORDER BY shard_num, replica_num LIMIT 1000",
            {"c": ch.cluster},
            reads="system.clusters",
            purpose="see the cluster's replicas",
        )
        for row in rows:
            shards.setdefault(int(row["shard_num"]), []).append(str(row["host_name"]))
    engines = {
        str(r["name"]): str(r["engine"])
        for r in _rows(
            ch,
            probe,
            "SELECT name, engine FROM system.tables WHERE database = {db:String} "
            "AND engine LIKE '%MergeTree' AND NOT is_temporary ORDER BY name LIMIT 1000",
            {"db": ch.database},
            reads="system.tables",
            purpose="see the LangSmith tables' engines",
        )
    }
    replicas = tuple(
        ReplicaState(
            table=str(r["table"]),
            engine=str(r["engine"]),
            is_readonly=bool(r["is_readonly"]),
            total_replicas=int(r["total_replicas"]),
            active_replicas=int(r["active_replicas"]),
            queue_size=int(r["queue_size"]),
            absolute_delay=int(r["absolute_delay"]),
        )
        for r in _rows(
            ch,
            probe,
            "SELECT table, engine, is_readonly, total_replicas, active_replicas, queue_size, absolute_delay "
            "FROM system.replicas WHERE database = {db:String} ORDER BY table LIMIT 1000",
            {"db": ch.database},
            reads="system.replicas",
            purpose="see replica health",
        )
    )
    return Topology(
        database=ch.database,
        cluster=ch.cluster,
        cluster_defined=bool(shards),
        shards={k: tuple(v) for k, v in shards.items()},
        engines=engines,
        replicas=replicas,
    )


def grade_replication(topo: Topology, max_delay_s: float) -> tuple[Status, str]:
    """Whether LangSmith's data is replicated: a status and the one-sentence reason."""
    where = f"ClickHouse database '{topo.database}'"
    if topo.cluster is None:
        if topo.engines and not topo.unreplicated:
            raise LsreadyError(
                "the LangSmith tables use Replicated engines but no cluster is configured for this "
                "target; set targets.<name>.clickhouse.cluster to check the replicas"
            )
        return Status.FAIL, (
            f"{where} is on a single node (no cluster configured, 1 replica); production needs a "
            "replicated cluster"
        )
    if not topo.cluster_defined:
        return Status.FAIL, (
            f"Cluster '{topo.cluster}' is not defined in system.clusters on this server, so {where} "
            "is not replicated across it"
        )
    fewest = min(topo.replicas_per_shard)
    if fewest < 2:
        return Status.FAIL, (
            f"Cluster '{topo.cluster}' has {fewest} replica per shard, so {where} has no second copy; "
            "a replicated cluster needs at least 2"
        )
    if topo.unreplicated:
        shown = ", ".join(topo.unreplicated[:5])
        return Status.FAIL, (
            f"{len(topo.unreplicated)} LangSmith table(s) in {where} are not Replicated ({shown}), so "
            f"their data lives on one replica of cluster '{topo.cluster}'"
        )
    if topo.readonly:
        return Status.FAIL, (
            f"{len(topo.readonly)} replicated table(s) in {where} are read-only on this replica "
            f"({', '.join(topo.readonly[:5])}): it lost its Keeper session and rejects inserts"
        )
    lagging = [r for r in topo.replicas if r.active_replicas < r.total_replicas]
    if lagging:
        r = lagging[0]
        return Status.WARN, (
            f"Only {r.active_replicas} of {r.total_replicas} replicas of {topo.database}.{r.table} "
            f"are active in cluster '{topo.cluster}'"
        )
    delay = max((r.absolute_delay for r in topo.replicas), default=0)
    if delay > max_delay_s:
        return Status.WARN, (
            f"A replica of {where} is {delay} s behind in cluster '{topo.cluster}' (limit {max_delay_s:g} s)"
        )
    return Status.PASS, (
        f"Cluster '{topo.cluster}' has {fewest} replicas per shard and all {len(topo.engines)} "
        f"LangSmith tables in {where} are Replicated with every replica active"
    )


def replicated(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's tables are Replicated across a cluster with healthy replicas."""
    ch = clients.clickhouse
    topo = topology(ch, "replicated")
    status, summary = grade_replication(topo, float(params["max_replica_delay_s"]))
    return Evidence(status, summary + ".", topo.observed(), dict(params))


def _topology_name(topo: Topology) -> str:
    if topo.cluster_defined:
        return f"ClickHouse cluster '{topo.cluster}'"
    if topo.cluster:
        return f"ClickHouse (cluster '{topo.cluster}' is not in system.clusters)"
    return "ClickHouse (single node, no cluster configured)"


def replicas_min(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every shard of the configured cluster has at least `min` replicas."""
    ch = clients.clickhouse
    topo = topology(ch, "replicas_min")
    need = int(params["min"])
    count = min(topo.replicas_per_shard)
    name = _topology_name(topo)
    if count < need:
        status = Status.FAIL
        summary = f"{name} has {count} replica(s) per shard, below the minimum of {need}."
    elif topo.min_active is not None and topo.min_active < need:
        status = Status.WARN
        summary = (
            f"{name} has {count} replicas per shard but only {topo.min_active} are active "
            f"for some tables, below the minimum of {need}."
        )
    else:
        status = Status.PASS
        summary = f"{name} has {count} replicas per shard, meeting the minimum of {need}."
    return Evidence(status, summary, topo.observed(), {"min": need})


def replicas_max(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """No shard of the configured cluster has more than `max` replicas."""
    ch = clients.clickhouse
    topo = topology(ch, "replicas_max")
    limit = int(params["max"])
    count = max(topo.replicas_per_shard)
    name = _topology_name(topo)
    if count > limit:
        status = Status.FAIL
        summary = (
            f"{name} has {count} replicas in a shard, above the guardrail of {limit}; "
            "more replicas multiply Keeper coordination."
        )
    else:
        status = Status.PASS
        summary = f"{name} has {count} replica(s) per shard, within the guardrail of {limit}."
    return Evidence(status, summary, topo.observed(), {"max": limit})


# --- Permissions: item 22 ------------------------------------------------------------------------


_GRANT_LINE = re.compile(r"^(GRANT|REVOKE)\s+(.+?)\s+ON\s+(\S+)\s+(?:TO|FROM)\s+", re.S)
_ROLE_LINE = re.compile(r"^GRANT\s+(.+?)\s+TO\s+", re.S)
_ALL = frozenset({"ALL", "ALL PRIVILEGES"})
# Database-level grants are shown expanded (SHOW GRANTS renders ALTER ON db.* as ALTER TABLE, ALTER
# VIEW, ...). Any one of these sets is enough for what LangSmith's migrations and workers do.
SUFFICIENT: dict[str, list[set[str]]] = {
    "ALTER": [{"ALTER"}, {"ALTER TABLE"}],
    "CREATE": [{"CREATE"}, {"CREATE TABLE", "CREATE VIEW"}],
    "DROP": [{"DROP"}, {"DROP TABLE", "DROP VIEW"}],
}


@dataclass(frozen=True)
class GrantLine:
    """One line of SHOW GRANTS: privileges on a target, granted or partially revoked."""

    revoke: bool
    privileges: tuple[str, ...]
    target: str  # '*.*', 'db.*', 'db.table' with backquotes removed


def _split_privileges(text: str) -> tuple[str, ...]:
    """'SELECT(a, b), INSERT' -> ('SELECT', 'INSERT'): commas inside column lists do not split."""
    out, depth, token = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(token)
            token = ""
        else:
            token += ch
    out.append(token)
    return tuple(" ".join(re.sub(r"\(.*\)", "", t).split()).upper() for t in out if t.strip())


def parse_grants(lines: Sequence[str]) -> tuple[list[GrantLine], list[str]]:
    """SHOW GRANTS output -> (privilege lines, granted role names)."""
    grants: list[GrantLine] = []
    roles: list[str] = []
    for line in lines:
        match = _GRANT_LINE.match(line.strip())
        if match:
            target = match.group(3).replace("`", "")
            grants.append(GrantLine(match.group(1) == "REVOKE", _split_privileges(match.group(2)), target))
            continue
        match = _ROLE_LINE.match(line.strip())
        if match:
            roles += [r.strip().strip("`") for r in match.group(1).split(",")]
    return grants, roles


def _covers_database(target: str, database: str) -> bool:
    return target in ("*.*", f"{database}.*")


def privilege_state(grants: Sequence[GrantLine], privilege: str, database: str) -> str:
    """'granted', 'partial' (sub-privilege, table-level grant or partial revoke) or 'missing'."""
    privilege = privilege.upper()
    held: set[str] = set()
    partial = False
    for g in grants:
        on_db = _covers_database(g.target, database)
        on_table = g.target.startswith(f"{database}.") and not on_db
        related = any(p == privilege or p.startswith(privilege + " ") or p in _ALL for p in g.privileges)
        if g.revoke:
            partial |= (on_db or on_table) and related
        elif on_db:
            held |= set(g.privileges)
        else:
            partial |= on_table and related
    full = bool(held & _ALL) or any(option <= held for option in SUFFICIENT.get(privilege, [{privilege}]))
    if full and not partial:
        return "granted"
    partial |= any(p.startswith(privilege + " ") for p in held)
    return "partial" if full or partial else "missing"


def _show_grants(ch: ClickHouseSession, user: str | None) -> tuple[list[str], bool]:
    """SHOW GRANTS lines for the user and whether role grants are expanded (FINAL, recent servers)."""
    target = f" FOR {_ident(user)}" if user else ""
    for final in (True, False):
        try:
            rows = ch.query("permissions", f"SHOW GRANTS{target}{' FINAL' if final else ''}")
            return [str(next(iter(r.values()))) for r in rows], final
        except Exception as exc:
            code = error_code(exc)
            if code == SYNTAX_ERROR and final:
                continue  # a server older than SHOW GRANTS ... FINAL
            if code == ACCESS_DENIED:
                grant = needed_grant(exc) or "SHOW USERS ON *.*"
                raise MissingPrivilege(grant, f"the grants of user '{user}'") from exc
            if code in UNKNOWN_USER_OR_ROLE:
                raise LsreadyError(
                    f"ClickHouse has no user '{user}'; set thresholds.clickhouse.permissions.langsmith_user "
                    "to the user LangSmith connects as (clickhouse.external.user)"
                ) from exc
            raise
    return [], False


def _row_policies(ch: ClickHouseSession, user: str, roles: Sequence[str]) -> list[dict[str, Any]]:
    """Row policies on the LangSmith database that apply to the user or one of its roles."""
    rows = _rows(
        ch,
        "permissions",
        "SELECT short_name, table, select_filter, is_restrictive, apply_to_all, apply_to_list, "
        "apply_to_except FROM system.row_policies WHERE database = {db:String} ORDER BY table LIMIT 100",
        {"db": ch.database},
        reads="system.row_policies",
        purpose="see row policies that could hide traces",
    )
    who = {user, *roles}
    applying = []
    for r in rows:
        if not r["is_restrictive"] and str(r["select_filter"]).strip().lower() in ("1", "true"):
            continue  # a permissive policy that lets every row through (users.xml adds these)
        excluded = bool(who & set(r["apply_to_except"]))
        if (r["apply_to_all"] and not excluded) or who & set(r["apply_to_list"]):
            applying.append({"policy": r["short_name"], "table": r["table"], "filter": r["select_filter"]})
    return applying


def permissions(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's user holds the privileges it needs on its database and no row policy hides rows."""
    ch = clients.clickhouse
    current = str(ch.query("permissions", "SELECT currentUser() AS u")[0]["u"])
    user = params.get("langsmith_user") or current
    lines, expanded = _show_grants(ch, None if user == current else user)
    grants, roles = parse_grants(lines)
    needed = [str(p).upper() for p in params["privileges"]]
    states = {p: privilege_state(grants, p, ch.database) for p in needed}
    observed: dict[str, Any] = {"user": user, "database": ch.database, "privileges": states, "roles": roles}
    threshold = {"privileges": needed}
    missing = [p for p, s in states.items() if s == "missing"]
    hint = (
        " (lsready's own user; set thresholds.clickhouse.permissions.langsmith_user to check LangSmith's)"
        if not params.get("langsmith_user")
        else ""
    )
    if "INSERT" in missing and not params.get("langsmith_user") and not (roles and not expanded):
        # Not LangSmith's user (it inserts runs): lsready's own least-privilege reader says nothing here.
        raise LsreadyError(
            f"lsready connects to ClickHouse as '{user}', a user that cannot write, so not LangSmith's; "
            "set thresholds.clickhouse.permissions.langsmith_user to LangSmith's user "
            "(clickhouse.external.user) to check its grants and row policies"
        )
    if missing and roles and not expanded:
        raise LsreadyError(
            f"ClickHouse user '{user}' gets privileges through roles ({', '.join(roles)}) and this server "
            "cannot expand them (SHOW GRANTS ... FINAL); check the roles' grants with SHOW GRANTS FOR <role>"
        )
    if missing:
        via = f" or its roles ({', '.join(roles)})" if roles else ""
        return Evidence(
            Status.FAIL,
            f"ClickHouse user '{user}'{hint} lacks {', '.join(missing)} on database '{ch.database}'{via}; "
            f"LangSmith needs {', '.join(needed)} there.",
            observed,
            threshold,
        )
    policies = _row_policies(ch, user, roles)
    observed["row_policies"] = policies
    partial = [p for p, s in states.items() if s == "partial"]
    if policies:
        shown = ", ".join(f"{p['policy']} on {p['table']}" for p in policies[:3])
        return Evidence(
            Status.WARN,
            f"{len(policies)} row {'policy filters' if len(policies) == 1 else 'policies filter'} "
            f"LangSmith tables for ClickHouse user '{user}' ({shown}); they hide traces, drop them.",
            observed,
            threshold,
        )
    if partial:
        return Evidence(
            Status.WARN,
            f"ClickHouse user '{user}' has {', '.join(partial)} on database '{ch.database}' only in part "
            "(a sub-privilege, a table-level grant or a partial revoke); migrations may fail.",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"ClickHouse user '{user}' has {', '.join(needed)} on database '{ch.database}' and no row policy "
        "filters its tables.",
        observed,
        threshold,
    )


# --- Node size: item 24 --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResources:
    """CPUs and memory of one ClickHouse server, with the signal each number came from."""

    host: str
    cpus: float | None
    cpu_source: str
    memory_bytes: int | None
    memory_source: str


def _resources_from_metrics(rows: Sequence[Mapping[str, Any]]) -> list[NodeResources]:
    by_host: dict[str, dict[str, float]] = {}
    for r in rows:
        by_host.setdefault(str(r["host"]), {})[str(r["metric"])] = float(r["value"])
    nodes = []
    for host, m in sorted(by_host.items()):
        cores = sum(1 for k in m if re.fullmatch(r"OSUserTimeCPU\d+", k))
        if m.get("CGroupMaxCPU", 0) > 0:
            cpus, cpu_src = m["CGroupMaxCPU"], "CGroupMaxCPU, the container limit"
        elif cores:
            cpus, cpu_src = float(cores), "the host CPUs in asynchronous_metrics"
        else:
            cpus, cpu_src = None, "asynchronous_metrics (no CPU metric)"
        host_mem = m.get("OSMemoryTotal", 0)
        cgroup_mem = m.get("CGroupMemoryTotal", 0)
        if cgroup_mem > 0 and (not host_mem or cgroup_mem < host_mem):
            mem, mem_src = int(cgroup_mem), "CGroupMemoryTotal, the container limit"
        elif host_mem:
            mem, mem_src = int(host_mem), "OSMemoryTotal of the host"
        else:
            mem, mem_src = None, "asynchronous_metrics (no memory metric)"
        nodes.append(NodeResources(host, cpus, cpu_src, mem, mem_src))
    return nodes


def _resources_from_settings(ch: ClickHouseSession) -> list[NodeResources]:
    """Fallback without asynchronous_metrics: what the server derived from its CPUs and memory."""
    threads = {
        str(r["host"]): str(r["value"])
        for r in _rows(
            ch,
            "node_size",
            f"SELECT hostName() AS host, value FROM {_source(ch, 'system.settings')} "
            f"WHERE name = 'max_threads' LIMIT 100{_remote_settings(ch)}",
            reads="system.settings",
            purpose="estimate the CPU count",
        )
    }
    memory: dict[str, dict[str, Any]] = {}
    for r in _rows(
        ch,
        "node_size",
        f"SELECT hostName() AS host, name, value, changed FROM {_source(ch, 'system.server_settings')} "
        "WHERE name IN ('max_server_memory_usage', 'max_server_memory_usage_to_ram_ratio') "
        f"LIMIT 100{_remote_settings(ch)}",
        reads="system.server_settings",
        purpose="estimate the memory size",
    ):
        memory.setdefault(str(r["host"]), {})[str(r["name"])] = r
    nodes = []
    for host in sorted(set(threads) | set(memory)):
        # max_threads defaults to 'auto(N)', N being the CPUs the server may use (cgroup-aware).
        auto = re.fullmatch(r"auto\((\d+)\)", threads.get(host, ""))
        cpus = float(auto.group(1)) if auto else None
        cpu_src = f"max_threads = auto({auto.group(1)}), the CPUs it may use" if auto else "max_threads"
        mem, mem_src = _memory_from_server_settings(memory.get(host, {}))
        nodes.append(NodeResources(host, cpus, cpu_src, mem, mem_src))
    return nodes


def _memory_from_server_settings(settings: Mapping[str, Mapping[str, Any]]) -> tuple[int | None, str]:
    limit = settings.get("max_server_memory_usage")
    ratio = settings.get("max_server_memory_usage_to_ram_ratio")
    if limit is None or not float(limit["value"]):
        return None, "server_settings (no memory limit reported)"
    if int(limit["changed"]):
        return int(float(limit["value"])), "max_server_memory_usage, its configured memory cap"
    # Left at its default, the limit is RAM (cgroup-aware) times the ratio.
    factor = float(ratio["value"]) if ratio is not None and float(ratio["value"]) > 0 else 1.0
    return int(float(limit["value"]) / factor), "max_server_memory_usage over its RAM ratio"


def node_resources(ch: ClickHouseSession, probe: str = "node_size") -> list[NodeResources]:
    """CPUs and memory of every server: asynchronous_metrics when present, else derived settings."""
    try:
        rows = _rows(
            ch,
            probe,
            f"SELECT hostName() AS host, metric, value FROM {_source(ch, 'system.asynchronous_metrics')} "
            "WHERE metric IN ('CGroupMaxCPU', 'CGroupMemoryTotal', 'OSMemoryTotal') "
            f"OR match(metric, '^OSUserTimeCPU[0-9]+$') LIMIT 10000{_remote_settings(ch)}",
            reads="system.asynchronous_metrics",
            purpose="read CPUs and memory",
        )
    except TableAbsent:
        rows = []
    return _resources_from_metrics(rows) if rows else _resources_from_settings(ch)


def _size_score(node: NodeResources, min_cpus: float, min_gib: float) -> float:
    """The node's size as a share of the baseline, by its scarcer resource: under 1 is too small."""
    return min((node.cpus or 0) / min_cpus, (node.memory_bytes or 0) / (min_gib * 2**30))


def node_size(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every ClickHouse server has at least `min_cpus` CPUs and `min_memory_gib` GiB of memory."""
    ch = clients.clickhouse
    min_cpus, min_gib = float(params["min_cpus"]), float(params["min_memory_gib"])
    nodes = node_resources(ch)
    answered, expected = _answered(ch, "node_size", {n.host for n in nodes})
    observed = {
        "nodes": [asdict(n) for n in nodes][:20],
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    threshold = {"min_cpus": min_cpus, "min_memory_gib": min_gib}
    unknown = [n for n in nodes if n.cpus is None or n.memory_bytes is None]
    if not nodes or len(unknown) == len(nodes):
        raise LsreadyError(
            "ClickHouse reports neither asynchronous_metrics nor an automatic max_threads / memory limit; "
            "cannot tell its CPUs and memory"
        )
    known = [n for n in nodes if n not in unknown]
    small = min(known, key=lambda n: _size_score(n, min_cpus, min_gib))
    what = (
        f"ClickHouse node {small.host} has {small.cpus:g} CPUs and {(small.memory_bytes or 0) / 2**30:.1f} "
        f"GiB memory (from {small.cpu_source}; {small.memory_source})"
    )
    note = _silent_note(answered, expected)
    if _size_score(small, min_cpus, min_gib) < 1:
        return Evidence(
            Status.FAIL,
            f"{what}, below the {min_cpus:g} vCPU / {min_gib:g} GiB baseline{note}.",
            observed,
            threshold,
        )
    status = Status.WARN if unknown or note else Status.PASS
    smallest = f", the smallest of {len(known)} nodes," if len(known) > 1 else ""
    unmeasured = f"; {len(unknown)} node(s) could not be measured" if unknown else ""
    return Evidence(
        status,
        f"{what}{smallest} meeting the {min_cpus:g} vCPU / {min_gib:g} GiB baseline{unmeasured}{note}.",
        observed,
        threshold,
    )


# --- Disk usage and system log size: item 28 -----------------------------------------------------


@dataclass(frozen=True)
class DiskUse:
    host: str
    disk: str
    path: str
    used_ratio: float
    used_bytes: int
    total_bytes: int


def disk_usage_by_replica(ch: ClickHouseSession, probe: str = "disk_usage") -> list[DiskUse]:
    """Local disks of every replica, fullest first (object-storage disks report no real free space)."""
    rows = _rows(
        ch,
        probe,
        f"SELECT hostName() AS host, name, path, free_space, total_space FROM {_source(ch, 'system.disks')} "
        "WHERE lower(toString(type)) NOT IN {remote:Array(String)} AND total_space > 0 "
        f"LIMIT 1000{_remote_settings(ch)}",
        {"remote": list(REMOTE_DISK_TYPES)},
        reads="system.disks",
        purpose="measure disk usage",
    )
    disks = [
        DiskUse(
            host=str(r["host"]),
            disk=str(r["name"]),
            path=str(r["path"]),
            used_ratio=1 - int(r["free_space"]) / int(r["total_space"]),
            used_bytes=int(r["total_space"]) - int(r["free_space"]),
            total_bytes=int(r["total_space"]),
        )
        for r in rows
    ]
    return sorted(disks, key=lambda d: d.used_ratio, reverse=True)


def system_log_bytes(ch: ClickHouseSession, probe: str = "disk_usage") -> dict[str, dict[str, int]]:
    """Bytes on disk of the system log tables (query_log, part_log, trace_log...) per host."""
    rows = _rows(
        ch,
        probe,
        f"SELECT hostName() AS host, table, sum(bytes_on_disk) AS bytes FROM {_source(ch, 'system.parts')} "
        "WHERE database = 'system' AND active AND match(table, '_log(_[0-9]+)?$') "
        f"GROUP BY host, table ORDER BY bytes DESC LIMIT 200{_remote_settings(ch)}",
        reads="system.parts",
        purpose="measure the size of system log tables",
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(str(r["host"]), {})[str(r["table"])] = int(r["bytes"])
    return out


def disk_usage(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The fullest local disk of any replica against warn/fail ratios; system logs' share of it."""
    ch = clients.clickhouse
    warn_r, fail_r = float(params["warn_ratio"]), float(params["fail_ratio"])
    logs_share_limit = float(params["system_logs_warn_share"])
    disks = disk_usage_by_replica(ch)
    if not disks:
        return Evidence(
            Status.NA, "ClickHouse stores its data only on object storage; it has no local disk to fill."
        )
    logs = system_log_bytes(ch)
    used_by_host: dict[str, int] = {}
    for d in disks:
        used_by_host[d.host] = used_by_host.get(d.host, 0) + d.used_bytes
    shares = {h: sum(t.values()) / used_by_host[h] for h, t in logs.items() if used_by_host.get(h)}
    answered, expected = _answered(ch, "disk_usage", {d.host for d in disks})
    top = disks[0]
    observed = {
        "disks": [asdict(d) for d in disks[:20]],
        "system_logs_bytes": logs,
        "system_logs_share": {h: round(s, 4) for h, s in shares.items()},
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    threshold = {"warn_ratio": warn_r, "fail_ratio": fail_r, "system_logs_warn_share": logs_share_limit}
    status = grade_high(top.used_ratio, warn_r, fail_r)
    summary = (
        f"ClickHouse disk '{top.disk}' on {top.host} is {pct(top.used_ratio, warn_r, fail_r)} full "
        f"({human_bytes(top.used_bytes)} of {human_bytes(top.total_bytes)}; "
        f"warn {pct(warn_r)}, fail {pct(fail_r)})"
    )
    heavy = max(shares.items(), key=lambda kv: kv[1], default=None)
    if heavy is not None and heavy[1] > logs_share_limit:
        status = worst(status, Status.WARN)
        biggest = max(logs[heavy[0]].items(), key=lambda kv: kv[1])[0]
        summary += (
            f", and system log tables take {pct(heavy[1], logs_share_limit)} of the used space on {heavy[0]} "
            f"(largest system.{biggest}; limit {pct(logs_share_limit)}): set a TTL on them"
        )
    note = _silent_note(answered, expected)
    if note:
        status = worst(status, Status.WARN)
    return Evidence(status, summary + note + ".", observed, threshold)


# --- Part pressure: reused by the runbooks, evidence for items 29 and 54 -------------------------


@dataclass(frozen=True)
class TableParts:
    """The busiest partition of one table: active parts against the effective insert limits."""

    table: str
    partition: str
    parts: int
    delay_at: int  # parts_to_delay_insert in effect for this table
    throw_at: int  # parts_to_throw_insert in effect for this table
    host: str = ""

    @property
    def ratio(self) -> float:
        """Parts as a share of parts_to_delay_insert: 1.0 means inserts are being slowed."""
        return self.parts / self.delay_at if self.delay_at else 0.0


@dataclass(frozen=True)
class StuckMutation:
    table: str
    mutation_id: str
    command: str
    age_s: int
    parts_to_do: int
    latest_fail_reason: str
    host: str = ""


@dataclass(frozen=True)
class PartPressure:
    """Part counts, merges and stuck mutations of the LangSmith database."""

    database: str
    tables: tuple[TableParts, ...]  # busiest partition of each table, busiest first
    merges_running: int
    stuck_mutations: tuple[StuckMutation, ...]
    default_delay_at: int
    default_throw_at: int

    @property
    def worst(self) -> TableParts | None:
        return max(self.tables, key=lambda t: t.ratio, default=None)

    def to_dict(self) -> dict[str, Any]:
        worst_table = self.worst
        return {
            "database": self.database,
            "worst": asdict(worst_table) if worst_table else None,
            "tables": [asdict(t) for t in self.tables[:20]],
            "merges_running": self.merges_running,
            "stuck_mutations": [asdict(m) for m in self.stuck_mutations[:10]],
            "parts_to_delay_insert_default": self.default_delay_at,
            "parts_to_throw_insert_default": self.default_throw_at,
        }


# ClickHouse's own defaults, used only if system.merge_tree_settings does not list the settings.
SERVER_DEFAULT_DELAY_AT, SERVER_DEFAULT_THROW_AT = 1000, 3000
_TABLE_SETTING = re.compile(r"\b(parts_to_delay_insert|parts_to_throw_insert)\s*=\s*(\d+)")


def table_part_limits(engine_full: str, delay_default: int, throw_default: int) -> tuple[int, int]:
    """(delay, throw) in effect: a table's SETTINGS clause overrides the server's merge_tree defaults."""
    found = {k: int(v) for k, v in _TABLE_SETTING.findall(engine_full)}
    delay = found.get("parts_to_delay_insert", delay_default)
    return delay, found.get("parts_to_throw_insert", throw_default)


def part_pressure(
    ch: ClickHouseSession,
    *,
    stuck_after_minutes: float | None,
    probe: str = "part_pressure",
) -> PartPressure:
    """Busiest partition per LangSmith table vs its insert limits, merges running, and (when
    `stuck_after_minutes` is given) mutations unfinished after that long."""
    defaults = {
        str(r["name"]): int(r["value"])
        for r in _rows(
            ch,
            probe,
            "SELECT name, value FROM system.merge_tree_settings "
            "WHERE name IN ('parts_to_delay_insert', 'parts_to_throw_insert')",
            reads="system.merge_tree_settings",
            purpose="read the insert limits",
        )
    }
    delay_default = defaults.get("parts_to_delay_insert", SERVER_DEFAULT_DELAY_AT)
    throw_default = defaults.get("parts_to_throw_insert", SERVER_DEFAULT_THROW_AT)
    limits = {
        str(r["name"]): table_part_limits(str(r["engine_full"]), delay_default, throw_default)
        for r in _rows(
            ch,
            probe,
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String} "
            "AND engine LIKE '%MergeTree' LIMIT 1000",
            {"db": ch.database},
            reads="system.tables",
            purpose="read per-table insert limits",
        )
    }
    busiest = _rows(
        ch,
        probe,
        "SELECT hostName() AS host, table, any(partition) AS partition, count() AS parts "
        f"FROM {_source(ch, 'system.parts')} WHERE database = {{db:String}} AND active "
        "GROUP BY host, table, partition_id ORDER BY parts DESC LIMIT 1 BY table LIMIT 1000"
        f"{_remote_settings(ch)}",
        {"db": ch.database},
        reads="system.parts",
        purpose="count active parts",
    )
    tables = tuple(
        TableParts(
            table=str(r["table"]),
            partition=str(r["partition"]),
            parts=int(r["parts"]),
            delay_at=limits.get(str(r["table"]), (delay_default, throw_default))[0],
            throw_at=limits.get(str(r["table"]), (delay_default, throw_default))[1],
            host=str(r["host"]),
        )
        for r in busiest
    )
    merges = _rows(
        ch,
        probe,
        f"SELECT count() AS n FROM {_source(ch, 'system.merges')} WHERE database = {{db:String}}"
        f"{_remote_settings(ch)}",
        {"db": ch.database},
        reads="system.merges",
        purpose="count running merges",
    )[0]["n"]
    stuck = tuple(
        StuckMutation(
            table=str(r["table"]),
            mutation_id=str(r["mutation_id"]),
            command=str(r["command"])[:200],
            age_s=int(r["age_s"]),
            parts_to_do=int(r["parts_to_do"]),
            latest_fail_reason=str(r["latest_fail_reason"])[:300],
            host=str(r["host"]),
        )
        for r in (
            _rows(
                ch,
                probe,
                "SELECT hostName() AS host, table, mutation_id, command, parts_to_do, latest_fail_reason, "
                "toUInt64(greatest(0, dateDiff('second', create_time, now()))) AS age_s "
                f"FROM {_source(ch, 'system.mutations')} WHERE database = {{db:String}} AND is_done = 0 "
                "AND create_time <= now() - toIntervalSecond({age:UInt32}) ORDER BY create_time LIMIT 20"
                f"{_remote_settings(ch)}",
                {"db": ch.database, "age": int(stuck_after_minutes * 60)},
                reads="system.mutations",
                purpose="find stuck mutations",
            )
            if stuck_after_minutes is not None
            else []
        )
    )
    return PartPressure(
        database=ch.database,
        tables=tuple(sorted(tables, key=lambda t: t.ratio, reverse=True)),
        merges_running=int(merges),
        stuck_mutations=stuck,
        default_delay_at=delay_default,
        default_throw_at=throw_default,
    )


def grade_part_pressure(
    pp: PartPressure, warn_ratio: float, stuck_minutes: float | None = None
) -> tuple[Status, str]:
    """A status and one sentence: at parts_to_delay_insert inserts slow down, at throw they fail."""
    top = pp.worst
    if top is None:
        status, text = Status.PASS, f"ClickHouse database '{pp.database}' has no active parts yet"
    else:
        on_host = f" on {top.host}" if top.host else ""
        where = f"{pp.database}.{top.table} partition {top.partition}{on_host}"
        text = (
            f"ClickHouse {where} has {top.parts} active parts (inserts slow at {top.delay_at}, "
            f"fail at {top.throw_at}) with {pp.merges_running} merges running"
        )
        if top.parts >= top.throw_at:
            status, text = Status.FAIL, text + ": inserts are being rejected with TOO_MANY_PARTS"
        elif top.ratio >= 1:
            status, text = Status.FAIL, text + ": inserts are being delayed"
        else:
            status = grade_high(top.ratio, warn_ratio, 1.0)
    if pp.stuck_mutations and stuck_minutes is not None:
        oldest = max(pp.stuck_mutations, key=lambda m: m.age_s)
        status = worst(status, Status.WARN)
        text += (
            f", and {len(pp.stuck_mutations)} mutation(s) are unfinished after {stuck_minutes:g} min "
            f"(oldest {oldest.mutation_id} on {oldest.table}, {oldest.age_s} s)"
        )
    return status, text


# --- Concurrency, I/O and query latency: item 29 -------------------------------------------------


def running_queries(ch: ClickHouseSession, probe: str = "concurrency") -> dict[str, int]:
    """Queries running now per replica, not counting this one."""
    rows = _rows(
        ch,
        probe,
        f"SELECT hostName() AS host, count() AS n FROM {_source(ch, 'system.processes')} "
        f"WHERE initial_query_id != initialQueryID() GROUP BY host LIMIT 100{_remote_settings(ch)}",
        reads="system.processes",
        purpose="count running queries",
    )
    return {str(r["host"]): int(r["n"]) for r in rows}


def io_counters(ch: ClickHouseSession, probe: str = "concurrency") -> dict[str, Any]:
    """Cumulative disk I/O counters of this server and their average rate since it started."""
    rows = _rows(
        ch,
        probe,
        "SELECT event, value, uptime() AS uptime_s FROM system.events WHERE event IN {names:Array(String)}",
        {"names": list(IO_EVENTS)},
        reads="system.events",
        purpose="read disk I/O counters",
    )
    uptime = max((int(r["uptime_s"]) for r in rows), default=0)
    counters = {str(r["event"]): int(r["value"]) for r in rows}
    rates = {
        f"{k}_per_s": round(v / uptime, 1) for k, v in counters.items() if uptime and k.endswith("Bytes")
    }
    return {"uptime_s": uptime, "since_start": counters, "average_since_start": rates}


def query_latency(
    ch: ClickHouseSession, users: Sequence[str], window_minutes: int, probe: str = "concurrency"
) -> dict[str, Any]:
    """P95/P99 duration of LangSmith's finished SELECTs over the window, from system.query_log."""
    row = _rows(
        ch,
        probe,
        "SELECT count() AS queries, quantile(0.95)(query_duration_ms) / 1000 AS p95_s, "
        "quantile(0.99)(query_duration_ms) / 1000 AS p99_s "
        f"FROM {_source(ch, 'system.query_log')} "
        "WHERE event_date >= toDate(now() - toIntervalMinute({m:UInt32})) "
        "AND event_time >= now() - toIntervalMinute({m:UInt32}) AND type = 'QueryFinish' "
        "AND is_initial_query AND query_kind = 'Select' AND user IN {users:Array(String)} "
        f"AND {NOT_LSREADY}{_remote_settings(ch)}",
        {"m": window_minutes, "users": list(users)},
        reads="system.query_log",
        purpose="measure P95 query duration",
    )[0]
    n = int(row["queries"])
    return {
        "window_minutes": window_minutes,
        "queries": n,
        "p95_s": round(float(row["p95_s"]), 3) if n else None,
        "p99_s": round(float(row["p99_s"]), 3) if n else None,
    }


def _max_concurrent(ch: ClickHouseSession) -> int:
    rows = _rows(
        ch,
        "concurrency",
        "SELECT value FROM system.server_settings WHERE name = 'max_concurrent_queries'",
        reads="system.server_settings",
        purpose="read max_concurrent_queries",
    )
    return int(float(rows[0]["value"])) if rows else 0


def _latency_or_none(ch: ClickHouseSession, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """query_latency, or None when query_log is not enabled (the rest of item 29 still stands)."""
    try:
        return query_latency(ch, params["query_users"], int(params["p95_window_minutes"]))
    except TableAbsent:
        return None


def concurrency(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Running queries per replica and P95 query duration against limits, with I/O and part evidence."""
    ch = clients.clickhouse
    warn_q, fail_q = float(params["warn_queries"]), float(params["fail_queries"])
    p95_warn, p95_fail = float(params["p95_warn_s"]), float(params["p95_fail_s"])
    running = running_queries(ch)
    host, busiest = max(running.items(), key=lambda kv: kv[1], default=("", 0))
    cap = _max_concurrent(ch)
    latency = _latency_or_none(ch, params)
    # Stuck mutations are the triage's merges step's business, not this item's: not read here.
    pp = part_pressure(ch, stuck_after_minutes=None, probe="concurrency")
    observed = {
        "running_queries": running,
        "max_concurrent_queries": cap,
        "latency": latency,
        "io": io_counters(ch),
        "merges_running": pp.merges_running,
        "part_pressure": pp.to_dict()["worst"],
    }
    threshold = {k: params[k] for k in ("warn_queries", "fail_queries", "p95_warn_s", "p95_fail_s")}
    status = Status.FAIL if cap and busiest >= cap else grade_high(busiest, warn_q, fail_q)
    limits = f"warn {warn_q:g}, fail {fail_q:g}" + (f", server cap {cap}" if cap else "")
    summary = f"ClickHouse {host or 'server'} is running {busiest} queries ({limits})"
    if latency is None:
        summary += "; P95 unknown: system.query_log is not enabled"
    elif latency["p95_s"] is None:
        summary += f"; no LangSmith SELECT finished in the last {latency['window_minutes']} min"
    else:
        p95 = latency["p95_s"]
        status = worst(status, grade_high(p95, p95_warn, p95_fail))
        summary += (
            f" and P95 query duration over {latency['window_minutes']} min is {p95:g} s "
            f"(warn {p95_warn:g} s, fail {p95_fail:g} s)"
        )
    # Parts piling up toward the insert limits lead saturation too; say so when they do.
    pp_status, pp_text = grade_part_pressure(pp, float(params["parts_warn_ratio"]))
    if pp_status is not Status.PASS:
        status = worst(status, pp_status)
        summary += f"; {pp_text}"
    return Evidence(status, summary + ".", observed, threshold)


# --- Diagnostics: item 61 ------------------------------------------------------------------------


# Each diagnostic table with a bounded read; log tables read only today's partition.
DIAG_TABLES: dict[str, str] = {
    "system.query_log": "SELECT 1 FROM {src} WHERE event_date = today() LIMIT 1",
    "system.parts": "SELECT 1 FROM {src} LIMIT 1",
    "system.merges": "SELECT 1 FROM {src} LIMIT 1",
    "system.mutations": "SELECT 1 FROM {src} LIMIT 1",
    "system.processes": "SELECT 1 FROM {src} LIMIT 1",
    "system.part_log": "SELECT 1 FROM {src} WHERE event_date = today() LIMIT 1",
}
OPTIONAL_DIAG_TABLES = frozenset({"system.part_log"})  # off by default on many servers


def _diag_state(ch: ClickHouseSession, table: str, sql: str) -> tuple[str, str | None]:
    """('readable'|'absent'|'denied', the missing grant) for one diagnostic table."""
    try:
        ch.query("system_tables", sql.format(src=_source(ch, table)) + _remote_settings(ch))
        return "readable", None
    except Exception as exc:
        code = error_code(exc)
        if code == UNKNOWN_TABLE:
            return "absent", None
        if code == ACCESS_DENIED:
            return "denied", needed_grant(exc) or f"SELECT ON {table}"
        raise


def system_tables(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The configured user can read query_log, parts, merges, mutations, processes (and part_log)."""
    ch = clients.clickhouse
    states: dict[str, str] = {}
    grants: list[str] = []
    for table, sql in DIAG_TABLES.items():
        state, grant = _diag_state(ch, table, sql)
        states[table] = state
        if grant:
            grants.append(grant)
    answered, expected = replicas_answering(ch, "system_tables")
    note = _silent_note(answered, expected)
    where = f" on the replicas of cluster '{ch.cluster}'" if ch.cluster else ""
    observed = {
        "tables": states,
        "missing_grants": grants,
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    denied = [t for t, s in states.items() if s == "denied"]
    absent = [t for t, s in states.items() if s == "absent"]
    if denied:
        return Evidence(
            Status.FAIL,
            f"The ClickHouse user cannot read {', '.join(denied)}{where}; "
            f"grant {'; '.join(dict.fromkeys(grants))}{note}.",
            observed,
        )
    required_absent = [t for t in absent if t not in OPTIONAL_DIAG_TABLES]
    if required_absent:
        return Evidence(
            Status.WARN,
            f"{', '.join(required_absent)} is not enabled on this ClickHouse server{where}, so support "
            f"cannot collect query history; enable it in the server config{note}.",
            observed,
        )
    readable = [t for t, s in states.items() if s == "readable"]
    extra = f" ({', '.join(absent)} is not enabled, which is optional)" if absent else ""
    return Evidence(
        Status.WARN if note else Status.PASS,
        f"The ClickHouse user can read {len(readable)} diagnostic system tables{where}{extra}{note}.",
        observed,
    )


# --- Timeouts: item 59 ---------------------------------------------------------------------------


def timeouts_not_masking(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's queries that hit max_execution_time or were cancelled over the window."""
    ch = clients.clickhouse
    hours, allowed = int(params["window_hours"]), int(params["max_timeouts"])
    where = (
        "WHERE event_date >= toDate(now() - toIntervalHour({h:UInt32})) "
        "AND event_time >= now() - toIntervalHour({h:UInt32}) AND type != 'QueryStart' AND is_initial_query "
        f"AND user IN {{users:Array(String)}} AND {NOT_LSREADY}"
    )
    args = {
        "h": hours,
        "users": list(params["query_users"]),
        "codes": [TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED],
    }
    purpose = "count queries cut by timeouts"
    row = _rows(
        ch,
        "timeouts_not_masking",
        f"SELECT count() AS finished, countIf(exception_code = {TIMEOUT_EXCEEDED}) AS timeouts, "
        f"countIf(exception_code = {QUERY_WAS_CANCELLED}) AS cancelled, "
        "topKIf(1)(Settings['max_execution_time'], Settings['max_execution_time'] != '') AS max_exec "
        f"FROM {_source(ch, 'system.query_log')} {where}{_remote_settings(ch)}",
        args,
        reads="system.query_log",
        purpose=purpose,
    )[0]
    # LangSmith starts each query with a `-- <query_type>` comment: name the kinds that time out.
    kinds = _rows(
        ch,
        "timeouts_not_masking",
        r"SELECT extract(query, '^--\\s*(\\S+)') AS kind, count() AS n "
        f"FROM {_source(ch, 'system.query_log')} {where} AND exception_code IN {{codes:Array(Int32)}} "
        f"GROUP BY kind ORDER BY n DESC LIMIT 3{_remote_settings(ch)}",
        args,
        reads="system.query_log",
        purpose=purpose,
    )
    cut = int(row["timeouts"]) + int(row["cancelled"])
    max_exec = row["max_exec"][0] if row["max_exec"] else None
    observed = {
        "window_hours": hours,
        "finished": int(row["finished"]),
        "timeouts": int(row["timeouts"]),
        "cancelled": int(row["cancelled"]),
        "max_execution_time": max_exec,
        "top_kinds": [{"kind": k["kind"] or "(untagged)", "count": int(k["n"])} for k in kinds],
    }
    limit = f"max_execution_time {max_exec} s" if max_exec else "the profile's max_execution_time"
    if cut > allowed:
        shown = ", ".join(f"{k['kind']} ({k['count']})" for k in observed["top_kinds"])
        return Evidence(
            Status.WARN,
            f"{row['timeouts']} LangSmith queries hit {limit} and {row['cancelled']} were cancelled in the "
            f"last {hours} h (allowed {allowed}; top: {shown}): timeouts are cutting slow queries, "
            "look at why they are slow.",
            observed,
            {"max_timeouts": allowed},
        )
    return Evidence(
        Status.PASS,
        f"{cut} of {row['finished']} LangSmith queries timed out or were cancelled in the last {hours} h "
        f"(allowed {allowed}; {limit}).",
        observed,
        {"max_timeouts": allowed},
    )


# --- Runs table: time key, tenant volume (item 56) and ingestion delay ---------------------------
#
# `runs` is big (a day of runs can be billions) and its sort key is LangSmith's, discovered at run
# time. `max_rows_to_read` with read_overflow_mode = 'break' would stop after N rows *read*, in no
# guaranteed order, so a time filter inside a day's partition can spend the whole budget on older
# rows and return nothing, silently. Instead, one query first picks, from system.parts on the same
# server, the active parts of runs that can hold the rows asked for, smallest first (fresh inserts
# come before big merged parts), as many as fit the row limit, and reads only those
# (`_part IN (...)` prunes parts before anything is read). The query returns how many of the
# candidate parts it read, so a result is either complete or says it is a sample. The limit is
# also enforced with read_overflow_mode = 'throw': a server that did not prune answers
# TOO_MANY_ROWS, which becomes a "read limit hit" reason, never an empty answer.

TOO_MANY_ROWS = 158
# Rows of system.parts the part choice itself reads, allowed on top of the runs rows.
PARTS_READ_HEADROOM = 100_000
# A part holding a run inserted at T was written at or after T; this allows for clock skew.
WRITE_SKEW_MINUTES = 5


class ReadLimitHit(LsreadyError):
    """A bounded read of runs would pass its row limit; the message says how to narrow it."""


@dataclass(frozen=True)
class PartsRead:
    """Which candidate parts of runs a bounded read covered: all of them (complete) or a sample."""

    parts_read: int
    parts_total: int
    rows_in_parts_read: int  # the most ClickHouse read from runs
    rows_in_parts_total: int
    max_rows: int

    @property
    def complete(self) -> bool:
        return self.parts_read == self.parts_total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartsRead:
        return cls(**{f: int(data[f]) for f in cls.__dataclass_fields__})

    def describe(self) -> str:
        """'the 3 smallest of 40 parts, 12000 of 9800000 rows, as the read is limited to 5000000 rows'."""
        return (
            f"the {self.parts_read} smallest of {self.parts_total} parts, {self.rows_in_parts_read} of "
            f"{self.rows_in_parts_total} rows, as the read is limited to {self.max_rows} rows"
        )


def _runs_columns(ch: ClickHouseSession, probe: str) -> list[dict[str, Any]]:
    """The runs table's columns; fails unless it is a MergeTree table, since the bounded reads pick
    its parts (one round trip: the engine comes beside each column)."""
    rows = _rows(
        ch,
        probe,
        "SELECT name, type, is_in_partition_key, is_in_sorting_key, (SELECT engine FROM system.tables "
        "WHERE database = {db:String} AND name = 'runs' LIMIT 1) AS engine FROM system.columns "
        "WHERE database = {db:String} AND table = 'runs' ORDER BY position LIMIT 500",
        {"db": ch.database},
        reads="system.columns",
        purpose="find the runs table's columns",
    )
    if not rows:
        raise TableAbsent(
            f"{ch.database}.runs does not exist (or is not visible to this user); run the "
            "backend-ch-migrations job or grant SHOW COLUMNS on it"
        )
    engine = str(rows[0]["engine"] or "")
    if "MergeTree" not in engine:
        raise LsreadyError(
            f"{ch.database}.runs is a {engine or 'missing'} table, not a MergeTree one; lsready bounds its "
            "reads of runs by MergeTree parts and will not scan it unbounded"
        )
    return rows


def runs_time_key(columns: Sequence[Mapping[str, Any]]) -> str:
    """The DateTime column of runs' partition key (else its sort key), so a time filter prunes reads."""
    timed = [c for c in columns if "DateTime" in str(c["type"])]
    for flag in ("is_in_partition_key", "is_in_sorting_key"):
        for col in timed:
            if col[flag]:
                return str(col["name"])
    raise LsreadyError(
        "the runs table has no DateTime column in its partition or sort key; refusing to scan it unbounded"
    )


def _bounded_runs_read(
    ch: ClickHouseSession,
    probe: str,
    *,
    select: str,
    where: str,
    params: Mapping[str, Any],
    max_rows: int,
    started_minutes: int,
    written_minutes: int | None = None,
    group: tuple[str, str] | None = None,
    narrow: str,
    purpose: str,
) -> tuple[dict[str, Any], PartsRead]:
    """One aggregate row over the chosen parts of runs, and which parts those were.

    Candidate parts hold runs that started in the last `started_minutes` (by the partition key's
    min/max time in system.parts; every part counts when the partition key has no time) and, with
    `written_minutes`, were written in that time. `select` aggregates the rows of runs matching
    `where`; with `group` = (columns, key), it aggregates the rows of `SELECT columns ... GROUP BY
    key` instead.
    """
    written = (
        f"AND modification_time >= now() - toIntervalMinute({int(written_minutes) + WRITE_SKEW_MINUTES}) "
        if written_minutes is not None
        else ""
    )
    since = f"now() - toIntervalMinute({int(started_minutes)})"
    plan = (
        "WITH (SELECT groupArray((name, rows, upto)) FROM (SELECT name, rows, sum(rows) OVER (ORDER BY rows, "
        "modification_time DESC, name ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto "
        "FROM system.parts WHERE database = {db:String} AND table = 'runs' AND active "
        f"{written}AND (max_time >= {since} OR max_date >= toDate({since}) "
        "OR (toUnixTimestamp(max_time) = 0 AND max_date = toDate(0))))) AS plan, "
        f"arrayFilter(p -> p.3 <= {int(max_rows)}, plan) AS picked, "
        "arrayMap(p -> p.1, picked) AS chosen "
    )
    parts = (
        "length(plan) AS parts_total, length(picked) AS parts_read, "
        "arraySum(p -> p.2, plan) AS part_rows_total, arraySum(p -> p.2, picked) AS part_rows_read"
    )
    # IN (SELECT ...), not has(chosen, _part): both prune parts, but has() is then evaluated per row.
    runs = f"{_table(ch, 'runs')} WHERE _part IN (SELECT arrayJoin(chosen)) AND {where}"
    source = f"(SELECT {group[0]} FROM {runs} GROUP BY {group[1]})" if group else runs
    sql = (
        f"{plan}SELECT {select}, {parts} FROM {source} "
        f"SETTINGS max_rows_to_read = {int(max_rows) + PARTS_READ_HEADROOM}, read_overflow_mode = 'throw'"
    )
    try:
        row = _rows(
            ch, probe, sql, {"db": ch.database, **params}, reads=f"{ch.database}.runs", purpose=purpose
        )[0]
    except Exception as exc:
        if error_code(exc) == TOO_MANY_ROWS:
            raise ReadLimitHit(
                f"reading {ch.database}.runs would pass the read limit of {max_rows} rows (this server did "
                f"not prune its parts), so nothing was measured; {narrow}"
            ) from exc
        raise
    read = PartsRead(
        int(row.pop("parts_read")),
        int(row.pop("parts_total")),
        int(row.pop("part_rows_read")),
        int(row.pop("part_rows_total")),
        int(max_rows),
    )
    if read.parts_read == 0 and read.parts_total:
        raise ReadLimitHit(
            f"every part of {ch.database}.runs that can hold the runs asked for is larger than the read "
            f"limit of {max_rows} rows ({read.parts_total} parts, {read.rows_in_parts_total} rows), so "
            f"nothing was read; {narrow}"
        )
    return row, read


def tenant_volume(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Evidence for a person: the workspaces (tenants) with the most runs over the window."""
    ch = clients.clickhouse
    hours, top, cap = int(params["window_hours"]), int(params["top"]), int(params["max_rows"])
    key = runs_time_key(_runs_columns(ch, "tenant_volume"))
    row, read = _bounded_runs_read(
        ch,
        "tenant_volume",
        select="arraySlice(arraySort(t -> -t.2, groupArray((tenant, runs))), 1, {top:UInt32}) AS ranked, "
        "sum(runs) AS total",
        group=("toString(tenant_id) AS tenant, count() AS runs", "tenant"),
        where=f"{_ident(key)} >= now() - toIntervalHour({{h:UInt32}})",
        params={"h": hours, "top": top},
        max_rows=cap,
        started_minutes=hours * 60,
        narrow="lower window_hours or raise max_rows for clickhouse.tenant_volume",
        purpose="rank tenants by volume",
    )
    tenants = [{"tenant_id": str(t), "runs": int(n)} for t, n in row["ranked"]]
    counted = int(row["total"])
    observed = {
        "window_hours": hours,
        "time_column": key,
        "top_tenants": tenants,
        "runs_counted": counted,
        "sampled": not read.complete,
        "parts": read.to_dict(),
    }
    table = f"{ch.database}.runs"
    if not tenants and read.complete:
        text = f"No runs in {table} over the last {hours} h; nothing to limit yet"
    elif not tenants:
        text = (
            f"No runs seen in the sample of {table} read for the last {hours} h ({read.describe()}); "
            "the ranking is unknown"
        )
    else:
        shown = ", ".join(f"{t['tenant_id']} ({t['runs']})" for t in tenants)
        where = table
        if not read.complete:
            where = (
                f"a sample of {table} ({counted} runs in {read.describe()}: the freshest inserts, not the "
                "whole window)"
            )
        text = f"Top {len(tenants)} tenants by runs over the last {hours} h in {where}: {shown}"
    return Evidence(
        Status.MANUAL,
        text + "; confirm usage limits exist (or are planned) for the high-volume ones.",
        observed,
    )


def ingestion_delay(
    ch: ClickHouseSession,
    window_minutes: int,
    *,
    max_rows: int,
    slack_minutes: int = 360,
    probe: str = "ingestion_delay",
) -> dict[str, Any]:
    """P50/P95/max seconds from receipt to insert for runs inserted in the last `window_minutes`.

    Uses `received_at` when runs has it, else `trace_first_received_at` (LangSmith's column). Only
    parts written in the window (plus clock skew) can hold those runs, whatever the sort key, so
    the read covers those parts, smallest first, up to `max_rows` rows. Parts whose runs all started
    more than `slack_minutes` before the window are skipped (6 h: REDIS_RUNS_EXPIRY_SECONDS drops
    queued runs older than that). `complete` is False when some of those parts were left unread;
    the quantiles then describe the parts read (the freshest inserts), not every run.
    """
    columns = _runs_columns(ch, probe)
    names = {str(c["name"]) for c in columns}
    received = "received_at" if "received_at" in names else "trace_first_received_at"
    if received not in names or "inserted_at" not in names:
        raise LsreadyError(
            f"{ch.database}.runs has neither received_at nor trace_first_received_at beside inserted_at; "
            "cannot measure ingestion delay"
        )
    delay = f"dateDiff('millisecond', {_ident(received)}, inserted_at) / 1000"
    row, read = _bounded_runs_read(
        ch,
        probe,
        select=f"count() AS rows, quantiles(0.5, 0.95)({delay}) AS q, max({delay}) AS max_s",
        where=f"inserted_at >= now() - toIntervalMinute({{w:UInt32}}) AND {_ident(received)} IS NOT NULL",
        params={"w": window_minutes},
        max_rows=max_rows,
        started_minutes=window_minutes + slack_minutes,
        written_minutes=window_minutes,
        narrow="shorten the window or raise the row limit (delay_window_minutes, delay_max_rows)",
        purpose="measure ingestion delay",
    )
    n = int(row["rows"])
    q = row["q"] if n else [None, None]
    return {
        "table": f"{ch.database}.runs",
        "source": f"inserted_at - {received}",
        "window_minutes": window_minutes,
        "rows": n,
        "complete": read.complete,
        "sampled": not read.complete,
        "parts": read.to_dict(),
        "p50_s": round(float(q[0]), 3) if q[0] is not None else None,
        "p95_s": round(float(q[1]), 3) if q[1] is not None else None,
        "max_s": round(float(row["max_s"]), 3) if n else None,
    }


def grade_ingestion_delay(
    d: Mapping[str, Any], warn_s: float, fail_s: float, *, none_inserted: Status = Status.WARN
) -> tuple[Status, str]:
    """Grade an `ingestion_delay` reading; the checklist probe and the triage step both say it so.

    No runs in a complete read is `none_inserted` (the checklist warns; triage, which must not read
    it as a low or a high delay, passes UNKNOWN). No runs in a partial read proves nothing: UNKNOWN.
    """
    table, window = d["table"], d["window_minutes"]
    sample = PartsRead.from_dict(d["parts"])
    if d["p95_s"] is None and sample.complete:
        return none_inserted, (
            f"No runs were inserted into {table} in the last {window} min (every part written in that "
            "time was read), so the ingestion delay cannot be measured; if traces are being sent, they "
            "are not reaching ClickHouse."
        )
    if d["p95_s"] is None:
        return Status.UNKNOWN, (
            f"No runs seen in the part of {table} read for the last {window} min ({sample.describe()}), "
            "so the ingestion delay was not measured; the read is limited, this does not mean no runs "
            "arrived: shorten the window or raise the row limit."
        )
    text = (
        f"Ingestion delay ({d['source']}) of {d['rows']} runs inserted into {table} over the last "
        f"{window} min: p50 {d['p50_s']:g} s, p95 {d['p95_s']:g} s, max {d['max_s']:g} s "
        f"(warn {warn_s:g} s, fail {fail_s:g} s)"
    )
    if not sample.complete:
        text += f"; a sample of the freshest inserts: {sample.describe()}"
    return grade_high(d["p95_s"], warn_s, fail_s), text + "."


# --- Migrations: item 23 -------------------------------------------------------------------------


def migrations(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The newest golang-migrate row of schema_migrations is clean (dirty = 0)."""
    ch = clients.clickhouse
    exists = ch.query(
        "migrations",
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
        {"db": ch.database},
    )[0]["n"]
    if not exists:
        return Evidence(
            Status.FAIL,
            f"ClickHouse database '{ch.database}' has no schema_migrations table; "
            "the backend-ch-migrations job has not run.",
            {"database": ch.database, "schema_migrations": False},
        )
    rows = ch.query(
        "migrations",
        f"SELECT version, dirty FROM {_table(ch, 'schema_migrations')} ORDER BY sequence DESC LIMIT 1",
    )
    if not rows:
        return Evidence(
            Status.FAIL,
            f"ClickHouse {ch.database}.schema_migrations is empty; no migration has completed.",
            {"database": ch.database, "version": None},
        )
    version, dirty = int(rows[0]["version"]), int(rows[0]["dirty"])
    observed = {"database": ch.database, "version": version, "dirty": bool(dirty)}
    if dirty:
        return Evidence(
            Status.FAIL,
            f"ClickHouse schema_migrations is dirty at version {version}; fix the failed migration, "
            f"then run `migrate ... force {version}` and re-run the backend-ch-migrations job.",
            observed,
            {"dirty": False},
        )
    return Evidence(
        Status.PASS,
        f"ClickHouse schema_migrations is clean at version {version}.",
        observed,
        {"dirty": False},
    )


PROBES = {
    "clickhouse.replicated": replicated,
    "clickhouse.replicas_min": replicas_min,
    "clickhouse.replicas_max": replicas_max,
    "clickhouse.permissions": permissions,
    "clickhouse.migrations": migrations,
    "clickhouse.node_size": node_size,
    "clickhouse.disk_usage": disk_usage,
    "clickhouse.concurrency": concurrency,
    "clickhouse.system_tables": system_tables,
    "clickhouse.timeouts_not_masking": timeouts_not_masking,
    "clickhouse.tenant_volume": tenant_volume,
}
