"""Incident scenarios for `lsready demo --scenario NAME`, created by real operations on real engines.

Each scenario builds the LangSmith-shaped schema, then does to it what an incident does: stops
merges and floods a partition with small inserts under a low table-level parts_to_delay_insert,
enqueues jobs that have waited for minutes, inserts runs that arrived long after they were
received, runs queries that hold ClickHouse busy, and keeps producers and workers moving jobs
through the real queue keys while the triage samples them. Nothing is mocked: the triage reads
these engines exactly as it reads a production target.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.errors import LsreadyError
from runbooks.demo.schema import (
    build_clickhouse,
    insert_runs,
    push_asynq_tasks,
    push_saq_jobs,
    take_asynq_task,
    take_saq_job,
)
from runbooks.model import DiagnosisKind

log = logging.getLogger(__name__)

SAQ_QUEUE, ASYNQ_QUEUE = "default", "ingest"

# The embedded ClickHouse writes to this machine's disk, whose fill level says nothing about the
# incident; scenarios grade disk use only when it is nearly full, so every run reaches the same verdict.
SCENARIO_THRESHOLDS: dict[str, dict[str, Any]] = {
    "clickhouse.disk_usage": {"warn_ratio": 0.97, "fail_ratio": 0.99}
}


class UnknownScenario(LsreadyError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name, list(SCENARIOS), n=1, cutoff=0.4)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"there is no demo scenario '{name}'.{hint} Scenarios: {', '.join(SCENARIOS)}.")


@dataclass
class Stage:
    """Where a scenario plays: an admin ClickHouse client and database, and a Redis client."""

    ch: Any
    db: str
    redis: Any
    connect_ch: Callable[[], Any]  # another ClickHouse client, for queries that run alongside


class Running(Protocol):
    def stop(self) -> None: ...


class Traffic:
    """Producers and workers on the real queue keys: jobs in and out at steady rates per queue."""

    def __init__(self, r: Any, *, arrive_per_s: float, drain_per_s: float) -> None:
        self.r, self.arrive, self.drain = r, arrive_per_s, drain_per_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick, owed_in, owed_out, n = 0.05, 0.0, 0.0, 0
        try:
            while not self._stop.wait(tick):
                owed_in, owed_out = owed_in + self.arrive * tick, owed_out + self.drain * tick
                while owed_in >= 1:
                    n, owed_in = n + 1, owed_in - 1
                    push_saq_jobs(self.r, SAQ_QUEUE, [time.time()], prefix=f"live{n}")
                    push_asynq_tasks(self.r, ASYNQ_QUEUE, [time.time()], prefix=f"live{n}")
                while owed_out >= 1:
                    owed_out -= 1
                    take_saq_job(self.r, SAQ_QUEUE)
                    take_asynq_task(self.r, ASYNQ_QUEUE)
        except Exception:  # the engines are going away under us; the scenario is over
            log.debug("demo traffic stopped", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


class BusyQueries:
    """Queries that keep ClickHouse busy, each about `seconds` long, back to back until stopped."""

    def __init__(self, connect: Callable[[], Any], count: int = 3, seconds: float = 1.5) -> None:
        self._stop = threading.Event()
        rows = max(1, round(seconds / 0.5))
        # sleepEachRow cannot be cancelled, so each query is short and the loop checks between them.
        self.sql = f"SELECT sleepEachRow(0.5) FROM numbers({rows}) SETTINGS max_block_size = 1"
        self._threads = [
            threading.Thread(target=self._run, args=(connect,), name=f"demo-busy-{n}", daemon=True)
            for n in range(count)
        ]
        for t in self._threads:
            t.start()

    def _run(self, connect: Callable[[], Any]) -> None:
        try:
            client = connect()
            while not self._stop.is_set():
                client.query(self.sql)
        except Exception:
            log.debug("demo queries stopped", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@dataclass
class Background:
    parts: list[Running] = field(default_factory=list)

    def stop(self) -> None:
        for part in self.parts:
            part.stop()


def _ages(count: int, oldest_s: float, newest_s: float) -> list[float]:
    """Enqueue times spread evenly from `oldest_s` to `newest_s` seconds ago, oldest first."""
    now = time.time()
    step = (oldest_s - newest_s) / max(1, count - 1)
    return [now - oldest_s + n * step for n in range(count)]


def _queues(r: Any, *, saq: list[float] | None = None, asynq: list[float] | None = None) -> None:
    """Empty the queues, then enqueue jobs at these enqueue times (epoch seconds)."""
    r.delete(f"saq:{SAQ_QUEUE}:queued", f"saq:{SAQ_QUEUE}:incomplete", f"asynq:{{{ASYNQ_QUEUE}}}:pending")
    if saq:
        push_saq_jobs(r, SAQ_QUEUE, saq)
    if asynq:
        push_asynq_tasks(r, ASYNQ_QUEUE, asynq)


def healthy(stage: Stage) -> Running:
    """Recent runs that landed within a second; workers drain faster than jobs arrive."""
    build_clickhouse(stage.ch, stage.db)
    _queues(stage.redis, saq=_ages(3, 2, 0), asynq=_ages(3, 2, 0))
    return Traffic(stage.redis, arrive_per_s=4, drain_per_s=8)


def clickhouse_saturation(stage: Stage) -> Running:
    """Merges stopped and a partition flooded past parts_to_delay_insert; queries pile up; queues slow."""
    build_clickhouse(stage.ch, stage.db)
    runs = f"`{stage.db}`.runs"
    stage.ch.command(f"SYSTEM STOP MERGES {runs}")
    limits = "parts_to_delay_insert = 20, parts_to_throw_insert = 40"
    stage.ch.command(f"ALTER TABLE {runs} MODIFY SETTING {limits}")
    for _ in range(22):  # one part per insert, as un-batched writers do; the last few get delayed
        insert_runs(stage.ch, stage.db, 1, received_before_s=(1, 1), spread_s=1)
    _queues(stage.redis, asynq=_ages(80, 300, 30))
    busy = BusyQueries(stage.connect_ch)
    return Background([busy, Traffic(stage.redis, arrive_per_s=3, drain_per_s=1)])


def queue_backlog(stage: Stage) -> Running:
    """Hundreds of jobs waiting for up to 40 minutes, more arriving, none leaving; ClickHouse idle."""
    build_clickhouse(stage.ch, stage.db)
    _queues(stage.redis, saq=_ages(150, 1200, 30), asynq=_ages(400, 2400, 60))
    return Traffic(stage.redis, arrive_per_s=6, drain_per_s=0)


def ingestion_delay(stage: Stage) -> Running:
    """Runs landing minutes after they were received, while the queues stay short and keep moving."""
    build_clickhouse(stage.ch, stage.db)
    insert_runs(stage.ch, stage.db, 3000, received_before_s=(90, 600), spread_s=600)
    _queues(stage.redis, saq=_ages(5, 3, 0), asynq=_ages(5, 3, 0))
    return Traffic(stage.redis, arrive_per_s=2, drain_per_s=2)


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: DiagnosisKind
    create: Callable[[Stage], Running]

    @property
    def description(self) -> str:
        return (self.create.__doc__ or "").strip()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", DiagnosisKind.HEALTHY, healthy),
        Scenario("clickhouse-saturation", DiagnosisKind.CLICKHOUSE_SATURATION, clickhouse_saturation),
        Scenario("queue-backlog", DiagnosisKind.INGESTION_BACKPRESSURE, queue_backlog),
        Scenario("ingestion-delay", DiagnosisKind.INSERT_PATH_DELAY, ingestion_delay),
    )
}


def get_scenario(name: str) -> Scenario:
    scenario = SCENARIOS.get(name.strip().lower())
    if scenario is None:
        raise UnknownScenario(name)
    return scenario


@contextlib.contextmanager
def play(name: str, stage: Stage) -> Iterator[Scenario]:
    """Create the incident on the stage; its background activity runs until the block ends."""
    scenario = get_scenario(name)
    running = scenario.create(stage)
    try:
        yield scenario
    finally:
        running.stop()
