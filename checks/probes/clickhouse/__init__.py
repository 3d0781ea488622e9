"""ClickHouse probes: LangSmith's trace store. Every query is read-only, bounded and tagged.

Every LangSmith table is qualified with the configured database. With a cluster configured,
per-server system tables are read on every replica through `clusterAllReplicas`, skipping replicas
that do not answer (and saying so). A table that is absent (system logs are opt-in) or not readable
raises an error naming it, which the runner reports as `unknown`. deploy/grants/clickhouse.sql
grants exactly what these queries read. Runbooks read through `reads`. Every number a verdict
compares against comes in `params`, from checks/catalog.yaml.
"""

from __future__ import annotations

from checks.probes.clickhouse.capacity import disk_usage, node_size
from checks.probes.clickhouse.grants import permissions, system_tables
from checks.probes.clickhouse.load import concurrency, timeouts_not_masking
from checks.probes.clickhouse.runs import tenant_volume
from checks.probes.clickhouse.topology import migrations, replicas_max, replicas_min, replicated

PROBES = {
    "clickhouse.replicated": replicated,
    "clickhouse.replicas_min": replicas_min,
    "clickhouse.replicas_max": replicas_max,
    "clickhouse.permissions": permissions,
    "clickhouse.migrations": migrations,
    "clickhouse.node_size": node_size,
    "clickhouse.disk_usage": disk_usage,
    "clickhouse.concurrency": concurrency,
    "clickhouse.system_tables": system_tables,
    "clickhouse.timeouts_not_masking": timeouts_not_masking,
    "clickhouse.tenant_volume": tenant_volume,
}
