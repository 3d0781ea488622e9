"""Running one probe: its own daemon thread, and its outcome (even a hang or a crash) as Evidence.

This sits below the registry and the runner, so a probe that runs other probes (the backups item
reads each store on its own thread) uses it without importing the runner that runs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from checks.backends import describe, waiting_on
from checks.clients import Clients, ProbeThread
from checks.errors import NotConfigured
from checks.model import Evidence, Status
from checks.reach import LABELS, unreachable, why

log = logging.getLogger(__name__)


class ProbeFuture(Future[Evidence]):
    """A probe's future, with the thread that runs it."""

    thread: threading.Thread | None = None


def run_probe(fn: Callable[..., Evidence], clients: Clients, params: Mapping[str, Any]) -> Future[Evidence]:
    """Start one probe on a daemon thread; the future carries its Evidence or its exception."""
    future: ProbeFuture = ProbeFuture()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(clients, params))
        except BaseException as exc:
            future.set_exception(exc)

    future.thread = ProbeThread(target=work, name=f"probe-{getattr(fn, '__name__', 'probe')}", daemon=True)
    future.thread.start()
    return future


def reason(exc: BaseException) -> str:
    """A short, single-line explanation of why a probe could not tell."""
    return describe(exc)


def no_answer(limit_s: float, future: Future[Any] | None = None) -> str:
    """Why a probe still running at its limit is `unknown`: what it waits for, when a client knows."""
    what = waiting_on(getattr(future, "thread", None))
    if what:
        return f"No answer within {limit_s:g} s: still waiting for {what}."
    return f"No answer within {limit_s:g} s; the backend is slow or unreachable."


def settled(
    future: Future[Evidence], limit_s: float, *, to: str = "check this item", name: str = "a probe"
) -> Evidence:
    """The Evidence of a finished probe, or `unknown` with the reason it could not tell.

    Only a bare TimeoutError, what waiting on a future raises, reads as "no answer": a probe's own
    socket timeout (also a TimeoutError) is reported with its message like any other error.
    """
    exc = future.exception(timeout=0)
    if exc is None:
        return future.result(timeout=0)
    if isinstance(exc, NotConfigured):
        return Evidence(Status.UNKNOWN, f"{exc}; add it to the config to {to}.")
    if type(exc) is TimeoutError and not exc.args:
        return Evidence(Status.UNKNOWN, no_answer(limit_s))
    log.debug("%s failed", name, exc_info=exc)
    backend = unreachable(exc)
    if backend is not None:
        return Evidence(
            Status.UNKNOWN,
            f"Could not tell: {LABELS.get(backend, backend)} could not be reached ({why(exc)}).",
        )
    return Evidence(Status.UNKNOWN, f"Could not tell: {reason(exc)}")
