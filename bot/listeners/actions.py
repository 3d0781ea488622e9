"""Buttons: re-run a check or a runbook, run all runbooks, show evidence, open the acknowledgement modal."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions as ids
from bot.common import Caller, guard, upload_evidence
from bot.errors import ack_now, lazy
from bot.flows.check import run_check
from bot.flows.home import check_from_home
from bot.flows.preflight import run_preflight
from bot.flows.triage import run_all_triages, run_triage
from bot.pools import Request
from bot.render.slack_ack import render_ack_modal
from bot.work import start

if TYPE_CHECKING:
    from bot.services import Services


def _clicked(body: dict[str, Any], context: Any, action: str) -> tuple[dict[str, Any], Caller]:
    """The clicked button's data and who clicked where; names the action for the audit."""
    context["lsready_action"] = action
    return ids.decode((body.get("actions") or [{}])[0].get("value")), Caller.of(body, context)


def register(app: App, services: Services) -> None:
    def rerun_check(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "check")
        target, selector = data.get("t"), data.get("s")
        run_check(services, client, caller, target, selector, respond=respond)

    def rerun_triage(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "triage")
        target, runbook = data.get("t"), data.get("r")
        run_triage(services, client, caller, target, runbook, respond=respond)

    def rerun_preflight(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "preflight")
        target, to = data.get("t"), data.get("v")
        run_preflight(services, client, caller, target, to, respond=respond)

    def run_all(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "triage")
        run_all_triages(services, client, caller, data.get("t"), respond=respond)

    def evidence(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        context["lsready_action"] = "evidence"
        key = (body.get("actions") or [{}])[0].get("value") or ""
        upload_evidence(services, client, Caller.of(body, context), key)

    def open_ack(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "ack")
        name = services.readiness.target_name(data.get("t"))
        guard(services, "ack", caller, name)
        from_home = body.get("view", {}).get("type") == "home"
        origin = {"home": 1} if from_home else {"c": caller.channel, "ts": caller.thread_ts}
        items = [i for i in services.readiness.catalog.items if i.attestable]
        days = services.config.acks.items.get(data.get("i") or "", services.config.acks.default_days)
        view = render_ack_modal(
            name, items, services.redactor, preselected=data.get("i"), context=origin, default_days=days
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def home_check(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        data, caller = _clicked(body, context, "check")
        name = services.readiness.target_name(data.get("t"))
        guard(services, "check", caller, name)
        work = partial(check_from_home, services, client, caller, name)
        start(services, Request("check", name, "App Home"), caller, work, client=client)

    for base, listener in (
        (ids.CHECK_RERUN, rerun_check),
        (ids.TRIAGE_RERUN, rerun_triage),
        (ids.TRIAGE_RUN, rerun_triage),
        (ids.TRIAGE_RUN_ALL, run_all),
        (ids.PREFLIGHT_RERUN, rerun_preflight),
        (ids.EVIDENCE, evidence),
        (ids.ACK_OPEN, open_ack),
        (ids.HOME_CHECK, home_check),
    ):
        app.action(ids.pattern(base))(ack=ack_now, lazy=[lazy(services, listener)])
