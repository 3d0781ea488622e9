"""Events: the App Home board, and `ack <item-id> <note>` replies in a report's or digest's thread."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot import actions, commands
from bot.common import Caller, post
from bot.errors import ack_now, lazy
from bot.flows.ack import acknowledge
from bot.flows.home import publish_home
from bot.snapshots import Recent

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

THREAD_ACK = re.compile(r"^\s*ack\s+\S", re.I)
CLICK_WINDOW_S = 5.0  # the same button pressed again within this is a double click


def parent_target(client: WebClient, channel: str, thread_ts: str, bot_id: str | None) -> str | None:
    """The target in the metadata of the thread's parent, if the bot posted it as a report."""
    replies = client.conversations_replies(channel=channel, ts=thread_ts, limit=1, include_all_metadata=True)
    parent = (replies.get("messages") or [{}])[0]
    meta = parent.get("metadata") or {}
    if meta.get("event_type") != actions.METADATA_EVENT or (bot_id and parent.get("bot_id") != bot_id):
        return None
    return (meta.get("event_payload") or {}).get("target")


def _in_thread(message: dict[str, Any]) -> bool:
    """A person's reply in a thread (other bots' messages carry no user)."""
    replied = bool(message.get("thread_ts")) and message.get("thread_ts") != message.get("ts")
    return replied and bool(message.get("user"))


def wanted(message: dict[str, Any]) -> bool:
    """A message the bot acts on: a person's `ack <item-id> ...` reply in a thread, not an edit."""
    return (
        not message.get("subtype")
        and _in_thread(message)
        and bool(THREAD_ACK.match(message.get("text") or ""))
    )


def _done() -> BoltResponse:
    return BoltResponse(status=200, body="")


def register(app: App, services: Services) -> None:
    events = Recent()  # event ids seen: Slack redelivers an event it thinks failed, with the same id
    clicks = Recent(window_s=CLICK_WINDOW_S)

    @app.middleware
    def gate(body: dict[str, Any], next: Callable[[], Any]) -> Any:
        """Before any listener: acks what the bot will not act on, without work."""
        kind = body.get("type")
        if kind == "event_callback":
            event = body.get("event") or {}
            if event.get("type") == "message" and not wanted(event):
                return _done()  # every message of every channel the bot is in arrives here
            event_id = body.get("event_id")
            if event_id and not events.first(str(event_id)):
                log.info("event %s delivered again; it was handled the first time", event_id)
                return _done()
        elif kind == "block_actions" and not clicks.first(_click_key(body)):
            log.info(
                "a button pressed twice in a row by %s; handled once", (body.get("user") or {}).get("id")
            )
            return _done()
        return next()

    def home(body: dict[str, Any], context: Any, client: WebClient, respond: Any) -> None:
        event = body.get("event") or {}
        if event.get("tab", "home") == "home":
            publish_home(services, client, event["user"])

    def thread_ack(body: dict[str, Any], context: Any, client: WebClient, respond: Any) -> None:
        message = body["event"]
        caller = Caller(message["user"], message["channel"], message["thread_ts"])
        target = parent_target(client, message["channel"], message["thread_ts"], context.get("bot_id"))
        if target is None:
            return  # an `ack` in someone else's thread is not for us
        context["lsready_action"] = "ack"
        cmd = commands.parse_ack(message.get("text", ""), targets=services.config.targets)
        post(client, caller.channel, acknowledge(services, caller, target, cmd), caller.thread_ts)
        services.metrics.command("ack", "ok")

    after_ack = services.pool.events
    app.event("app_home_opened")(ack=ack_now, lazy=[lazy(services, home, on=after_ack)])
    app.message(THREAD_ACK, matchers=[_in_thread])(
        ack=ack_now, lazy=[lazy(services, thread_ack, on=after_ack)]
    )


def _click_key(body: dict[str, Any]) -> str:
    """The same button of the same message (or view) pressed by the same person."""
    action = (body.get("actions") or [{}])[0]
    where = (body.get("container") or {}).get("message_ts") or (body.get("view") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    return "\x1f".join(str(p) for p in (user, where, action.get("action_id"), action.get("value")))
