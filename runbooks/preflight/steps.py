"""The preflight's steps: each a read-only look at one thing an upgrade depends on, as findings.

A step is `step(ctx) -> Outcome`; it raises when it cannot tell, and the runner turns that into
`unknown` with the reason. The reads are the probes' (checks.probes.*): nothing here queries a
store that a probe already knows how to read. The last step, what the new values change, is in
changes.py; the Context every step reads is in context.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.cluster import Cluster
from checks.errors import LsreadyError
from checks.model import Status
from checks.probes import backups as backup_probe
from checks.probes.clickhouse.reads import disk_usage_by_replica, grade_part_pressure, part_pressure
from checks.probes.clickhouse.reads import migrations as clickhouse_migrations
from checks.probes.common import human_duration, pct
from checks.probes.k8s.objects import deployments, env_on, name_of
from checks.probes.k8s.storage import clickhouse_storage
from checks.probes.postgres.storage import disk as postgres_disk
from checks.probes.redis import queue_depths
from checks.probes.release import HOOK_JOBS, alembic_heads, api_info, hook_jobs, parse_version, versions
from runbooks.preflight.changes import new_values
from runbooks.preflight.context import PROBE_TAG, Context
from runbooks.preflight.model import Finding, Level, Outcome
from runbooks.preflight.notes import notes_for

# --- State now ---------------------------------------------------------------------------------


def running_versions(ctx: Context) -> Outcome:
    """Image tags, chart labels and /api/info; a mixed rollout and a downgrade are findings."""
    findings: list[Finding] = []
    evidence: dict[str, Any] = {}
    parts: list[str] = []
    cluster_error: Exception | None = None
    chart = None
    try:
        v = versions(ctx.cluster)
        evidence.update(v.to_dict())
        chart = v.chart
        tags = sorted(set(v.images.values()))
        parts.append(
            f"LangSmith {v.app or 'version unknown'} ({len(v.images)} Deployments), chart "
            f"{'langsmith-' + chart if chart else 'unknown (no helm.sh/chart label)'}"
        )
        if len(tags) > 1:
            by_tag = ", ".join(f"{d} {t}" for d, t in sorted(v.images.items()))
            findings.append(
                Finding(
                    "versions.mixed",
                    Level.WARNING,
                    f"Deployments run different image tags ({by_tag}): an earlier rollout has not finished.",
                    f"Find the Deployment that lags (`kubectl -n {ctx.namespace} rollout status "
                    "deploy/<name>`) and let it finish before upgrading again.",
                )
            )
        if len(v.charts) > 1:
            findings.append(
                Finding(
                    "versions.mixed_chart",
                    Level.WARNING,
                    f"Objects of release {v.release} carry several chart versions "
                    f"({', '.join(sorted(v.charts))}).",
                    "Check `helm history` for a failed or partial upgrade before running another.",
                )
            )
    except Exception as exc:  # /api/info may still tell the version; else this is the step's reason
        cluster_error = exc
    if ctx.config.langsmith is not None:
        try:
            info = api_info(
                ctx.config.langsmith.base_url, ctx.config.langsmith.api_key, ctx.clients.timeout_s
            )
            evidence["api_info_version"] = info.get("version")
            parts.append(f"/api/info version {info.get('version', 'not given')}")
        except LsreadyError as exc:
            evidence["api_info_error"] = str(exc)
            parts.append(f"/api/info not read ({exc})")
    if cluster_error is not None and "api_info_version" not in evidence:
        raise cluster_error
    if ctx.to_version:
        parts.append(f"upgrading to chart {ctx.to_version}")
        findings += _direction(chart, ctx.to_version)
    return Outcome("; ".join(parts) + ".", tuple(findings), evidence)


def _direction(chart: str | None, to: str) -> list[Finding]:
    now, target = parse_version(chart or ""), parse_version(to)
    if now is None or target is None:
        return []
    if target < now:
        return [
            Finding(
                "versions.downgrade",
                Level.BLOCKING,
                f"Chart {to} is older than the running {chart}: a downgrade does not undo the database "
                "migrations the newer version ran, and the older code may not read the newer schema.",
                f"Upgrade to {chart} or later, or restore the backups taken before {chart} was installed.",
            )
        ]
    if target == now:
        return [
            Finding("versions.same", Level.NOTE, f"Chart {to} is already running: only the values change.")
        ]
    return []


def version_notes(ctx: Context) -> Outcome:
    """The notes of notes.yaml for an upgrade from the running chart to --to."""
    if not ctx.to_version:
        return Outcome("No --to given: version notes are read only for a target chart version.")
    chart = versions(ctx.cluster).chart
    if chart is None:
        raise LsreadyError(
            "the running chart version is unknown (no helm.sh/chart label), so no note can be chosen"
        )
    notes = notes_for(chart, ctx.to_version)
    findings = tuple(n.finding(ctx.fullname) for n in notes)
    if not notes:
        return Outcome(
            f"No version note applies from chart {chart} to {ctx.to_version}.", evidence={"from": chart}
        )
    names = ", ".join(n.at for n in notes)
    return Outcome(
        f"{len(notes)} note(s) apply from chart {chart} to {ctx.to_version} (at {names}).",
        findings,
        {"from": chart, "to": ctx.to_version, "notes": [n.id for n in notes]},
    )


def clickhouse_schema(ctx: Context) -> Outcome:
    """The clickhouse.migrations probe: the newest schema_migrations row is not dirty."""
    ev = clickhouse_migrations(ctx.clients, {})
    if ev.status is Status.PASS:
        return Outcome(ev.summary, evidence=ev.observed)
    action = ctx.remediation.get("clickhouse.migrations", "").replace("<fullname>", ctx.fullname)
    return Outcome(
        ev.summary, (Finding("clickhouse.migrations", Level.BLOCKING, ev.summary, action),), ev.observed
    )


def postgres_schema(ctx: Context) -> Outcome:
    """alembic_version holds exactly one row: the database is at a single migration head."""
    schema, heads = alembic_heads(ctx.clients.postgres)
    evidence = {"schema": schema, "heads": heads}
    job = f"{ctx.fullname}-backend-migrations"
    if schema is None or not heads:
        text = (
            "PostgreSQL has no alembic_version table"
            if schema is None
            else f"PostgreSQL {schema}.alembic_version is empty"
        )
        text += f": the {job} Job has never completed."
        action = (
            f"Run the install's migrations (`kubectl -n {ctx.namespace} logs job/{job}`) before upgrading."
        )
        return Outcome(text, (Finding("postgres.migrations", Level.BLOCKING, text, action),), evidence)
    if len(heads) > 1:
        text = (
            f"PostgreSQL {schema}.alembic_version has {len(heads)} heads ({', '.join(heads)}): migrations "
            "branched and were never merged, so the next migration run cannot tell where to start."
        )
        action = (
            f"Read the {job} Job logs and ask LangChain support before upgrading; do not edit the table "
            "by hand."
        )
        return Outcome(text, (Finding("postgres.migrations", Level.BLOCKING, text, action),), evidence)
    return Outcome(f"PostgreSQL migrations are at a single head ({heads[0]}).", evidence=evidence)


_JOB_ACTIONS = {
    "backend-migrations": (
        "Read `kubectl -n {ns} logs job/{job}`, fix the cause, then let `helm upgrade` run the migrations "
        "again; do not skip them."
    ),
    "backend-ch-migrations": (
        "Read `kubectl -n {ns} logs job/{job}`; if schema_migrations is dirty, fix the cause and "
        "`migrate ... force <version>`, then let `helm upgrade` run the Job again."
    ),
    "backend-backfill-check": (
        "Let the unfinished backfills complete (the Job's log names them): the pre-upgrade hook fails "
        "every upgrade until they do."
    ),
    "e2e-test": (
        "Read `kubectl -n {ns} logs job/{job}`: the install was not healthy after its last upgrade; fix "
        "that before layering another upgrade on it."
    ),
}


def hook_job_state(ctx: Context) -> Outcome:
    """The newest Job of each chart hook: a failed or still-running one is a finding."""
    runs = hook_jobs(ctx.cluster)
    findings: list[Finding] = []
    parts = []
    for hook, run in runs.items():
        label = HOOK_JOBS[hook]
        if run is None:
            parts.append(f"{label}: no Job left")
            continue
        action = _JOB_ACTIONS[hook].format(ns=ctx.namespace, job=run.job)
        if run.state == "succeeded":
            parts.append(f"{label}: {run.job} succeeded {human_duration(run.finished_age_s)} ago")
        elif run.state == "running":
            parts.append(f"{label}: {run.job} running")
            findings.append(
                Finding(
                    f"jobs.{hook}",
                    Level.BLOCKING,
                    f"Job {run.job} ({label}) is still running, started {human_duration(run.started_age_s)} "
                    "ago: an upgrade is in progress.",
                    f"Wait for it: `kubectl -n {ctx.namespace} wait --for=condition=complete job/{run.job}`.",
                )
            )
        else:
            parts.append(f"{label}: {run.job} failed")
            why = f" ({run.message})" if run.message else ""
            level = Level.WARNING if hook == "e2e-test" else Level.BLOCKING
            findings.append(
                Finding(
                    f"jobs.{hook}",
                    level,
                    f"Job {run.job} ({label}) failed {human_duration(run.finished_age_s)} ago{why}.",
                    action,
                )
            )
    summary = "; ".join(parts) + "."
    if all(r is None for r in runs.values()):
        summary += " The chart deletes hook Jobs ttlSecondsAfterFinished after they finish."
    evidence = {h: (None if r is None else r.__dict__) for h, r in runs.items()}
    return Outcome(summary, tuple(findings), evidence)


def clickhouse_work(ctx: Context) -> Outcome:
    """No stuck mutation and no part pressure: migrations ALTER tables and queue behind both."""
    minutes = float(ctx.params["stuck_mutation_minutes"])
    warn_ratio = float(ctx.params["parts_warn_ratio"])
    pp = part_pressure(ctx.clients.clickhouse, stuck_after_minutes=minutes, probe=PROBE_TAG)
    _, text = grade_part_pressure(pp, warn_ratio, minutes)
    findings = []
    for m in pp.stuck_mutations[:3]:
        why = f"; latest failure: {m.latest_fail_reason}" if m.latest_fail_reason else ""
        findings.append(
            Finding(
                "clickhouse.stuck_mutation",
                Level.BLOCKING,
                f"Mutation {m.mutation_id} on {pp.database}.{m.table} is unfinished after "
                f"{human_duration(m.age_s)} with {m.parts_to_do} parts to do (stuck after "
                f"{minutes:g} min){why}.",
                f"Find why in `system.mutations` (latest_fail_reason), fix it, or `KILL MUTATION WHERE "
                f"mutation_id = '{m.mutation_id}'`: the upgrade's migrations ALTER these tables and "
                "wait behind it.",
            )
        )
    top = pp.worst
    if top is not None and top.ratio >= warn_ratio:
        level = Level.BLOCKING if top.ratio >= 1 else Level.WARNING
        findings.append(
            Finding(
                "clickhouse.part_pressure",
                level,
                f"{pp.database}.{top.table} partition {top.partition} has {top.parts} active parts "
                f"(warn at {pct(warn_ratio)} of {top.delay_at}, inserts slow at {top.delay_at}).",
                "Let merges catch up before upgrading (running merges in `system.merges`, free disk in "
                "`system.disks`): the restart and migrations add inserts and merges on top.",
            )
        )
    return Outcome(text + ".", tuple(findings), pp.to_dict())


def queues(ctx: Context) -> Outcome:
    """The oldest waiting run must survive the workers' restart within REDIS_RUNS_EXPIRY_SECONDS."""
    depths = queue_depths(ctx.clients.redis, int(ctx.params["queue_sample_keys"]))
    expiry, where = _runs_expiry(ctx)
    window = float(ctx.params["restart_window_s"])
    warn = float(ctx.params["queue_warn"])
    evidence: dict[str, Any] = {
        "queues": {q.label: q.to_dict() for q in depths},
        "runs_expiry_s": expiry,
        "runs_expiry_from": where,
        "restart_window_s": window,
    }
    findings = []
    waiting = sum(q.waiting for q in depths)
    oldest = max(depths, key=lambda q: q.oldest_age_s or 0.0, default=None)
    age = oldest.oldest_age_s if oldest is not None else None
    if oldest is not None and age is not None and age + window >= expiry:
        findings.append(
            Finding(
                "redis.queue_expiry",
                Level.BLOCKING,
                f"Redis queue {oldest.label}'s oldest job has waited {human_duration(age)}; with "
                f"{human_duration(window)} of worker restarts it passes REDIS_RUNS_EXPIRY_SECONDS "
                f"({expiry:g}, {where}) and its runs are dropped.",
                "Drain the queues before upgrading (scale the workers; `lsready triage --runbook "
                "queue-depth` shows the drain) until the oldest job is younger than "
                f"{human_duration(max(0.0, expiry - window))}.",
            )
        )
    busiest = max(depths, key=lambda q: q.waiting, default=None)
    if busiest is not None and busiest.waiting > warn:
        findings.append(
            Finding(
                "redis.queue_depth",
                Level.WARNING,
                f"Redis queue {busiest.label} has {busiest.waiting} waiting jobs (warn above {warn:g}): the "
                "workers' restart adds to the backlog.",
                "Upgrade when the queues are near empty, or expect a catch-up after the rollout.",
            )
        )
    age_text = f", the oldest waiting {human_duration(age)}" if age is not None else ""
    summary = (
        f"{waiting} jobs wait in {len(depths)} Redis queues{age_text}; runs expire after {expiry:g} s "
        f"({where}), a worker restart is allowed {human_duration(window)}."
    )
    return Outcome(summary, tuple(findings), evidence)


