"""The alert message's buttons: Re-run triage, Show evidence, Silence 1 h / 4 h."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions as ids
from bot.alerts.silences import SilenceFailed, create_silence
from bot.alerts.threads import AlertThreadsDesk
from bot.common import Caller, audit, guard, post, upload_evidence
from bot.errors import ack_now, lazy
from bot.render.slack_alert import SILENCE_HOURS, render_silenced
from checks.errors import LsreadyError

if TYPE_CHECKING:
    from bot.services import Services


class NoTriageYet(LsreadyError):
    def __init__(self) -> None:
        super().__init__("no triage of this alert has finished yet; its checklist is in the thread.")


def _clicked(body: dict[str, Any], context: Any, action: str) -> tuple[dict[str, Any], Caller]:
    context["lsready_action"] = action
    return ids.decode((body.get("actions") or [{}])[0].get("value")), Caller.of(body, context)


def register(app: App, services: Services) -> None:
    def rerun(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "triage")
        desk = AlertThreadsDesk(services, client)
        thread = desk.thread(data.get("g"))
        guard(services, "triage", caller, thread.target)
        desk.store.claim_triage(thread.id, None)
        desk.triage(thread, caller)

    def evidence(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "evidence")
        thread = AlertThreadsDesk(services, client).thread(data.get("g"))
        if thread.snapshot is None:
            raise NoTriageYet()
        where = Caller(caller.user, thread.channel, thread.message_ts)
        upload_evidence(services, client, where, thread.snapshot)

    def silence(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "silence")
        thread = AlertThreadsDesk(services, client).thread(data.get("g"))
        guard(services, "silence", caller, thread.target)
        hours = data.get("h")
        if hours not in SILENCE_HOURS:
            raise SilenceFailed(f"a silence lasts {' or '.join(map(str, SILENCE_HOURS))} hours.")
        url = services.config.alerts.alertmanager_url
        if url is None:
            raise SilenceFailed("silences need `alerts.alertmanager_url` in lsready's config.")
        user = body.get("user") or {}
        name = user.get("username") or user.get("name")
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

    for base, listener in (
        (ids.ALERT_RERUN, rerun),
        (ids.ALERT_EVIDENCE, evidence),
        (ids.ALERT_SILENCE, silence),
    ):
        app.action(ids.pattern(base))(ack=ack_now, lazy=[lazy(services, listener)])
