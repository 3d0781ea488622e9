"""Probes: `probe(clients, params) -> Evidence`, a package or module per backend, registered explicitly."""

from __future__ import annotations

from checks.errors import CatalogError
from checks.probes.common import ProbeFn


def all_probes() -> dict[str, ProbeFn]:
    """Every probe by name; a name registered twice is an error."""
    from checks.probes import backups, blob, clickhouse, incluster, k8s, network, postgres, redis

    merged: dict[str, ProbeFn] = {}
    for module in (redis, postgres, clickhouse, k8s, blob, network, backups):
        for name, fn in module.PROBES.items():
            if name in merged:
                raise CatalogError(f"probe '{name}' is registered twice")
            merged[name] = fn
    return incluster.extend(merged)
