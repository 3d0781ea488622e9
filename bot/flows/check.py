"""A check or status of a target on the slow pool, its report posted in the channel (or to the caller)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.common import Caller, audit, guard, post
from bot.pools import Request
from bot.render.slack_report import render_report, render_status
from bot.render.slack_text import line, replies
from bot.work import start
from checks.engine import select

if TYPE_CHECKING:
    from bot.services import Services


def run_check(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    selector: str | None,
    *,
    short: bool = False,
    respond: Respond | None = None,
    private: bool = False,
) -> None:
    """Start a check of the target on the slow pool; its report (or status) is posted in the channel,
    or with `private` (a status) shown only to the caller."""
    kind = "status" if short else "check"
    name = services.readiness.target_name(target)
    guard(services, kind, caller, name)
    select(services.readiness.catalog, selector)  # an unknown selector is refused before "Checking…"
    work = partial(check_and_post, services, client, caller, name, selector, short, respond, private=private)
    start(services, Request(kind, name, selector or ""), caller, work, client=client, respond=respond)


def check_and_post(
    services: Services,
    client: WebClient,
    caller: Caller,
    name: str,
    selector: str | None,
    short: bool,
    respond: Respond | None,
    *,
    private: bool = False,
) -> None:
    """Check a target, record it, post the report (or the status) where the caller asked (their
    thread, else the channel), attributed to them; a private status goes only to the caller."""
    kind = "status" if short else "check"
    if respond is not None and not private:
        respond(response_type="ephemeral", replace_original=False, text=line(replies().checking, name))
    report = services.readiness.check(name, selector)
    services.metrics.observe_report(report, whole=selector is None)
    key = services.snapshots.put(kind, name, report.to_dict())
    if short:
        message = render_status(report, services.redactor, snapshot=key, by=caller.user)
    else:
        message = render_report(report, services.redactor, snapshot=key, selector=selector, by=caller.user)
    if private and respond is not None:
        respond(response_type="ephemeral", replace_original=False, **message.respond_args())
    else:
        post(client, caller.channel, message, caller.thread_ts)
    where = "to the caller" if private else "posted"
    audit(services, caller, kind, name, f"{selector or 'all'}: {report.score.percent}% {where}")
