"""The digest preview only its caller sees, built on the slow pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import Respond

from bot.common import Caller, audit
from bot.render.slack_digest import render_digest
from bot.render.slack_text import line, replies
from runbooks.digest import build_digest

if TYPE_CHECKING:
    from bot.services import Services


def preview_digest(services: Services, caller: Caller, name: str, respond: Respond) -> None:
    respond(response_type="ephemeral", text=line(replies().building_digest, name))
    digest = build_digest(services.readiness, name)
    key = services.snapshots.put("digest", name, digest.to_dict())
    respond(
        response_type="ephemeral",
        **render_digest(digest, services.redactor, snapshot=key, preview=True).respond_args(),
    )
    audit(services, caller, "digest", name, "preview")
