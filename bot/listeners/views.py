"""The acknowledgement modal's submission: record it, then confirm where it came from."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import actions as ids
from bot import commands
from bot.access import Verdict
from bot.common import Caller, Recent, Refused, audit, post
from bot.errors import lazy, record_error
from bot.flows.ack import acknowledge
from bot.flows.home import publish_home
from bot.render.limits import INPUT_ERROR, clip
from checks.errors import LsreadyError
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


def _record(
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


def _rejected(
    services: Services, caller: Caller, error: LsreadyError, body: dict[str, Any], context: Any, *_: Any
) -> None:
    """Behind the ack: audit a submission the modal showed an error for."""
    if isinstance(error, Refused):
        audit(services, caller, "ack", None, "refused", outcome="refused")
        services.metrics.command("ack", "refused")
    else:
        record_error(services, caller, "ack", error)


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
            work = partial(_rejected, services, caller, error)
        else:
            ack()
            if not submissions.first(f"{view.get('id')}:{view.get('hash')}"):
                return
            work = partial(_record, services, caller, meta, cmd)
        services.pool.events.submit(lazy(services, work), body, context, client, None)
