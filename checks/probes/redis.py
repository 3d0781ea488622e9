"""Redis probes: the write-path buffer between platform-backend and the queue workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import grade_high, human_bytes, pct


def memory(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """maxmemory is set and used memory stays under it with headroom."""
    info = clients.redis.info("memory")
    used = int(info.get("used_memory", 0))
    maxmemory = int(info.get("maxmemory", 0))
    observed = {"used_memory": used, "maxmemory": maxmemory, "maxmemory_policy": info.get("maxmemory_policy")}
    threshold = {"warn_ratio": params["warn_ratio"], "fail_ratio": params["fail_ratio"]}
    if maxmemory == 0:
        return Evidence(
            Status.WARN,
            f"Redis maxmemory is 0 (unbounded, now using {human_bytes(used)}); "
            "set it to fit the write volume so memory pressure is visible before the node runs out.",
            observed,
            threshold,
        )
    ratio = used / maxmemory
    observed["used_ratio"] = round(ratio, 4)
    status = grade_high(ratio, params["warn_ratio"], params["fail_ratio"])
    return Evidence(
        status,
        f"Redis uses {human_bytes(used)} of maxmemory {human_bytes(maxmemory)} ({pct(ratio)}); "
        f"warn at {pct(params['warn_ratio'])}, fail at {pct(params['fail_ratio'])}.",
        observed,
        threshold,
    )


PROBES = {
    "redis.memory": memory,
}
