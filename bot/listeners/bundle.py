"""The "Prepare support bundle" button: build the bundle behind the ack, upload it to the thread.

Any message can carry the button (`bot.render.blocks.bundle_button(target, snapshot)`): with a
snapshot key, the triage that message shows goes into the bundle as its triage evidence.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions as ids
from bot.common import Caller, guard
from bot.errors import ack_now, lazy
from bot.flows.bundle import prepare_bundle
from bot.pools import Request
from bot.render.slack_text import line, replies
from bot.work import start

if TYPE_CHECKING:
    from bot.services import Services


def register(app: App, services: Services) -> None:
    def prepare(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        context["lsready_action"] = "bundle"
        data = ids.decode((body.get("actions") or [{}])[0].get("value"))
        caller = Caller.of(body, context)
        name = services.readiness.target_name(data.get("t"))
        guard(services, "bundle", caller, name)
        work = partial(prepare_bundle, services, client, caller, name, data.get("k"))
        start(services, Request("bundle", name), caller, work, client=client, respond=respond)
        respond(
            text=line(replies().preparing_bundle, name), response_type="ephemeral", replace_original=False
        )

    app.action(ids.pattern(ids.BUNDLE_PREPARE))(ack=ack_now, lazy=[lazy(services, prepare)])
