"""Events: the App Home board, and `ack <item-id> <note>` replies in a report's or digest's thread."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import actions, commands
from bot.listeners.commands import acknowledge
from bot.listeners.common import Caller, allowed, post
from bot.render.slack_home import Board, render_home

if TYPE_CHECKING:
    from bot.app import Services

THREAD_ACK = re.compile(r"^\s*ack\s+\S", re.I)


def publish_home(services: Services, client: WebClient, user: str, *, notice: str | None = None) -> None:
    """The readiness board from stored runs; opening the tab never runs a probe."""
    readiness = services.readiness
    window = timedelta(days=services.config.digest.expiring_within_days)
    boards = []
    for target in sorted(services.config.targets):
        run = readiness.history.latest(target)
        acked = {
            i for i, a in readiness.acks.active(target).items() if run is None or a.created > run.started_at
        }
        boards.append(Board(target, run, readiness.acks.expiring(target, window), acked))
    view = render_home(
        boards, readiness.catalog, allowed(services, Caller(user)), services.redactor, notice=notice
    )
    client.views_publish(user_id=user, view=view)


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


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish_home(services, client, event["user"])

    @app.message(THREAD_ACK, matchers=[_in_thread])
    def thread_ack(message: dict[str, Any], client: WebClient, context: Any) -> None:
        caller = Caller(message["user"], message["channel"], message["thread_ts"])
        target = parent_target(client, message["channel"], message["thread_ts"], context.get("bot_id"))
        if target is None:
            return  # an `ack` in someone else's thread is not for us
        context["lsready_action"] = "ack"
        cmd = commands.parse_ack(message.get("text", ""), targets=services.config.targets)
        post(client, caller.channel, acknowledge(services, caller, target, cmd), caller.thread_ts)
        services.metrics.command("ack", "ok")

    @app.event("message")
    def other_messages() -> None:
        """Every other message in the channels the bot is in: acknowledged, ignored."""
