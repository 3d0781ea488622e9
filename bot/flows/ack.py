"""Recording an acknowledgement once, from a command, a thread reply or the modal."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot import commands
from bot.access import Verdict
from bot.common import Caller, audit, guard, post
from bot.errors import record_error
from bot.flows.home import publish_home
from bot.render.limits import Message
from bot.render.slack_ack import render_ack_confirmation
from bot.render.slack_text import line, replies
from bot.replies import Refused, SlackReply
from checks.errors import LsreadyError
from runbooks.readiness import NotAttestable
from storage.effects import Effects

if TYPE_CHECKING:
    from bot.services import Services


DUPLICATE_WINDOW = timedelta(minutes=10)  # the same acknowledgement again within this is a repeat


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


def precheck(services: Services, caller: Caller, cmd: commands.Ack) -> LsreadyError | None:
    """What makes the submission wrong, found without the network or the store (before the ack):
    the item, the duration, and access as far as the cached group members tell."""
    shared = services.shared  # `services.readiness` would open this thread's database connection
    try:
        shared.target_name(cmd.target)
        item = shared.item(cmd.item_id)
        if not item.attestable:
            raise NotAttestable(item)
        shared.validity(item.id, cmd.expires)
    except LsreadyError as exc:  # an unknown item or target, a bad duration, an automated item
        return exc
    access = services.access
    if (
        access is not None
        and access.decide("ack", caller.user, caller.channel, wait=False) is Verdict.REFUSED
    ):
        return Refused("ack")
    return None


def record_from_modal(
    services: Services,
    caller: Caller,
    meta: dict[str, Any],
    cmd: commands.Ack,
    body: dict[str, Any],
    context: Any,
    client: WebClient,
    respond: Any,
) -> None:
    """Behind the ack: record the acknowledgement, confirm where the modal came from."""
    context["lsready_action"] = "ack"
    message = acknowledge(services, caller, cmd.target, cmd)
    services.metrics.command("ack", "ok")
    if caller.channel:
        post(client, caller.channel, message, caller.thread_ts)
    if meta.get("home"):
        publish_home(services, client, caller.user, notice=f"Acknowledged {cmd.item_id} on {cmd.target}.")


def record_rejection(
    services: Services, caller: Caller, error: LsreadyError, body: dict[str, Any], context: Any, *_: Any
) -> None:
    """Behind the ack: audit a submission the modal showed an error for."""
    if isinstance(error, Refused):
        audit(services, caller, "ack", None, "refused", outcome="refused")
        services.metrics.command("ack", "refused")
    else:
        record_error(services, caller, "ack", error)
