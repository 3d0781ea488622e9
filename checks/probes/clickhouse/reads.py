"""What runbooks, bundles and other probes read from ClickHouse: the public surface of this package."""

from __future__ import annotations

from checks.probes.clickhouse.capacity import DiskUse, disk_usage_by_replica
from checks.probes.clickhouse.load import io_counters, running_queries
from checks.probes.clickhouse.parts import PartPressure, grade_part_pressure, part_pressure
from checks.probes.clickhouse.query import UNKNOWN_TABLE, error_code, query_rows
from checks.probes.clickhouse.runs import grade_ingestion_delay, ingestion_delay, tenant_volume
from checks.probes.clickhouse.topology import migrations

__all__ = [
    "UNKNOWN_TABLE",
    "DiskUse",
    "PartPressure",
    "disk_usage_by_replica",
    "error_code",
    "grade_ingestion_delay",
    "grade_part_pressure",
    "ingestion_delay",
    "io_counters",
    "migrations",
    "part_pressure",
    "query_rows",
    "running_queries",
    "tenant_volume",
]
