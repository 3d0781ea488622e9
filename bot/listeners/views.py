"""The acknowledgement modal's submission: record it, then confirm where it came from."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import actions as ids
from bot import commands
from bot.listeners.commands import acknowledge
from bot.listeners.common import Caller, Refused, post
from bot.listeners.errors import lazy, record_error
from bot.listeners.events import publish_home
from bot.render.limits import Message
from runbooks.readiness import BadDuration, NotAttestable, UnknownItem

if TYPE_CHECKING:
    from bot.app import Services

# Which input a refused submission is shown against, so the modal stays open with the reason.
_ERROR_BLOCK = {
    BadDuration: ids.ACK_EXPIRY_BLOCK,
    UnknownItem: ids.ACK_ITEM_BLOCK,
    NotAttestable: ids.ACK_ITEM_BLOCK,
    Refused: ids.ACK_NOTE_BLOCK,
}


def submitted(view: dict[str, Any]) -> tuple[dict[str, Any], commands.Ack]:
    """The modal's context (target, channel, thread or home) and the acknowledgement it asks for."""
    meta, values = json.loads(view.get("private_metadata") or "{}"), view["state"]["values"]

    def value(block: str, action: str) -> Any:
        state = values.get(block, {}).get(action, {})
        return (
            (state.get("selected_option") or {}).get("value")
            if "selected_option" in state
            else state.get("value")
        )

    ack = commands.Ack(
        value(ids.ACK_ITEM_BLOCK, ids.ACK_ITEM) or "",
        value(ids.ACK_NOTE_BLOCK, ids.ACK_NOTE) or "",
        value(ids.ACK_EXPIRY_BLOCK, ids.ACK_EXPIRY),
        meta.get("t"),
        value(ids.ACK_LINK_BLOCK, ids.ACK_LINK),
    )
    return meta, ack


def _confirm(
    services: Services,
    caller: Caller,
    meta: dict[str, Any],
    cmd: commands.Ack,
    message: Message,
    body: dict[str, Any],
    context: Any,
    client: WebClient,
    respond: Any,
) -> None:
    if caller.channel:
        post(client, caller.channel, message, caller.thread_ts)
    if meta.get("home"):
        publish_home(services, client, caller.user, notice=f"Acknowledged {cmd.item_id} on {cmd.target}.")


def register(app: App, services: Services) -> None:
    @app.view(ids.ACK_MODAL)
    def submit_ack(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any
    ) -> None:
        meta, cmd = submitted(view)
        caller = Caller(body["user"]["id"], meta.get("c"), meta.get("ts"))
        context["lsready_action"] = "ack"
        try:
            confirmation = acknowledge(services, caller, cmd.target, cmd)
            services.metrics.command("ack", "ok")
        except (BadDuration, UnknownItem, NotAttestable, Refused) as exc:
            ack(response_action="errors", errors={_ERROR_BLOCK[type(exc)]: str(exc)[:1900]})
            record_error(services, caller, "ack", exc)
            return
        ack()
        # After the ack a failure must not touch the response Slack waits for: confirm from the pool.
        work = partial(_confirm, services, caller, meta, cmd, confirmation)
        services.pool.submit(lazy(services, work), body, context, client, None)
