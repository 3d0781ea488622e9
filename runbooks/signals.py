"""The write path's signals of one target, read once, for the exporter (and anything that exports them).

One `collect` reads, concurrently and each under the probe timeout, what the triage reads (queue
depths from Redis, running queries, parts, disks, ingestion delay from ClickHouse), LangSmith's
own published queue depths, and runs the whole checklist; the whole collection ends by the run
deadline. A source that does not answer is missing from the result with its reason; the others
stand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from checks.clients import Clients
from checks.config import Config
from checks.engine import check_prepared
from checks.execution import reason, run_probe
from checks.model import Attestation
from checks.prepared import prepare
from checks.probes.clickhouse.reads import (
    DiskUse,
    PartPressure,
    disk_usage_by_replica,
    ingestion_delay,
    part_pressure,
    running_queries,
)
from checks.probes.published_queues import (
    Disagreement,
    PublishedDepth,
    backend_depths,
    disagreements,
    endpoints,
    platform_depths,
)
from checks.probes.redis import QueueDepth, queue_depths
from checks.registry import Catalog
from checks.runner import Report
from runbooks.definitions import RUNBOOKS
from runbooks.triage import resolve_thresholds

PROBE_TAG = "exporter"  # ClickHouse queries start with `-- lsready:exporter`
# Backends whose answer makes a refresh successful; LangSmith's endpoints are a second opinion
# (often unreachable from outside the cluster), so they do not count.
ESSENTIAL = ("redis", "clickhouse")


@dataclass(frozen=True)
class QueueReading:
    queue: str  # saq:<q> or asynq:<q>
    source: str  # "redis", "backend" or "platform-backend"
    depth: int
    oldest_age_s: float | None = None


@dataclass
class Signals:
    """What one refresh of one target saw; `errors` names each source that did not answer."""

    target: str
    started_at: float  # epoch seconds
    duration_s: float = 0.0
    report: Report | None = None
    queues: list[QueueReading] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    delay: dict[str, Any] | None = None
    running: dict[str, int] | None = None
    parts: PartPressure | None = None
    disks: list[DiskUse] | None = None
    up: dict[str, bool] = field(default_factory=dict)  # per configured backend
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def successful(self) -> bool:
        """The checklist ran and every essential backend that is configured answered."""
        return self.report is not None and all(self.up.get(b, True) for b in ESSENTIAL)


def signal_params(catalog: Catalog) -> dict[str, Any]:
    """The triage's resolved thresholds: the same windows and limits, from the same catalog."""
    return resolve_thresholds(RUNBOOKS["trace-visibility"], catalog)


def _redis_queues(c: Clients, p: Mapping[str, Any]) -> tuple[float, list[QueueDepth]]:
    at = time.time()
    return at, queue_depths(c.redis, int(p["queue_sample_keys"]))


def _published(kind: str) -> Callable[[Clients, Mapping[str, Any]], list[PublishedDepth]]:
    def read(c: Clients, p: Mapping[str, Any]) -> list[PublishedDepth]:
        found = endpoints(c.target, lambda: c.cluster.release)
        url = None if found is None else (found.backend if kind == "backend" else found.platform_backend)
        if url is None:
            raise LookupError(f"no {kind} URL (set queue_endpoints or kubernetes.release)")
        return (backend_depths if kind == "backend" else platform_depths)(url, c.timeout_s)

    return read


READS: dict[str, tuple[str, Callable[[Clients, Mapping[str, Any]], Any]]] = {
    # name: (backend it needs, reader)
    "queues": ("redis", _redis_queues),
    "running": ("clickhouse", lambda c, p: running_queries(c.clickhouse, PROBE_TAG)),
    "parts": (
        "clickhouse",
        lambda c, p: part_pressure(
            c.clickhouse, stuck_after_minutes=float(p["stuck_mutation_minutes"]), probe=PROBE_TAG
        ),
    ),
    "disks": ("clickhouse", lambda c, p: disk_usage_by_replica(c.clickhouse, PROBE_TAG)),
    "delay": (
        "clickhouse",
        lambda c, p: ingestion_delay(
            c.clickhouse, int(p["delay_window_minutes"]), max_rows=int(p["delay_max_rows"]), probe=PROBE_TAG
        ),
    ),
    "backend": ("backend", _published("backend")),
    "platform-backend": ("platform-backend", _published("platform-backend")),
}


def _configured(c: Clients, backend: str) -> bool:
    if backend in ("backend", "platform-backend"):
        return endpoints(c.target, lambda: "?") is not None
    return c.has(backend)


def collect(
    config: Config,
    target: str,
    catalog: Catalog,
    *,
    attestations: Mapping[str, Attestation] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Signals:
    """Read every signal of `target` at once; returns by `timeouts.run_s`, whatever the backends do."""
    started, mono = time.time(), time.monotonic()
    run = prepare(config, target, catalog=catalog)
    deadline = mono + run.deadline_s
    params = signal_params(run.catalog) if params is None else params
    out = Signals(run.name, started)
    with run.clients() as clients:
        futures: dict[str, Future[Any]] = {
            read: run_probe(fn, clients, params)  # type: ignore[arg-type]
            for read, (backend, fn) in READS.items()
            if _configured(clients, backend)
        }
        report_future: Future[Report] = Future()
        _in_thread(report_future, lambda: check_prepared(run, attestations=attestations, clients=clients))
        got: dict[str, Any] = {}
        for read, future in futures.items():
            per_read = min(deadline, mono + clients.timeout_s) - time.monotonic()
            try:
                got[read] = future.result(timeout=max(0.0, per_read))
            except FutureTimeout:
                out.errors[read] = f"no answer within {clients.timeout_s:g} s"
            except Exception as exc:
                out.errors[read] = reason(exc)
        try:
            out.report = report_future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            out.errors["check"] = f"the checklist did not finish within {run.deadline_s:g} s"
        except Exception as exc:
            out.errors["check"] = reason(exc)
    _fill(out, got)
    for read, (backend, _) in READS.items():
        if read in futures:
            out.up[backend] = out.up.get(backend, True) and read not in out.errors
    out.duration_s = time.monotonic() - mono
    return out


def _in_thread(future: Future[Any], fn: Callable[[], Any]) -> None:
    import threading

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, name="exporter-check", daemon=True).start()


def _fill(out: Signals, got: Mapping[str, Any]) -> None:
    redis_at, redis_depths = got.get("queues", (0.0, []))
    for q in redis_depths:
        out.queues.append(QueueReading(q.label, "redis", q.waiting, q.oldest_age_s))
    published = [*got.get("backend", []), *got.get("platform-backend", [])]
    for p in published:
        out.queues.append(QueueReading(p.queue, p.service, p.pending))
    if "queues" in got:
        out.disagreements = disagreements(published, {q.label: q.waiting for q in redis_depths}, redis_at)
    out.running = got.get("running")
    out.parts = got.get("parts")
    out.disks = got.get("disks")
    out.delay = got.get("delay")
