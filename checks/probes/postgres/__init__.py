"""PostgreSQL probes: LangSmith's metadata store, latency-sensitive and connection-bound.

Every query is a SELECT (or a SHOW-like `current_setting`) in lsready's read-only session
(checks.clients.PostgresSession), and works for a role that has only `pg_monitor` and CONNECT
(deploy/grants/postgres.sql). A missing privilege raises, and the runner reports it as unknown.
"""

from __future__ import annotations

from checks.probes.postgres.connections import connection_reuse, max_connections, pooling
from checks.probes.postgres.maintenance import autovacuum, monitoring
from checks.probes.postgres.server import managed, not_embedded
from checks.probes.postgres.storage import backups, disk, storage_latency

PROBES = {
    "postgres.managed": managed,
    "postgres.not_embedded": not_embedded,
    "postgres.storage_latency": storage_latency,
    "postgres.backups": backups,
    "postgres.max_connections": max_connections,
    "postgres.pooling": pooling,
    "postgres.connection_reuse": connection_reuse,
    "postgres.monitoring": monitoring,
    "postgres.disk": disk,
    "postgres.autovacuum": autovacuum,
}
