"""The shared reads of one triage: each run at most once, on its own daemon thread, stamped.

The reads themselves are the probes' (checks.probes.clickhouse.reads `running_queries`, `part_pressure`,
`disk_usage_by_replica`, `io_counters`, `ingestion_delay`; checks.probes.redis `queue_depths`), so the
evidence snapshot and the later steps see the same numbers and a hung backend holds only its own readers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from checks.clients import Clients
from checks.execution import run_probe
from checks.probes.clickhouse.reads import (
    disk_usage_by_replica,
    ingestion_delay,
    io_counters,
    part_pressure,
    running_queries,
)
from checks.probes.published_queues import read_published
from checks.probes.redis import QueueDepth, queue_depths

PROBE_TAG = "triage"  # ClickHouse queries start with `-- lsready:triage`


def _stamp(value: Any) -> dict[str, Any]:
    return {"at": datetime.now(UTC), "mono": time.monotonic(), "value": value}


def _read_running(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(running_queries(clients.clickhouse, PROBE_TAG))


def _read_parts(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    minutes = float(p["stuck_mutation_minutes"])
    return _stamp(part_pressure(clients.clickhouse, stuck_after_minutes=minutes, probe=PROBE_TAG))


def _read_disks(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(disk_usage_by_replica(clients.clickhouse, PROBE_TAG))


def _read_io(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(io_counters(clients.clickhouse, PROBE_TAG))


def _read_delay(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    window = int(p["delay_window_minutes"])
    return _stamp(
        ingestion_delay(clients.clickhouse, window, max_rows=int(p["delay_max_rows"]), probe=PROBE_TAG)
    )


def _read_queues(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    r = clients.redis
    depths = queue_depths(r, int(p["queue_sample_keys"]))
    return _stamp({"depths": depths, "ends": list_ends(r, depths, 1)})


def _read_published(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    """LangSmith's own published depths (what KEDA scales on), beside the Redis reading."""
    return _stamp(read_published(clients.target, clients.timeout_s, lambda: clients.cluster.release))


READERS: dict[str, Callable[[Clients, Mapping[str, Any]], dict[str, Any]]] = {
    "clickhouse.running": _read_running,
    "clickhouse.parts": _read_parts,
    "clickhouse.disks": _read_disks,
    "clickhouse.io": _read_io,
    "clickhouse.delay": _read_delay,
    "redis.queues": _read_queues,
    "langsmith.queues": _read_published,
}


class Readings:
    """Each reader started once, on first request, on a daemon thread; waits end at the probe timeout."""

    def __init__(self, clients: Clients, params: Mapping[str, Any]) -> None:
        self.clients = clients
        self.params = params
        self.timeout_s = clients.timeout_s  # the probe timeout, as the clients carry it
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[float, Future[Any]]] = {}

    def start(self, name: str) -> tuple[float, Future[Any]]:
        with self._lock:
            if name not in self._futures:
                self._futures[name] = (time.monotonic(), run_probe(READERS[name], self.clients, self.params))
            return self._futures[name]

    def get(self, name: str) -> dict[str, Any]:
        """The stamped reading; raises its error, or TimeoutError after the probe timeout."""
        started, future = self.start(name)
        return future.result(timeout=max(0.0, started + self.timeout_s - time.monotonic()))

    def value(self, name: str) -> Any:
        return self.get(name)["value"]


def list_ends(r: Any, depths: list[QueueDepth], count: int) -> dict[str, tuple[int, list[str]]]:
    """Per queue: its length and its `count` newest ids, newest first, read back to back.

    One pipeline, so length and ids describe nearly the same moment. LRANGE, not LPOS: the
    read-only ACL (deploy/grants) allows LRANGE; MULTI is not granted, so this is not atomic.
    """
    pipe = r.pipeline(transaction=False)
    for q in depths:
        pipe.llen(q.waiting_key)
        pipe.lrange(q.waiting_key, -count, -1) if q.pushed_right else pipe.lrange(q.waiting_key, 0, count - 1)
    replies = pipe.execute()
    out = {}
    for n, q in enumerate(depths):
        length, ids = int(replies[2 * n]), list(replies[2 * n + 1])
        out[q.label] = (length, ids[::-1] if q.pushed_right else ids)
    return out
