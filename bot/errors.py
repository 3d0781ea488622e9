"""Errors told to the caller: a typed error becomes an ephemeral message, anything else gets an id to quote.

Bolt hands errors of ordinary listeners to `@app.error` (bot/listeners/errors.py), but only logs those
of lazy listeners; `lazy()` routes a lazy listener's errors to the same `handle`, so no listener
catches its own.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.common import Caller, audit
from bot.render.limits import SECTION_TEXT, clip, escape
from bot.replies import Denied, SlackReply
from checks.errors import LsreadyError
from storage.db import StorageError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("bot.errors")

Work = Callable[[dict[str, Any], Any, WebClient, Respond], None]


def ack_now(ack: Ack) -> None:
    """The ack half of a lazy listener: within Slack's 3 s, whatever the work takes."""
    ack()


def lazy(services: Services, work: Work, *, on: Executor | None = None) -> Callable[..., None]:
    """`work(body, context, client, respond)` as a Bolt lazy listener whose errors reach `handle`;
    with `on`, the lazy listener only hands the work to that executor (events and submissions run
    on a pool of their own, so a slow Slack answer to them never delays a command's reply)."""

    def run(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        try:
            work(body, context, client, respond)
        except Exception as error:  # the lazy runner would only log it
            handle(services, error, body, context, client, respond)

    name = getattr(work, "__name__", "work")
    if on is None:
        run.__name__ = run.__qualname__ = name  # Bolt tells lazy listeners apart by name
        return run

    def hand_on(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        on.submit(run, body, context, client, respond)

    hand_on.__name__ = hand_on.__qualname__ = name
    return hand_on


def handle(
    services: Services,
    error: Exception,
    body: dict[str, Any],
    context: Any,
    client: WebClient,
    respond: Respond | None,
) -> None:
    action = context.get("lsready_action") or body.get("type") or "command"
    report(services, error, Caller.of(body, context), action, client, respond)


def report(
    services: Services,
    error: Exception,
    caller: Caller,
    action: str,
    client: WebClient,
    respond: Respond | None,
) -> None:
    """Tell the caller about `error` (and audit it); work started off a listener reports here too."""
    if isinstance(error, LsreadyError):
        # The bot's own replies are mrkdwn already; any other message may echo what was typed.
        text = f":warning: {error if isinstance(error, SlackReply) else escape(str(error))}"
        record_error(services, caller, action, error)
    elif isinstance(error, (StorageError, sqlite3.Error)):
        # The store cannot be opened or written (a read-only or full volume): auditing would fail too.
        log.error("store error handling %s for %s: %s", action, caller.user, error)
        text = (
            f":warning: lsready's database cannot be used right now ({escape(str(error))}), "
            "so nothing was recorded. Ask an lsready admin to check the volume it lives on, then try again."
        )
        services.metrics.command(action, "error")
    else:
        error_id = uuid.uuid4().hex[:8]
        log.error("error %s handling %s for %s", error_id, action, caller.user, exc_info=error)
        text = f":boom: Something went wrong on our side. Quote error id `{error_id}` when you report it."
        audit_error(services, caller, action, f"error id {error_id}", "failed")
        services.metrics.command(action, "failed")
    tell(client, respond, caller, clip(services.redactor.text(text), SECTION_TEXT))


def record_error(services: Services, caller: Caller, action: str, error: LsreadyError) -> None:
    """Audit and count an error the caller can act on; refusals were audited where they happened."""
    if not isinstance(error, Denied):
        outcome = getattr(error, "outcome", "error")  # "busy" is not a fault
        audit_error(services, caller, action, str(error), outcome)
        services.metrics.command(action, outcome)


def audit_error(services: Services, caller: Caller, action: str, detail: str, outcome: str) -> None:
    """Audit an error; a failure to audit must not keep the caller from being told."""
    try:
        audit(services, caller, action, None, detail, outcome=outcome)
    except Exception:
        log.warning("could not audit %s for %s", action, caller.user, exc_info=True)


def tell(client: WebClient, respond: Respond | None, caller: Caller, text: str) -> None:
    """Only the caller sees it: via response_url, else ephemeral in the channel, else a DM."""
    try:
        if respond is not None and respond.response_url:
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif caller.channel:
            client.chat_postEphemeral(
                channel=caller.channel, user=caller.user, text=text, thread_ts=caller.thread_ts
            )
        else:
            client.chat_postMessage(channel=caller.user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s about an error: %s", caller.user, exc.response.get("error"))
