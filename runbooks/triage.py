"""`triage`: walk a runbook against a live target and say what is wrong with the write path.

Every step's measurement starts at once, each on a daemon thread (independent reads overlap: the
snapshot and the ClickHouse reads do not wait for the queue sample). The engine then walks the
path: it waits only for the step it needs next, each until its own budget (probe timeout, plus the
sample interval for sampling steps) or the deadline, whichever comes first. A step that does not
answer in time is `unknown`; results of steps off the path are dropped.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from checks.cluster import CHART_NAME
from checks.config import Config, TargetConfig
from checks.errors import LsreadyError
from checks.execution import run_probe, settled
from checks.model import Evidence, Status
from checks.prepared import prepare
from checks.registry import Catalog
from checks.secrets import Redactor
from runbooks.definitions import RUNBOOKS, SIGNALS
from runbooks.engine import RunbookError, diagnose, next_step, validate
from runbooks.measure import MEASURES, Readings
from runbooks.model import Runbook, Step, StepResult, TriageResult

__all__ = ["RUNBOOKS", "UnknownRunbook", "get_runbook", "triage"]

log = logging.getLogger(__name__)

DEADLINE_CAP_S = 20.0  # the default deadline: config.timeouts.run_s, but never longer than this
_GRACE_S = 0.25  # lets a measurement report its own timeout reason before the walk gives up on it


class UnknownRunbook(LsreadyError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name, list(RUNBOOKS), n=1, cutoff=0.4)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"there is no runbook '{name}'.{hint} Runbooks: {', '.join(RUNBOOKS)}.")


def get_runbook(name: str) -> Runbook:
    """The named runbook, checked for consistency; UnknownRunbook suggests the closest name."""
    book = RUNBOOKS.get(name.strip().lower())
    if book is None:
        raise UnknownRunbook(name)
    validate(book, list(MEASURES), list(SIGNALS))
    return book


def resolve_thresholds(book: Runbook, catalog: Catalog) -> dict[str, Any]:
    """The runbook's thresholds read from the catalog's items and signals (config overrides applied)."""
    out: dict[str, Any] = {}
    for key, ref in book.thresholds.items():
        values = catalog.thresholds(ref.item)
        if values is None or ref.key not in values:
            raise RunbookError(
                f"runbook threshold {key} refers to {ref.item}.{ref.key}, which is not in the catalog"
            )
        out[key] = values[ref.key]
    return out


def triage(
    config: Config,
    target: str | None = None,
    runbook: str = "trace-visibility",
    *,
    on_step: Callable[[StepResult], None] | None = None,
    deadline_s: float | None = None,
    sample_interval_s: float | None = None,
    catalog: Catalog | None = None,
) -> TriageResult:
    """Walk `runbook` against `target` and diagnose it; never raises for a backend's trouble.

    `on_step` is called once per step on the path, as soon as the engine can place it, with the
    redacted StepResult. It is called from worker threads (the measurement's; the caller's only
    when a step times out), concurrently with measurements still running and with the caller,
    so it must be thread-safe. The calls themselves never overlap and come in path order. Keep
    it quick: the walk waits for it. An exception from it is logged and ignored.

    `catalog` is the config's (`catalog_for`), when the caller already holds it.

    Raises LsreadyError subclasses for bad input only: UnknownRunbook, UnknownTarget, ConfigError.
    """
    book = get_runbook(runbook)
    run = prepare(config, target, deadline_s=deadline_s, deadline_cap_s=DEADLINE_CAP_S, catalog=catalog)
    params = resolve_thresholds(book, run.catalog)
    deadline, probe_s = run.deadline_s, run.probe_s
    interval = float(params["sample_interval_s"] if sample_interval_s is None else sample_interval_s)
    # The two samples must fit in the deadline with room for the reads themselves.
    params["sample_interval_s"] = max(0.0, min(interval, deadline / 3))

    started_at, t0 = datetime.now(UTC), time.monotonic()
    walk = _Walk(book, on_step, run.redactor)
    with run.clients() as clients:
        readings = Readings(clients, params)
        budgets = {}
        for step in book.steps:
            measure = MEASURES[step.measure]
            extra = params["sample_interval_s"] if measure.samples else 0.0
            budgets[step.id] = min(t0 + probe_s + extra + _GRACE_S, t0 + deadline)
            _start(step, readings, params, walk)
        walk.wait(budgets, t0)
    diagnosis = diagnose(book, walk.path, _names(run.target))
    return TriageResult(book.name, run.name, diagnosis, tuple(walk.path), started_at, time.monotonic() - t0)


def _names(target: TargetConfig) -> dict[str, str]:
    """Namespace and chart fullname for the actions, from config; the chart's defaults otherwise."""
    kube = target.kubernetes
    release = (kube.release if kube else None) or CHART_NAME
    fullname = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return {"namespace": kube.namespace if kube else "langsmith", "fullname": fullname}