def _runs_expiry(ctx: Context) -> tuple[float, str]:
    """REDIS_RUNS_EXPIRY_SECONDS as the workers run with it, else the catalog's value."""
    if ctx.clients.has("kubernetes"):
        try:
            cluster = ctx.cluster
            found = env_on(cluster, deployments(cluster), "REDIS_RUNS_EXPIRY_SECONDS")
            value = next((float(v) for v in found.values() if v and v.strip().isdigit()), None)
            if value is not None:
                return value, "the Deployments' environment"
        except Exception:  # the cluster is optional here: the catalog value stands in
            pass
    return float(ctx.params["runs_expiry_s"]), "catalog redis.monitored"


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


# --- The runbook -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    fn: Callable[[Context], Outcome]


STEPS: tuple[Step, ...] = (
    Step("versions", "Running version and chart", running_versions),
    Step("notes", "Notes for the target chart version", version_notes),
    Step("clickhouse-migrations", "ClickHouse schema_migrations not dirty", clickhouse_schema),
    Step("postgres-migrations", "PostgreSQL migrations at a single head", postgres_schema),
    Step("hook-jobs", "Migration, backfill-check and e2e hook Jobs", hook_job_state),
    Step("clickhouse-work", "ClickHouse mutations and part pressure", clickhouse_work),
    Step("queues", "Redis queues drained enough for a worker restart", queues),
    Step("backups", "A recent backup of each store", backups),
    Step("disk", "Disk headroom and volume expansion", disk),
    Step("values", "What the new values change", new_values),
)

__all__ = ["STEPS", "Context", "Step"]
