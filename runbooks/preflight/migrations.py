"""Preflight steps on migrations: ClickHouse and PostgreSQL schema state, and the Helm hook Jobs."""

from __future__ import annotations

from checks.model import Status
from checks.probes.clickhouse.reads import migrations as clickhouse_migrations
from checks.probes.common import human_duration
from checks.probes.release import HOOK_JOBS, alembic_heads, hook_jobs
from runbooks.preflight.context import Context
from runbooks.preflight.model import Finding, Level, Outcome


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
