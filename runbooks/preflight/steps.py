"""The preflight's steps: each a read-only look at one thing an upgrade depends on, as findings.

A step is `step(ctx) -> Outcome`; it raises when it cannot tell, and the runner turns that into
`unknown` with the reason. The reads are the probes' (checks.probes.*): nothing here queries a
store that a probe already knows how to read. The steps live by topic: versions.py (running
version, notes), migrations.py (schemas, hook Jobs), in_flight.py (mutations, parts, queues),
storage.py (backups, disk) and changes.py (what the new values change); the Context every step
reads is in context.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runbooks.preflight.changes import new_values
from runbooks.preflight.context import Context
from runbooks.preflight.in_flight import clickhouse_work, queues
from runbooks.preflight.migrations import clickhouse_schema, hook_job_state, postgres_schema
from runbooks.preflight.model import Outcome
from runbooks.preflight.storage import backups, disk
from runbooks.preflight.versions import running_versions, version_notes


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
