"""Silencing an alert from its Slack thread: the silence in Alertmanager, the note in the thread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.alerts.silences import SilenceFailed, create_silence
from bot.common import Caller, audit, post
from bot.render.slack_alert import SILENCE_HOURS, render_silenced
from storage.alerts import AlertThread

if TYPE_CHECKING:
    from bot.services import Services


def silence_alert(
    services: Services, client: WebClient, caller: Caller, thread: AlertThread, hours: Any, name: str | None
) -> None:
    """Silence the alert's group for `hours` (one of SILENCE_HOURS), then say so in its thread."""
    if hours not in SILENCE_HOURS:
        raise SilenceFailed(f"a silence lasts {' or '.join(map(str, SILENCE_HOURS))} hours.")
    url = services.config.alerts.alertmanager_url
    if url is None:
        raise SilenceFailed("silences need `alerts.alertmanager_url` in lsready's config.")
    now = datetime.now(UTC)
    silence_id = create_silence(
        url,
        thread.group_labels,
        starts=now,
        hours=hours,
        created_by=f"{name} ({caller.user})" if name else caller.user,
        comment=f"From Slack: {thread.alertname} on {thread.target}, silenced by {caller.user}.",
    )
    until = now + timedelta(hours=hours)
    audit(services, caller, "silence", thread.target, f"{thread.alertname} for {hours} h: {silence_id}")
    message = render_silenced(caller.user, hours, until, silence_id, services.redactor)
    post(client, thread.channel, message, thread.message_ts)
