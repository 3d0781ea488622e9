"""A message updated in place as work progresses, and the live triage built on it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.common import Caller, audit, guard, post, update
from bot.render.limits import Message
from bot.render.slack_triage import render_progress, render_result, render_stopped
from runbooks.model import Runbook
from runbooks.triage import RUNBOOKS, get_runbook, triage

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

# Slack allows about one update per second per message; a little slower leaves room for the final one.
UPDATE_INTERVAL_S = 1.2


def runbooks() -> dict[str, Runbook]:
    """The triage runbooks by name, in the order help lists them."""
    return dict(RUNBOOKS)


class LiveMessage:
    """Collects progress from any thread; one updater thread pushes it at most every `interval` seconds.

    `finish` stops the updater before the final update, so a late progress update can never
    overwrite the result.
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
        self._thread = threading.Thread(target=self._run, name=f"live-{ts}", daemon=True)
        self._thread.start()

    def step(self, step: Any) -> None:
        with self._lock:
            self.steps.append(step)
            self._dirty = True

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            with self._lock:
                if not self._dirty:
                    continue
                steps, self._dirty = list(self.steps), False
            try:
                update(self.client, self.channel, self.ts, self.render(steps))
            except SlackApiError as exc:  # a missed intermediate update is harmless; the final one matters
                log.warning("live update of %s failed: %s", self.ts, exc.response.get("error"))

    def finish(self, final: Message | None = None) -> None:
        self._done.set()
        self._thread.join()
        if final is not None:
            update(self.client, self.channel, self.ts, final)


def run_triage(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    runbook: str | None,
    *,
    thread_ts: str | None = None,
) -> str:
    """Post the checklist, update it as steps finish, end with the diagnosis; returns its kind."""
    name = services.readiness.target_name(target)
    guard(services, "triage", caller, name)
    book = get_runbook(runbook or next(iter(RUNBOOKS)))  # raises UnknownRunbook with a suggestion
    redactor, started = services.redactor, datetime.now(UTC)
    ts = post(client, caller.channel, render_progress(book, name, [], started, redactor), thread_ts)
    live = LiveMessage(
        client, caller.channel, ts, lambda done: render_progress(book, name, done, started, redactor)
    )
    try:
        result = triage(services.config, name, book.name, on_step=live.step)
    except BaseException:
        live.finish(render_stopped(book, name, live.steps, redactor))
        raise
    key = services.snapshots.put("triage", name, result.to_dict())
    others = [b for b in RUNBOOKS if b != book.name]
    live.finish(render_result(result, book, redactor, snapshot=key, others=others))
    kind = result.diagnosis.kind.value
    audit(services, caller, "triage", name, f"{book.name}: {kind}")
    services.metrics.diagnosis(name, kind)
    return kind
