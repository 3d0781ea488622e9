"""What the listeners share: who is asking and where, the access guard, auditing, posting, evidence."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.access import ACTIONS, Verdict
from bot.render.limits import Message
from bot.replies import Denied, NotInChannel, Refused, Unverified

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who asked, and where: the audit's actor and place."""

    user: str
    channel: str | None = None
    thread_ts: str | None = None  # the message a reply should thread under

    @classmethod
    def of(cls, body: dict[str, Any], context: Any) -> Caller:
        message = body.get("message") or body.get("event") or {}
        thread = message.get("thread_ts") or message.get("ts")
        return cls(context.get("user_id") or "unknown", context.get("channel_id"), thread)

    @property
    def place(self) -> str:
        """Where the bot answers this caller, as mrkdwn."""
        if self.channel is None:
            return f"the App Home of <@{self.user}>"
        return f"a thread in <#{self.channel}>" if self.thread_ts else f"<#{self.channel}>"


def guard(services: Services, action: str, caller: Caller, target: str | None = None) -> None:
    """Raise Refused or Unverified (audited) unless the caller may do `action` here (behind the ack:
    a group not yet known is looked up)."""
    if services.access is None:
        return
    verdict, stale = services.access.explain(action, caller.user, caller.channel)
    if verdict is Verdict.ALLOWED and stale:  # Slack is failing: say what the decision rests on
        log.warning("%s by %s allowed from %s", action, caller.user, stale)
        audit(services, caller, action, target, f"allowed from {stale}", outcome="allowed")
    if verdict is Verdict.ALLOWED:
        return
    denial: Denied = Refused(action) if verdict is Verdict.REFUSED else Unverified(action)
    if verdict is Verdict.REFUSED:
        detail = f"refused from {stale}" if stale else "refused"
    else:
        detail = "could not verify: user group lookup failed"
    audit(services, caller, action, target, detail, outcome=denial.outcome)
    services.metrics.command(action, denial.outcome)
    raise denial


def allowed(services: Services, caller: Caller) -> set[str]:
    """The actions the caller may do here (all of them when no access rules are wired)."""
    if services.access is None:
        return set(ACTIONS)
    return services.access.allowed(caller.user, caller.channel)


def audit(
    services: Services,
    caller: Caller,
    action: str,
    target: str | None,
    detail: str = "",
    *,
    outcome: str = "ok",
) -> None:
    services.readiness.audit.record(
        caller.user,
        action,
        target=target,
        detail=services.redactor.text(detail)[:500],
        place=caller.channel,
        outcome=outcome,
    )


def post(client: WebClient, channel: str | None, message: Message, thread_ts: str | None = None) -> str:
    """Post in the channel (threaded if asked); returns the message ts."""
    if channel is None:
        raise NotInChannel()
    try:
        response = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message.chat_args())
    except SlackApiError as exc:
        if exc.response.get("error") in ("not_in_channel", "channel_not_found", "is_archived"):
            raise NotInChannel() from None
        raise
    return str(response["ts"])


def update(client: WebClient, channel: str, ts: str, message: Message) -> None:
    client.chat_update(channel=channel, ts=ts, **message.chat_args())


def upload_evidence(services: Services, client: WebClient, caller: Caller, key: str) -> None:
    """The snapshot as a timestamped JSON file in the message's thread."""
    snapshot = services.snapshots.get(key)
    guard(services, snapshot["kind"], caller, snapshot["target"])  # evidence needs the right to produce it
    content = json.dumps(services.redactor.value(snapshot), indent=2, default=str)
    stamp = snapshot["snapshot_at"][:19].replace(":", "").replace("-", "")
    name = f"lsready-{snapshot['kind']}-{snapshot['target'][:40]}-{stamp}.json"
    client.files_upload_v2(
        channel=caller.channel,
        thread_ts=caller.thread_ts,
        filename=name,
        content=content,
        title=f"Evidence: {snapshot['kind']} of {snapshot['target'][:60]} at {snapshot['snapshot_at'][:19]}Z",
    )
