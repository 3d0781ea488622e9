"""A LangSmith-shaped schema for the embedded engines: real table, column and key names.

Column names of `runs` follow LangSmith's ClickHouse migrations; the engine, partitioning and
sort key here are a reasonable stand-in, which is why probes discover them at run time.
"""

from __future__ import annotations

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


def build_postgres(psql: Any) -> None:
    psql(POSTGRES_SCHEMA)


def build_redis(client: Any, *, queued: int = 3) -> None:
    """saq and asynq queue keys as LangSmith's workers leave them, with a few jobs waiting."""
    client.delete("saq:default:queued", "asynq:queues", "asynq:{ingest}:pending")
    for n in range(queued):
        client.rpush("saq:default:queued", f"saq:job:default:demo-{n}")
    client.sadd("asynq:queues", "ingest")
    for n in range(queued):
        client.rpush("asynq:{ingest}:pending", f"demo-task-{n}")
