"""PostgreSQL storage: latency of the data volume, backups (WAL archiving) and disk use."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import (
    cluster_lookup,
    grade_high,
    human_bytes,
    human_duration,
    pct,
    quantity,
)
from checks.probes.postgres.server import ROUND_TRIPS_PER_QUERY, ServerFacts, server_facts
from checks.sessions import PostgresSession

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
