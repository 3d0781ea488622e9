"""Preflight steps on work in flight: ClickHouse mutations and parts, and the Redis queues a
worker restart must not let expire."""

from __future__ import annotations

from typing import Any

from checks.probes.clickhouse.reads import grade_part_pressure, part_pressure
from checks.probes.common import human_duration, pct
from checks.probes.k8s.objects import deployments, env_on
from checks.probes.redis import queue_depths
from runbooks.preflight.context import PROBE_TAG, Context
from runbooks.preflight.model import Finding, Level, Outcome


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
