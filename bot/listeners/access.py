"""Who may run what in Slack: `slack.access` rules, with user group membership cached for a while."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from checks.config import SlackConfig

log = logging.getLogger(__name__)

ACTIONS = ("triage", "check", "status", "ack", "digest", "silence")
MEMBERS_TTL_S = 300.0  # a user added to a group waits at most this long; Slack rate-limits the lookup


class Access:
    """An action without a rule is open; with one, a listed user, group member or channel may do it."""

    def __init__(
        self,
        slack: SlackConfig,
        client: WebClient,
        *,
        ttl_s: float = MEMBERS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = slack.access
        self.client = client
        self.ttl_s = ttl_s
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def allows(self, action: str, user: str | None, channel: str | None = None) -> bool:
        rule = self.rules.get(action)  # type: ignore[call-overload]
        if rule is None:
            return True
        if user in rule.users or (channel is not None and channel in rule.channels):
            return True
        return user is not None and any(user in self.members(group) for group in rule.usergroups)

    def allowed(self, user: str | None, channel: str | None = None) -> set[str]:
        return {a for a in ACTIONS if self.allows(a, user, channel)}

    def members(self, group: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._members.get(group)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except SlackApiError as exc:
            # A deleted group or a missing usergroups:read scope grants nobody; say so in the log.
            log.warning("cannot list members of user group %s: %s", group, exc.response.get("error"))
            users = frozenset()
        except OSError as exc:
            # Slack too slow to answer before the ack: the last known members (or nobody) this once.
            log.warning("cannot list members of user group %s in time: %s", group, exc)
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._members[group] = (now, users)
        return users
