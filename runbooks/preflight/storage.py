"""Preflight steps on storage: a recent backup of each store, disk headroom and volume expansion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.cluster import Cluster
from checks.errors import LsreadyError
from checks.probes import backups as backup_probe
from checks.probes.clickhouse.reads import disk_usage_by_replica
from checks.probes.common import human_duration, pct
from checks.probes.k8s.objects import name_of
from checks.probes.k8s.storage import clickhouse_storage
from checks.probes.postgres.storage import disk as postgres_disk
from runbooks.preflight.context import PROBE_TAG, Context
from runbooks.preflight.model import Finding, Level, Outcome


def backups(ctx: Context) -> Outcome:
    """The backups evidence of each configured store: a stale or failed backup is a warning.

    A store that shows no backup at all is a note: managed snapshots and clickhouse-backup do not
    show in the stores themselves, so lsready asks instead of claiming there is none.
    """
    stores = [s for s in ("clickhouse", "redis", "postgres") if ctx.clients.has(s)]
    if not stores:
        raise LsreadyError("no datastore is configured, so no backup can be seen")
    ev = backup_probe.evidence(ctx.clients, {})
    max_age = float(ctx.params["backup_max_age_hours"]) * 3600
    findings = []
    for store in stores:
        level, problem = _backup_problem(store, ev.observed.get(store) or {}, max_age)
        if problem:
            findings.append(
                Finding(
                    f"backups.{store}",
                    level,
                    f"{problem} (wanted within {human_duration(max_age)} before an upgrade).",
                    f"Take a {store} backup (or confirm the managed service's snapshot) just before "
                    "upgrading: a migration cannot be rolled back without one.",
                )
            )
    summary = ev.summary.split(". Confirm")[0] + "."
    return Outcome(summary, tuple(findings), ev.observed)


def _backup_problem(store: str, facts: Mapping[str, Any], max_age: float) -> tuple[Level, str | None]:
    """(level, what is wrong) for one store's backup facts; (NOTE, None) when a recent one shows."""
    ok, none_seen, stale = (Level.NOTE, None), Level.NOTE, Level.WARNING
    if "error" in facts:
        return stale, f"The {store} backup state could not be read ({facts['error']})"
    if store == "clickhouse":
        recent = facts.get("recent") or []
        created = [r for r in recent if r.get("status") == "BACKUP_CREATED"]
        if recent and recent[0].get("status") == "BACKUP_FAILED":
            return stale, "ClickHouse's latest BACKUP failed"
        if not created:
            return none_seen, "ClickHouse shows no BACKUP in system.backups since it started"
        age = float(created[0].get("age_s") or 0)
        return (
            ok if age <= max_age else (stale, f"ClickHouse's last BACKUP finished {human_duration(age)} ago")
        )
    if store == "redis":
        if facts.get("rdb_last_bgsave_status") not in (None, "ok"):
            return stale, f"Redis's last background save {facts['rdb_last_bgsave_status']}"
        if facts.get("aof_enabled"):
            return ok
        age = facts.get("rdb_last_save_age_s")
        if age is None:
            return none_seen, "Redis has no AOF and no RDB save time"
        return ok if float(age) <= max_age else (stale, f"Redis saved its last RDB {human_duration(age)} ago")
    if facts.get("archive_mode") in (None, "off"):
        return none_seen, "PostgreSQL does not archive WAL (managed snapshots do not show here)"
    age = facts.get("last_archived_age_s")
    if age is None:
        return stale, "PostgreSQL archives WAL but has archived none yet"
    return (
        ok
        if float(age) <= max_age
        else (stale, f"PostgreSQL archived its last WAL {human_duration(age)} ago")
    )


