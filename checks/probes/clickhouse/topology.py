"""ClickHouse topology and schema: replication, replica counts and migrations (items 18-20, 23)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checks.clients import Clients
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes.clickhouse.query import (
    BOOKKEEPING_TABLES,
    REPLICATED_PREFIXES,
    merge_tree_tables,
    query_rows,
    table_ref,
)
from checks.sessions import ClickHouseSession

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
        rows = query_rows(
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
        for r in merge_tree_tables(ch, probe, "see the LangSmith tables' engines")
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
        for r in query_rows(
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
        f"SELECT version, dirty FROM {table_ref(ch, 'schema_migrations')} ORDER BY sequence DESC LIMIT 1",
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
