"""Redis probes: the write-path buffer between platform-backend and the queue workers.

Read-only by construction: INFO, SCAN (bounded, never KEYS), LLEN, LRANGE of one element, GET,
HGET, SMEMBERS and CLIENT LIST; deploy/grants/redis-acl.conf allows exactly these.
"""

from __future__ import annotations

from checks.probes.redis.memory import eviction, memory
from checks.probes.redis.monitoring import monitored
from checks.probes.redis.placement import (
    MANAGED_SUFFIXES,
    bundled_redis,
    external,
    placement_verdict,
    server_hints,
)
from checks.probes.redis.queues import QueueDepth, queue_depths, scan_sample
from checks.probes.redis.sharing import foreign_prefixes, key_prefix, not_shared

__all__ = [
    "MANAGED_SUFFIXES",
    "PROBES",
    "QueueDepth",
    "bundled_redis",
    "eviction",
    "external",
    "foreign_prefixes",
    "key_prefix",
    "memory",
    "monitored",
    "not_shared",
    "placement_verdict",
    "queue_depths",
    "scan_sample",
    "server_hints",
]

PROBES = {
    "redis.memory": memory,
    "redis.external": external,
    "redis.not_shared": not_shared,
    "redis.monitored": monitored,
    "redis.eviction": eviction,
}
