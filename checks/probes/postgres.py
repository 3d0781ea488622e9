"""PostgreSQL probes: LangSmith's metadata store, latency-sensitive and connection-bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.model import Evidence
from checks.probes.common import grade_high, pct


def max_connections(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Connections in use stay well under max_connections (minus the superuser reserve)."""
    row = clients.postgres.query(
        "SELECT current_setting('max_connections')::int AS max_connections,"
        " current_setting('superuser_reserved_connections')::int AS reserved,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use"
    )[0]
    usable = max(1, row["max_connections"] - row["reserved"])
    ratio = row["in_use"] / usable
    observed = {**row, "usable": usable, "used_ratio": round(ratio, 4)}
    threshold = {"warn_ratio": params["warn_ratio"], "fail_ratio": params["fail_ratio"]}
    status = grade_high(ratio, params["warn_ratio"], params["fail_ratio"])
    return Evidence(
        status,
        f"PostgreSQL has {row['in_use']} of {usable} usable connections in use ({pct(ratio)}, "
        f"max_connections {row['max_connections']}); warn at {pct(params['warn_ratio'])}, "
        f"fail at {pct(params['fail_ratio'])}.",
        observed,
        threshold,
    )


PROBES = {
    "postgres.max_connections": max_connections,
}
