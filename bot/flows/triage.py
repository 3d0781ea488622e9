"""The live triage: start one (or every runbook) on the slow pool, post its checklist, update it in place."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.common import Caller, audit, guard, post
from bot.live import LiveMessage
from bot.pools import Request
from bot.render.slack_triage import render_progress, render_result, render_stopped
from bot.work import start
from runbooks.model import Runbook
from runbooks.triage import RUNBOOKS, get_runbook, triage

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def runbooks() -> dict[str, Runbook]:
    """The triage runbooks by name, in the order help lists them."""
    return dict(RUNBOOKS)


def run_triage(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    runbook: str | None,
    *,
    respond: Respond | None = None,
) -> None:
    """Start a live triage of the target with one runbook (None: the first) on the slow pool."""
    name = services.readiness.target_name(target)
    guard(services, "triage", caller, name)
    book = get_runbook(runbook or next(iter(RUNBOOKS)))  # raises UnknownRunbook with a suggestion
    request = Request("triage", name, book.name)
    work = partial(live_triage, services, client, caller, name, book, caller.thread_ts)
    start(services, request, caller, work, client=client, respond=respond)


def run_all_triages(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    *,
    respond: Respond | None = None,
) -> None:
    """Start every runbook on the target, one after the other, as one piece of slow work."""
    name = services.readiness.target_name(target)
    guard(services, "triage", caller, name)

    def work() -> None:
        for book in RUNBOOKS.values():
            live_triage(services, client, caller, name, book, caller.thread_ts)

    start(services, Request("triage", name, "all runbooks"), caller, work, client=client, respond=respond)


def live_triage(
    services: Services, client: WebClient, caller: Caller, name: str, book: Runbook, thread_ts: str | None
) -> tuple[str, str]:
    """Post the checklist, update it as steps finish, end with the diagnosis; returns its kind and the
    evidence snapshot's key."""
    redactor, started, by = services.redactor, datetime.now(UTC), caller.user
    ts = post(client, caller.channel, render_progress(book, name, [], started, redactor, by=by), thread_ts)
    live = LiveMessage(
        client, caller.channel, ts, lambda done: render_progress(book, name, done, started, redactor, by=by)
    )
    try:
        result = triage(services.config, name, book.name, on_step=live.step, catalog=services.shared.catalog)
    except BaseException:
        live.finish(render_stopped(book, name, live.steps, redactor))
        raise
    key = services.snapshots.put("triage", name, result.to_dict())
    others = [b for b in RUNBOOKS if b != book.name]
    live.finish(render_result(result, book, redactor, snapshot=key, others=others, by=by))
    kind = result.diagnosis.kind.value
    audit(services, caller, "triage", name, f"{book.name}: {kind}")
    services.metrics.diagnosis(name, kind)
    return kind, key
