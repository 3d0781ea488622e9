"""`/langsmith`: ack at once, parse, run one domain call, post or respond with the rendered result."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions, commands
from bot.common import Caller, allowed, audit, guard
from bot.errors import ack_now, lazy
from bot.flows.ack import acknowledge
from bot.flows.check import run_check
from bot.flows.digest import preview_digest
from bot.flows.preflight import run_preflight
from bot.flows.triage import run_triage, runbooks
from bot.pools import Request
from bot.render.slack_help import render_help
from bot.work import start

if TYPE_CHECKING:
    from bot.services import Services


def register(app: App, services: Services) -> None:
    def langsmith(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        cmd = commands.interpret(body.get("text", ""), targets=services.config.targets, runbooks=runbooks())
        context["lsready_action"] = cmd.action
        HANDLERS[type(cmd)](services, cmd, Caller.of(body, context), client, respond)
        if not isinstance(cmd, SLOW):  # slow work counts its own outcome when it has run
            services.metrics.command(cmd.action, "ok")

    app.command(actions.COMMAND)(ack=ack_now, lazy=[lazy(services, langsmith)])


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


def _preflight(
    services: Services, cmd: commands.Preflight, caller: Caller, client: WebClient, respond: Respond
) -> None:
    run_preflight(services, client, caller, cmd.target, cmd.to, respond=respond)


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