def disk(ctx: Context) -> Outcome:
    """Disk headroom of ClickHouse and PostgreSQL, and whether the volumes migrations write to can grow."""
    findings: list[Finding] = []
    evidence: dict[str, Any] = {}
    parts: list[str] = []
    read_any = False
    ch_grows: bool | None = None
    if ctx.clients.has("kubernetes"):
        read_any = True
        cluster = ctx.cluster
        storage = clickhouse_storage(cluster)
        if storage is None:
            parts.append("no bundled ClickHouse volume")
        else:
            ch_grows = _expansion(
                cluster, "ClickHouse", storage.class_name, storage.pvc_names, parts, findings
            )
            evidence["clickhouse"] = {"pvcs": storage.pvc_names, "storage_class": storage.class_name}
        pg_claim = cluster.get("persistentvolumeclaims", f"data-{cluster.name('postgres')}-0")
        if pg_claim is not None and cluster.get("statefulsets", cluster.name("postgres")) is not None:
            pg_class = (pg_claim.get("spec") or {}).get("storageClassName")
            _expansion(cluster, "PostgreSQL", pg_class, [name_of(pg_claim)], parts, findings)
            evidence["postgres"] = {"pvc": name_of(pg_claim), "storage_class": pg_class}
    if ctx.clients.has("clickhouse"):
        read_any = True
        disks = disk_usage_by_replica(ctx.clients.clickhouse, PROBE_TAG)
        evidence["disks"] = [d.__dict__ for d in disks[:10]]
        if disks:
            top = disks[0]
            where = f"ClickHouse disk '{top.disk}' on {top.host}"
            finding = _headroom(
                where, top.used_ratio, ch_grows, ctx.params["disk_warn_ratio"], ctx.params["disk_fail_ratio"]
            )
            parts.append(f"{where} is {pct(top.used_ratio)} full")
            findings += finding
        else:
            parts.append("no local ClickHouse disk (object storage only)")
    if ctx.clients.has("postgres") and ctx.clients.has("kubernetes"):
        ev = postgres_disk(
            ctx.clients,
            {"warn_ratio": ctx.params["pg_disk_warn_ratio"], "fail_ratio": ctx.params["pg_disk_fail_ratio"]},
        )
        volume = ev.observed.get("volume")
        if volume and volume.get("capacity_bytes"):  # bundled PostgreSQL: its PVC is the limit
            ratio = ev.observed["used_bytes"] / volume["capacity_bytes"]
            where = f"PostgreSQL PVC {volume['name']}"
            parts.append(f"{where} is {pct(ratio)} full")
            findings += _headroom(
                where, ratio, None, ctx.params["pg_disk_warn_ratio"], ctx.params["pg_disk_fail_ratio"]
            )
    if not read_any:
        raise LsreadyError("neither kubernetes nor clickhouse is configured, so no disk can be seen")
    return Outcome("; ".join(parts) + ".", tuple(findings), evidence)


def _expansion(
    cluster: Cluster,
    store: str,
    class_name: str | None,
    pvcs: list[str],
    parts: list[str],
    findings: list[Finding],
) -> bool:
    """Whether the volumes' StorageClass allows expansion; a warning when it does not."""
    sc = cluster.get("storageclasses", class_name) if class_name else None
    grows = bool((sc or {}).get("allowVolumeExpansion"))
    allows = "allows" if grows else "does not allow"
    parts.append(f"{store} volumes use StorageClass {class_name or 'default'}, which {allows} expansion")
    if not grows:
        findings.append(
            Finding(
                f"disk.expansion_{'postgres' if store == 'PostgreSQL' else store.lower()}",
                Level.WARNING,
                f"StorageClass {class_name or '(default)'} of {', '.join(pvcs)} does not allow volume "
                f"expansion: if the new version's {store} migrations need more room, the volume cannot grow "
                "in place.",
                "Set `allowVolumeExpansion: true` on the StorageClass (or move to one that has it) before "
                "upgrading.",
            )
        )
    return grows


def _headroom(where: str, ratio: float, grows: bool | None, warn: Any, fail: Any) -> list[Finding]:
    """Past fail, or past warn on a volume that cannot grow, blocks; past warn alone warns."""
    warn_r, fail_r = float(warn), float(fail)
    limits = f"warn at {pct(warn_r)}, fail at {pct(fail_r)}"
    if ratio >= fail_r or (ratio >= warn_r and grows is False):
        why = "" if ratio >= fail_r else ", and its volume cannot grow"
        return [
            Finding(
                "disk.headroom",
                Level.BLOCKING,
                f"{where} is {pct(ratio)} full ({limits}{why}): migrations that rewrite data need free space "
                "as large as what they rewrite.",
                "Free or add space first: grow the volume, shorten the shortlived TTL, or drop old "
                "partitions.",
            )
        ]
    if ratio >= warn_r:
        return [
            Finding(
                "disk.headroom",
                Level.WARNING,
                f"{where} is {pct(ratio)} full ({limits}).",
                "Grow the volume before upgrading, so migrations have room.",
            )
        ]
    return []
