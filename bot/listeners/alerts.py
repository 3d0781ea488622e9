"""The alert message's buttons: Re-run triage, Show evidence, Silence 1 h / 4 h."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions as ids
from bot.alerts.threads import AlertThreadsDesk
from bot.common import Caller, guard, upload_evidence
from bot.errors import ack_now, lazy
from bot.flows.alerts import silence_alert
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
        user = body.get("user") or {}
        silence_alert(
            services, client, caller, thread, data.get("h"), user.get("username") or user.get("name")
        )

    for base, listener in (
        (ids.ALERT_RERUN, rerun),
        (ids.ALERT_EVIDENCE, evidence),
        (ids.ALERT_SILENCE, silence),
    ):
        app.action(ids.pattern(base))(ack=ack_now, lazy=[lazy(services, listener)])