def _start(step: Step, readings: Readings, params: Mapping[str, Any], walk: _Walk) -> None:
    measure = MEASURES[step.measure]
    began = time.monotonic()
    future = run_probe(lambda _clients, p: measure.fn(readings, p), readings.clients, params)

    def done(f: Future[Evidence]) -> None:
        walk.record(_result(step, _evidence(f, readings.timeout_s), time.monotonic() - began))

    future.add_done_callback(done)


def _evidence(future: Future[Evidence], probe_s: float) -> Evidence:
    """The finished measurement's Evidence, or `unknown` with the reason it could not tell.

    A bare TimeoutError is a reading that did not come within the probe timeout; a measurement's
    own socket timeout (also a TimeoutError) is reported with its message, as the runner does.
    """
    return settled(future, probe_s, to="measure this step", name="a triage measurement")


def _result(step: Step, ev: Evidence, took: float) -> StepResult:
    return StepResult(step.id, step.title, ev.status, ev.summary, dict(ev.observed), datetime.now(UTC), took)


class _Walk:
    """The path so far; results arrive from worker threads, the caller's thread enforces budgets."""

    def __init__(
        self, book: Runbook, on_step: Callable[[StepResult], None] | None, redactor: Redactor
    ) -> None:
        self.book = book
        self.on_step = on_step
        self.redactor = redactor
        self.cond = threading.Condition()  # reentrant: record() may run while wait() holds it
        self.finished: dict[str, StepResult] = {}
        self.path: list[StepResult] = []
        self.current = next_step(book, [])

    def record(self, result: StepResult) -> None:
        with self.cond:
            if result.step_id in self.finished:
                return  # a late answer after the walk gave up on the step
            self.finished[result.step_id] = self._redacted(result)
            while self.current is not None and self.current in self.finished:
                placed = self.finished[self.current]
                self.path.append(placed)
                self._emit(placed)
                self.current = next_step(self.book, self.path)
            self.cond.notify_all()

    def wait(self, budgets: Mapping[str, float], t0: float) -> None:
        """Until the walk ends; a step not finished within its budget is recorded as unknown."""
        with self.cond:
            while self.current is not None:
                left = budgets[self.current] - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                step, limit = self.book.step(self.current), budgets[self.current] - t0
                text = f"No answer within {limit:.1f} s; the backend is slow or unreachable."
                self.record(_result(step, Evidence(Status.UNKNOWN, text, {"timed_out": True}), limit))

    def _redacted(self, r: StepResult) -> StepResult:
        return StepResult(
            r.step_id,
            r.title,
            r.status,
            self.redactor.text(r.summary),
            self.redactor.value(r.evidence),
            r.at,
            r.duration_s,
        )

    def _emit(self, result: StepResult) -> None:
        if self.on_step is None:
            return
        try:
            self.on_step(result)
        except Exception:
            log.warning("on_step callback failed for step %s", result.step_id, exc_info=True)
