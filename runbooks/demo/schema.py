"""A LangSmith-shaped schema for the embedded engines: real table, column and key names.

Column names of `runs` follow LangSmith's ClickHouse migrations; the engine, partitioning and
sort key here are a reasonable stand-in, which is why probes discover them at run time.
"""

from __future__ import annotations

import json
from typing import Any

CLICKHOUSE_TABLES = [
    """
    CREATE TABLE IF NOT EXISTS `{db}`.runs (
        id UUID,
        trace_id UUID,
        tenant_id UUID,
        session_id UUID,
        parent_run_id Nullable(UUID),
        is_root Bool,
        name String,
        run_type LowCardinality(String),
        status LowCardinality(String),
        start_time DateTime64(6, 'UTC'),
        end_time Nullable(DateTime64(6, 'UTC')),
        inputs String,
        outputs String,
        error Nullable(String),
        extra String,
        inserted_at DateTime64(6, 'UTC') DEFAULT now64(6),
        trace_first_received_at Nullable(DateTime64(6, 'UTC')),
        ttl_seconds Nullable(UInt64),
        modified_at DateTime64(6, 'UTC') DEFAULT now64(6)
    ) ENGINE = ReplacingMergeTree(modified_at)
    PARTITION BY toDate(start_time)
    ORDER BY (tenant_id, session_id, is_root, start_time, id)
    """,
    """
    CREATE TABLE IF NOT EXISTS `{db}`.feedbacks (
        id UUID, run_id UUID, trace_id UUID, tenant_id UUID, session_id UUID,
        key String, score Nullable(Float64), created_at DateTime64(6, 'UTC') DEFAULT now64(6),
        modified_at DateTime64(6, 'UTC') DEFAULT now64(6)
    ) ENGINE = ReplacingMergeTree(modified_at)
    ORDER BY (tenant_id, session_id, run_id, key, id)
    """,
    """
    CREATE TABLE IF NOT EXISTS `{db}`.schema_migrations (
        version Int64, dirty UInt8, sequence UInt64
    ) ENGINE = ReplacingMergeTree(sequence) ORDER BY sequence
    """,
]

