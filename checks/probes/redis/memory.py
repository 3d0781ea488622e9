"""Redis memory items: maxmemory sized with headroom, and eviction or OOM under memory pressure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import grade_high, human_bytes, pct

EVICTING_PREFIXES = ("allkeys-", "volatile-")


def memory(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """maxmemory is set and used memory stays under it with headroom."""
    info = clients.redis.info("memory")
    used = int(info.get("used_memory", 0))
    maxmemory = int(info.get("maxmemory", 0))
    observed = {
        "used_memory": used,
        "used_memory_peak": int(info.get("used_memory_peak", 0)),
        "maxmemory": maxmemory,
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
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
    # The peak shows how close a past burst came, which a quiet moment hides.
    observed["peak_ratio"] = round(observed["used_memory_peak"] / maxmemory, 4)
    status = grade_high(ratio, params["warn_ratio"], params["fail_ratio"])
    shown = pct(ratio, params["warn_ratio"], params["fail_ratio"])
    return Evidence(
        status,
        f"Redis uses {human_bytes(used)} of maxmemory {human_bytes(maxmemory)} ({shown}); "
        f"warn at {pct(params['warn_ratio'])}, fail at {pct(params['fail_ratio'])}.",
        observed,
        threshold,
    )


def eviction(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """No keys were evicted, the policy never evicts, and writes are not being refused for memory."""
    r = clients.redis
    mem = r.info("memory")
    evicted = int(r.info("stats").get("evicted_keys", 0))
    oom = _oom_errors(r)
    policy = str(mem.get("maxmemory_policy", "unknown"))
    maxmemory = int(mem.get("maxmemory", 0))
    observed = {
        "evicted_keys": evicted,
        "maxmemory_policy": policy,
        "maxmemory": maxmemory,
        "oom_rejected_commands": oom,
        "mem_fragmentation_ratio": mem.get("mem_fragmentation_ratio"),
    }
    threshold = {"evicted_keys": params["evicted_keys_fail"], "maxmemory_policy": "noeviction"}
    status, summary = _eviction_verdict(evicted, policy, maxmemory, oom, params)
    return Evidence(status, summary, observed, threshold)


def _eviction_verdict(
    evicted: int, policy: str, maxmemory: int, oom: int, params: Mapping[str, Any]
) -> tuple[Status, str]:
    if evicted > params["evicted_keys_fail"]:
        return Status.FAIL, (
            f"Redis evicted {evicted} keys since its last restart or stats reset (maxmemory-policy "
            f"{policy}), so queued runs can have been dropped; set noeviction and size maxmemory for the "
            "write volume."
        )
    if policy.startswith(EVICTING_PREFIXES):
        return Status.WARN, (
            f"Redis maxmemory-policy is {policy}, which silently drops keys (queued runs included) under "
            "memory pressure; set it to noeviction."
        )
    if oom:
        return Status.WARN, (
            f"Redis refused {oom} commands with OOM at maxmemory {human_bytes(maxmemory)} (policy {policy}), "
            "so ingest writes are failing under memory pressure; raise maxmemory or scale the workers."
        )
    if maxmemory == 0:
        return Status.WARN, (
            f"Redis maxmemory is 0 (unbounded) with policy {policy}, so memory pressure ends in an "
            "out-of-memory kill instead of refused writes; set maxmemory below the container limit."
        )
    return Status.PASS, (
        f"Redis has evicted no keys and uses maxmemory-policy {policy} with maxmemory "
        f"{human_bytes(maxmemory)}."
    )


def _oom_errors(r: Any) -> int:
    # INFO errorstats exists from Redis 6.2; an older server simply reports nothing.
    stats = r.info("errorstats")
    entry = stats.get("errorstat_OOM")
    return int(entry.get("count", 0)) if isinstance(entry, Mapping) else 0
