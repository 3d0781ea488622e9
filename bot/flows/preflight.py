"""The upgrade preflight as a live checklist, updated in place like a triage."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from slack_bolt import Respond
from slack_sdk import WebClient

from bot import commands
from bot.common import Caller, audit, guard, post
from bot.live import LiveMessage
from bot.pools import Request
from bot.render.slack_preflight import (
    render_preflight_progress,
    render_preflight_result,
    render_preflight_stopped,
)
from bot.work import start
from runbooks.preflight import configured_values, preflight

if TYPE_CHECKING:
    from bot.services import Services


def run_preflight(
    services: Services,
    client: WebClient,
    caller: Caller,
    target: str | None,
    to: str | None,
    *,
    respond: Respond | None = None,
) -> None:
    """Start the preflight of the target on the slow pool; the checklist is posted in the channel."""
    name = services.readiness.target_name(target)
    guard(services, commands.ACCESS["preflight"], caller, name)
    # A missing or broken values file is said before anything is posted.
    configured_values(services.config.target(name)[1])
    work = partial(live_preflight, services, client, caller, name, to)
    start(services, Request("preflight", name, to or ""), caller, work, client=client, respond=respond)


def live_preflight(services: Services, client: WebClient, caller: Caller, name: str, to: str | None) -> str:
    """Post the checklist, update it as steps finish, end with the verdict; returns the verdict."""
    redactor, started = services.redactor, datetime.now(UTC)
    ts = post(
        client, caller.channel, render_preflight_progress(name, to, [], started, redactor), caller.thread_ts
    )
    live = LiveMessage(
        client, caller.channel, ts, lambda done: render_preflight_progress(name, to, done, started, redactor)
    )
    try:
        result = preflight(
            services.config, name, to_version=to, on_step=live.step, catalog=services.shared.catalog
        )
    except BaseException:
        live.finish(render_preflight_stopped(name, to, live.steps, redactor))
        raise
    key = services.snapshots.put("preflight", name, result.to_dict())
    live.finish(render_preflight_result(result, redactor, snapshot=key))
    audit(services, caller, "preflight", name, f"{to or 'values only'}: {result.verdict.value}")
    return result.verdict.value
