"""Measurements for the triage runbooks: shared, bounded reads of ClickHouse and Redis, graded.

`readings` runs each read at most once per triage; `queues`, `clickhouse` and `snapshot` grade them.
What is new beside the probes is the second sample: queue arrivals and drain, and disk I/O rates,
measured over `sample_interval_s`.

A measurement is `measure(readings, params) -> Evidence`; `params` are the runbook's resolved
thresholds (runbooks.definitions). It raises when it cannot tell; the triage turns that into `unknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.model import Evidence
from runbooks.measure.clickhouse import clickhouse_load, delay, merges
from runbooks.measure.queues import QueueFlow, arrived_since, queue_drain, queue_flow
from runbooks.measure.readings import PROBE_TAG, READERS, Readings
from runbooks.measure.snapshot import SNAPSHOT_READS, SnapshotEmpty, snapshot

__all__ = [
    "MEASURES",
    "PROBE_TAG",
    "READERS",
    "SNAPSHOT_READS",
    "Measure",
    "QueueFlow",
    "Readings",
    "SnapshotEmpty",
    "arrived_since",
    "clickhouse_load",
    "delay",
    "merges",
    "queue_drain",
    "queue_flow",
    "snapshot",
]


@dataclass(frozen=True)
class Measure:
    fn: Callable[[Readings, Mapping[str, Any]], Evidence]
    samples: bool = False  # waits `sample_interval_s` for a second sample, on top of the probe timeout


MEASURES: dict[str, Measure] = {
    "snapshot": Measure(snapshot),
    "clickhouse_load": Measure(clickhouse_load, samples=True),
    "queue_drain": Measure(queue_drain, samples=True),
    "merges": Measure(merges),
    "ingestion_delay": Measure(delay),
}
