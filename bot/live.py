"""A message updated in place as work progresses: live triages and preflights are built on it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.common import update
from bot.render.limits import Message

log = logging.getLogger(__name__)

# Slack allows about one update per second per message; a little slower leaves room for the final one.
UPDATE_INTERVAL_S = 1.2
FINISH_GRACE_S = 5.0  # beyond the interval, how long `finish` waits for the final update to land


class LiveMessage:
    """Collects progress from any thread; one updater thread pushes it at most every `interval` seconds.

    The updater thread sends the final update too, after any update in flight, so a late progress
    update can never overwrite the result. `finish` waits for it a bounded time: an update stuck in
    a slow Slack call (or sleeping on a rate limit's Retry-After) must not hold the caller's worker.
    """

    def __init__(
        self,
        client: WebClient,
        channel: str,
        ts: str,
        render: Callable[[list[Any]], Message],
        interval: float = UPDATE_INTERVAL_S,
    ) -> None:
        self.client, self.channel, self.ts, self.render = client, channel, ts, render
        self.interval = interval
        self.steps: list[Any] = []
        self._dirty = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._final: Message | None = None
        self._sent: Future[None] = Future()  # the final update's outcome
        self._thread = threading.Thread(target=self._run, name=f"live-{ts}", daemon=True)
        self._thread.start()

    def step(self, step: Any) -> None:
        with self._lock:
            self.steps.append(step)
            self._dirty = True

    def _run(self) -> None:
        try:
            while not self._done.wait(self.interval):
                with self._lock:
                    if not self._dirty:
                        continue
                    steps, self._dirty = list(self.steps), False
                try:  # a missed intermediate update is harmless; the final one matters
                    update(self.client, self.channel, self.ts, self.render(steps))
                except SlackApiError as exc:
                    log.warning("live update of %s failed: %s", self.ts, exc.response.get("error"))
                except (SlackClientError, OSError) as exc:  # a timeout, a refused connection
                    log.warning("live update of %s failed: %s", self.ts, exc)
        finally:
            self._done.wait()  # early only if rendering the progress failed
            self._send_final()

    def _send_final(self) -> None:
        try:
            if self._final is not None:
                update(self.client, self.channel, self.ts, self._final)
        except Exception as exc:  # handed to `finish`, which raises it on the caller's thread
            self._sent.set_exception(exc)
        else:
            self._sent.set_result(None)

    def finish(self, final: Message | None = None) -> None:
        """Send `final` after any update in flight; raise its error if it comes back in time."""
        self._final = final  # set before `_done`: the updater reads it only after seeing `_done`
        self._done.set()
        try:
            self._sent.result(timeout=self.interval + FINISH_GRACE_S)
        except FutureTimeout:
            log.warning("live message %s: Slack is slow; the final update follows when it answers", self.ts)
            self._sent.add_done_callback(_log_late_failure)


def _log_late_failure(sent: Future[None]) -> None:
    if sent.exception() is not None:
        log.warning("final live update failed after its caller moved on: %s", sent.exception())
