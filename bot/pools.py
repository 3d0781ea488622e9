"""Where listener work runs: quick lazy listeners on one pool, slow checks and triages on a bounded one.

A check or a triage holds its thread until it ends (up to `timeouts.run_s`), so those never queue
without limit: when the slow pool and its waiting room are full the caller hears "busy" at once,
and a request identical to one already running is told where that one's result will appear.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.replies import AlreadyRunning, Busy

QUICK_WORKERS = 16  # lazy listeners: parse, guard, reply, hand slow work on
EVENT_WORKERS = 8  # events (App Home, thread replies) and the modal's submissions, behind their ack
SLOW_WORKERS = 8  # checks, triages and digests running at once
SLOW_WAITING = 8  # admitted behind them; beyond this a request is told to come back


@dataclass(frozen=True)
class Request:
    """One piece of slow work; identical requests (same kind, target and detail) run once at a time."""

    kind: str  # the audited action: check, status, triage, digest
    target: str
    detail: str = ""  # the runbook or the selector
    owner: str | None = None  # for work only its caller sees (a digest preview): one per caller

    def __str__(self) -> str:
        return f"{self.kind} of {self.target}" + (f" ({self.detail})" if self.detail else "")


class Pools(Executor):
    """Bolt's lazy listeners run on a quick pool (`submit`); the slow work they start, on a bounded one;
    events and modal submissions on `events`, so a slow `views.publish` never delays a command's reply.

    `shutdown` stops them all, the quick ones first since their listeners start slow work.
    """

    def __init__(
        self,
        quick: int = QUICK_WORKERS,
        slow: int = SLOW_WORKERS,
        waiting: int = SLOW_WAITING,
        events: int = EVENT_WORKERS,
    ) -> None:
        self._quick = ThreadPoolExecutor(quick, thread_name_prefix="lsready")
        self.events = ThreadPoolExecutor(events, thread_name_prefix="lsready-event")
        self._slow = ThreadPoolExecutor(slow, thread_name_prefix="lsready-slow")
        self.capacity = slow + waiting
        self._admitted: dict[Request, str] = {}  # running or waiting, with where each result appears
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._quick.submit(fn, *args, **kwargs)

    @property
    def admitted(self) -> int:
        with self._lock:
            return len(self._admitted)

    def start(self, request: Request, where: str, job: Callable[[], None]) -> None:
        """Run `job` on the slow pool, or raise AlreadyRunning or Busy at once."""
        with self._lock:
            if request in self._admitted:
                raise AlreadyRunning(request, self._admitted[request])
            if len(self._admitted) >= self.capacity:
                raise Busy(len(self._admitted))
            self._slow.submit(self._run, request, job)  # raises RuntimeError once shut down
            self._admitted[request] = where

    def _run(self, request: Request, job: Callable[[], None]) -> None:
        try:
            job()
        finally:
            with self._lock:
                del self._admitted[request]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._quick.shutdown(wait, cancel_futures=cancel_futures)
        self.events.shutdown(wait, cancel_futures=cancel_futures)
        self._slow.shutdown(wait, cancel_futures=cancel_futures)
