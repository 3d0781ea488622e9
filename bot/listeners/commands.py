"""`/langsmith`: ack at once, parse, run one domain call, post or respond with the rendered result."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions, commands
from bot.listeners.common import Caller, SlackReply, allowed, audit, guard, post
from bot.listeners.errors import ack_now, lazy
from bot.listeners.live import run_triage, runbooks
from bot.listeners.preflight import handle as _preflight
from bot.listeners.work import Request, start
from bot.render.limits import Message
from bot.render.slack_ack import render_ack_confirmation
from bot.render.slack_digest import render_digest
from bot.render.slack_help import render_help
from bot.render.slack_report import render_report, render_status
from bot.render.slack_text import line, replies
from checks.engine import select
from runbooks.digest import build_digest
from storage.effects import Effects

if TYPE_CHECKING:
    from bot.app import Services

DUPLICATE_WINDOW = timedelta(minutes=10)  # the same acknowledgement again within this is a repeat


def register(app: App, services: Services) -> None:
    def langsmith(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        cmd = commands.interpret(body.get("text", ""), targets=services.config.targets, runbooks=runbooks())
        context["lsready_action"] = cmd.action
        HANDLERS[type(cmd)](services, cmd, Caller.of(body, context), client, respond)
        if not isinstance(cmd, SLOW):  # slow work counts its own outcome when it has run
            services.metrics.command(cmd.action, "ok")

    app.command(actions.COMMAND)(ack=ack_now, lazy=[lazy(services, langsmith)])


def run_check(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    selector: str | None,
    *,
    short: bool = False,
    respond: Respond | None = None,
    thread_ts: str | None = None,
    private: bool = False,
) -> None:
    """Start a check of the target on the slow pool; its report (or status) is posted in the channel,
    or with `private` (a status) shown only to the caller."""
    kind = "status" if short else "check"
    name = services.readiness.target_name(target)
    guard(services, kind, caller, name)
    select(services.readiness.catalog, selector)  # an unknown selector is refused before "Checking…"
    work = partial(check_and_post, services, client, caller, name, selector, short, respond, thread_ts)
    if private:
        work = partial(work, private=True)
    start(services, Request(kind, name, selector or ""), caller, work, client=client, respond=respond)


def check_and_post(
    services: Services,
    client: WebClient,
    caller: Caller,
    name: str,
    selector: str | None,
    short: bool,
    respond: Respond | None,
    thread_ts: str | None,
    *,
    private: bool = False,
) -> None:
    """Check a target, record it, post the report (or the status) in the channel, attributed to
    the caller; a private status goes only to the caller."""
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
        post(client, caller.channel, message, thread_ts)
    where = "to the caller" if private else "posted"
    audit(services, caller, kind, name, f"{selector or 'all'}: {report.score.percent}% {where}")


def _help(
    services: Services, cmd: commands.Help, caller: Caller, client: WebClient, respond: Respond
) -> None:
    message = render_help(
        allowed(services, caller),
        services.redactor,
        problem=cmd.problem,
        targets=sorted(services.config.targets),
        runbooks=list(runbooks()),
    )
    audit(services, caller, "help", None, cmd.problem or "", outcome="usage" if cmd.problem else "ok")
    respond(response_type="ephemeral", **message.respond_args())


def _triage(
    services: Services, cmd: commands.Triage, caller: Caller, client: WebClient, respond: Respond
) -> None:
    run_triage(services, client, caller, cmd.target, cmd.runbook, respond=respond)


def _check(
    services: Services, cmd: commands.Check, caller: Caller, client: WebClient, respond: Respond
) -> None:
    run_check(services, client, caller, cmd.target, cmd.selector, respond=respond)


def _status(
    services: Services, cmd: commands.Status, caller: Caller, client: WebClient, respond: Respond
) -> None:
    run_check(services, client, caller, cmd.target, None, short=True, respond=respond, private=cmd.private)


class AlreadyRecorded(SlackReply):
    outcome = "duplicate"

    def __init__(self, item_id: str, target: str) -> None:
        super().__init__(line(replies().already_recorded, item_id, target))


def acknowledge(services: Services, caller: Caller, target: str | None, cmd: commands.Ack) -> Message:
    """Record the caller's acknowledgement (Readiness audits it) and render its confirmation.

    The same acknowledgement again (a Slack retry, a modal submitted twice, a command re-sent) within
    DUPLICATE_WINDOW records nothing and raises AlreadyRecorded, even across a restart.
    """
    name = services.readiness.target_name(target)
    guard(services, "ack", caller, name)
    item = services.readiness.item(cmd.item_id)
    parts = (name, item.id, caller.user, cmd.note.strip(), cmd.expires or "", cmd.link or "")
    key = "ack:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    effects = Effects(services.readiness.db, services.readiness.clock)
    if not effects.claim(key, DUPLICATE_WINDOW):
        raise AlreadyRecorded(item.id, name)
    try:
        record = services.readiness.acknowledge(
            name, item.id, caller.user, note=cmd.note, expires=cmd.expires, evidence_link=cmd.link,
            channel=caller.channel, thread_ts=caller.thread_ts,
        )  # fmt: skip
    except BaseException:
        effects.release(key)
        raise
    return render_ack_confirmation(record, item.title, services.redactor)


def _ack(services: Services, cmd: commands.Ack, caller: Caller, client: WebClient, respond: Respond) -> None:
    respond(response_type="in_channel", **acknowledge(services, caller, cmd.target, cmd).respond_args())


def _digest(
    services: Services, cmd: commands.Digest, caller: Caller, client: WebClient, respond: Respond
) -> None:
    name = services.readiness.target_name(cmd.target)
    guard(services, "digest", caller, name)
    request = Request("digest", name, "preview", owner=caller.user)  # a preview only its caller sees
    work = partial(preview_digest, services, caller, name, respond)
    start(services, request, caller, work, client=client, respond=respond)


def preview_digest(services: Services, caller: Caller, name: str, respond: Respond) -> None:
    respond(response_type="ephemeral", text=line(replies().building_digest, name))
    digest = build_digest(services.readiness, name)
    key = services.snapshots.put("digest", name, digest.to_dict())
    respond(
        response_type="ephemeral",
        **render_digest(digest, services.redactor, snapshot=key, preview=True).respond_args(),
    )
    audit(services, caller, "digest", name, "preview")


SLOW = (
    commands.Triage,
    commands.Check,
    commands.Status,
    commands.Digest,
    commands.Preflight,
)  # handed to the slow pool
HANDLERS: dict[type, Callable[..., None]] = {
    commands.Help: _help,
    commands.Triage: _triage,
    commands.Check: _check,
    commands.Status: _status,
    commands.Ack: _ack,
    commands.Digest: _digest,
    commands.Preflight: _preflight,
}
