"""The acknowledgement modal's submission: errors shown in the modal at once, the recording behind the ack."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import actions as ids
from bot import commands
from bot.common import Caller
from bot.errors import lazy
from bot.flows.ack import precheck, record_from_modal, record_rejection
from bot.render.limits import INPUT_ERROR, clip
from bot.replies import Refused
from bot.snapshots import Recent
from runbooks.readiness import BadDuration, NotAttestable, UnknownItem

if TYPE_CHECKING:
    from bot.services import Services

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


def register(app: App, services: Services) -> None:
    submissions = Recent()  # a view submitted again (a double click on Acknowledge) is done once

    @app.view(ids.ACK_MODAL)
    def submit_ack(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any
    ) -> None:
        """Answer at once: the modal's errors, or close it; the work runs behind the ack."""
        meta, cmd = submitted(view)
        caller = Caller(body["user"]["id"], meta.get("c"), meta.get("ts"))
        context["lsready_action"] = "ack"
        error = precheck(services, caller, cmd)
        if error is not None:
            block = _ERROR_BLOCK.get(type(error), ids.ACK_ITEM_BLOCK)
            ack(response_action="errors", errors={block: clip(str(error), INPUT_ERROR)})
            work = partial(record_rejection, services, caller, error)
        else:
            ack()
            if not submissions.first(f"{view.get('id')}:{view.get('hash')}"):
                return
            work = partial(record_from_modal, services, caller, meta, cmd)
        services.pool.events.submit(lazy(services, work), body, context, client, None)
