"""ClickHouse probes: LangSmith's trace store. Every query is read-only, bounded and tagged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status


def migrations(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The newest golang-migrate row of schema_migrations is clean (dirty = 0)."""
    ch = clients.clickhouse
    exists = ch.query(
        "migrations",
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
        {"db": ch.database},
    )[0]["n"]
    if not exists:
        return Evidence(
            Status.FAIL,
            f"ClickHouse database '{ch.database}' has no schema_migrations table; "
            "the backend-ch-migrations job has not run.",
            {"database": ch.database, "schema_migrations": False},
        )
    rows = ch.query(
        "migrations",
        f"SELECT version, dirty FROM `{ch.database}`.schema_migrations ORDER BY sequence DESC LIMIT 1",
    )
    if not rows:
        return Evidence(
            Status.FAIL,
            f"ClickHouse {ch.database}.schema_migrations is empty; no migration has completed.",
            {"database": ch.database, "version": None},
        )
    version, dirty = int(rows[0]["version"]), int(rows[0]["dirty"])
    observed = {"database": ch.database, "version": version, "dirty": bool(dirty)}
    if dirty:
        return Evidence(
            Status.FAIL,
            f"ClickHouse schema_migrations is dirty at version {version}; fix the failed migration, "
            f"then run `migrate ... force {version}` and re-run the backend-ch-migrations job.",
            observed,
            {"dirty": False},
        )
    return Evidence(
        Status.PASS,
        f"ClickHouse schema_migrations is clean at version {version}.",
        observed,
        {"dirty": False},
    )


PROBES = {
    "clickhouse.migrations": migrations,
}