LATEST_MIGRATION = 125

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) PRIMARY KEY);
CREATE TABLE IF NOT EXISTS organizations (id uuid PRIMARY KEY, display_name text NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (id uuid PRIMARY KEY, organization_id uuid REFERENCES organizations(id),
    display_name text NOT NULL);
CREATE TABLE IF NOT EXISTS tracer_session (id uuid PRIMARY KEY, tenant_id uuid REFERENCES tenants(id),
    name text NOT NULL, start_time timestamptz NOT NULL DEFAULT now());
INSERT INTO alembic_version VALUES ('demo_head') ON CONFLICT DO NOTHING;
"""


def build_clickhouse(client: Any, db: str = "default", *, runs: int = 2000, dirty: bool = False) -> None:
    """Create the tables, record clean migrations, and insert recent runs."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    for ddl in CLICKHOUSE_TABLES:
        client.command(ddl.format(db=db))
    client.command(
        f"INSERT INTO `{db}`.schema_migrations SELECT number + 1, "
        f"if(number + 1 = {LATEST_MIGRATION} AND {int(dirty)}, 1, 0), number + 1 "
        f"FROM numbers({LATEST_MIGRATION})"
    )
    if runs:
        client.command(
            f"""
            INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, status,
                start_time, inputs, outputs, extra, inserted_at, trace_first_received_at)
            SELECT generateUUIDv4(), generateUUIDv4(),
                toUUID(concat('00000000-0000-0000-0000-00000000000', toString(number % 3))),
                toUUID(concat('00000000-0000-0000-0001-00000000000', toString(number % 5))),
                true, 'chain', 'chain', 'success',
                now64(6) - toIntervalSecond(number % 3600),
                '{{}}', '{{}}', '{{}}',
                now64(6) - toIntervalSecond(number % 3600) + toIntervalMillisecond(200 + number % 800),
                now64(6) - toIntervalSecond(number % 3600)
            FROM numbers({runs})
            """
        )


def build_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(POSTGRES_SCHEMA)


def build_redis(client: Any, *, queued: int = 3) -> None:
    """saq and asynq queue keys as LangSmith's workers leave them, with a few jobs waiting."""
    client.delete("saq:default:queued", "asynq:queues", "asynq:{ingest}:pending")
    for n in range(queued):
        client.rpush("saq:default:queued", f"saq:job:default:demo-{n}")
    client.sadd("asynq:queues", "ingest")
    for n in range(queued):
        client.rpush("asynq:{ingest}:pending", f"demo-task-{n}")


# --- Queue jobs shaped like the workers' own, for the incident scenarios --------------------------


def push_saq_jobs(client: Any, queue: str, queued_at: list[float], prefix: str = "demo") -> list[str]:
    """saq jobs as `Queue.enqueue` leaves them: a JSON job string, the incomplete ZSET, RPUSH to queued."""
    pipe = client.pipeline(transaction=False)
    ids = []
    for n, at in enumerate(queued_at):
        key = f"{prefix}-{n}-{int(at * 1000)}"
        job_id = f"saq:job:{queue}:{key}"
        job = {"function": "persist_run_or_parent", "key": key, "queue": queue, "status": "queued",
               "queued": int(at * 1000), "kwargs": {}}  # fmt: skip
        pipe.set(job_id, json.dumps(job))
        pipe.zadd(f"saq:{queue}:incomplete", {job_id: 0})
        pipe.rpush(f"saq:{queue}:queued", job_id)
        ids.append(job_id)
    pipe.execute()
    return ids


def push_asynq_tasks(client: Any, queue: str, pending_since: list[float], prefix: str = "demo") -> list[str]:
    """asynq tasks as its enqueue script leaves them: the task hash with pending_since (ns), LPUSH pending."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd("asynq:queues", queue)
    ids = []
    for n, at in enumerate(pending_since):
        task_id = f"{prefix}-{n}-{int(at * 1000)}"
        pipe.hset(
            f"asynq:{{{queue}}}:t:{task_id}",
            mapping={"msg": "ingest", "state": "pending", "pending_since": int(at * 1e9)},
        )
        pipe.lpush(f"asynq:{{{queue}}}:pending", task_id)
        ids.append(task_id)
    pipe.execute()
    return ids


def take_saq_job(client: Any, queue: str) -> bool:
    """What a saq worker does with the oldest job, end to end: dequeue from the left, finish, forget."""
    job_id = client.lpop(f"saq:{queue}:queued")
    if job_id is None:
        return False
    client.zrem(f"saq:{queue}:incomplete", job_id)
    client.delete(job_id)
    return True


def take_asynq_task(client: Any, queue: str) -> bool:
    """What an asynq worker does with the oldest task: dequeue from the right, process, delete."""
    task_id = client.rpop(f"asynq:{{{queue}}}:pending")
    if task_id is None:
        return False
    task = task_id.decode() if isinstance(task_id, bytes) else task_id
    client.delete(f"asynq:{{{queue}}}:t:{task}")
    return True


def insert_runs(
    client: Any, db: str, rows: int, *, received_before_s: tuple[int, int], spread_s: int
) -> None:
    """Runs inserted over the last `spread_s` s, each received `received_before_s` (min, max) s before."""
    low, high = received_before_s
    client.command(
        f"""
        INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, status,
            start_time, inputs, outputs, extra, inserted_at, trace_first_received_at)
        SELECT generateUUIDv4(), generateUUIDv4(),
            toUUID('00000000-0000-0000-0000-000000000001'), toUUID('00000000-0000-0000-0001-000000000001'),
            true, 'chain', 'chain', 'success',
            ins - toIntervalSecond(gap), '{{}}', '{{}}', '{{}}', ins, ins - toIntervalSecond(gap)
        FROM (
            SELECT now64(6) - toIntervalSecond(number % {spread_s}) AS ins,
                {low} + (number * 7919) % ({high - low} + 1) AS gap
            FROM numbers({rows})
        )
        """
    )
