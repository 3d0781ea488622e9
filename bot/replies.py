"""The errors told to the caller as they are: refusals, a snapshot gone, the slow pool busy.

Their messages are mrkdwn from bot/templates (inputs escaped there); bot/errors.py says them.
"""

from __future__ import annotations

from bot.render.slack_text import line, replies
from checks.errors import LsreadyError


class SlackReply(LsreadyError):
    """An error whose message is mrkdwn from bot/templates (its inputs escaped there)."""


class Denied(SlackReply):
    """Refused or unverified access: audited where it happened, not again as an error."""

    outcome = "refused"

    def __init__(self, action: str, text: str) -> None:
        self.action = action
        super().__init__(text)


class Refused(Denied):
    def __init__(self, action: str) -> None:
        super().__init__(action, line(replies().not_allowed, action))


class Unverified(Denied):
    outcome = "unverified"

    def __init__(self, action: str) -> None:
        super().__init__(action, line(replies().not_verified, action))


class NotInChannel(SlackReply):
    def __init__(self) -> None:
        super().__init__(line(replies().not_in_channel))


class SnapshotGone(SlackReply):
    def __init__(self) -> None:
        super().__init__(line(replies().snapshot_gone))


class Busy(SlackReply):
    outcome = "busy"

    def __init__(self, admitted: int) -> None:
        super().__init__(line(replies().busy, admitted))


class AlreadyRunning(SlackReply):
    outcome = "busy"

    def __init__(self, request: object, where: str) -> None:
        """`request` is the running one, named by its str() ("check of prod (redis)")."""
        super().__init__(line(replies().already_running, str(request), where))
