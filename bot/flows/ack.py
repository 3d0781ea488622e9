"""Recording an acknowledgement once, from a command, a thread reply or the modal."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

from bot import commands
from bot.common import Caller, SlackReply, guard
from bot.render.limits import Message
from bot.render.slack_ack import render_ack_confirmation
from bot.render.slack_text import line, replies
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
