"""Who may run what in Slack: `slack.access` rules, with user group members cached.

Membership is cached stale-while-revalidate: past `ttl_s` the last known members still answer
while one background lookup refreshes them, so a slow or failing Slack never turns an on-call
engineer away. Only a positive answer refuses: the user is not in the members Slack gave. When
nothing is known about a group (the lookup failed and never succeeded), the verdict is
`unverified`, which is audited as such and told apart from a refusal.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from checks.config import SlackConfig

log = logging.getLogger(__name__)

ACTIONS = ("triage", "check", "status", "ack", "digest", "bundle", "silence")
MEMBERS_TTL_S = 300.0  # a user added to a group waits at most this long; Slack rate-limits the lookup
WARM_WAIT_S = 5.0  # how long start-up waits for the first lookups before serving anyway
GONE = ("no_such_subteam", "subteam_not_found")  # Slack positively says the group has no members


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"  # Slack's answer (or the rule) says no
    UNVERIFIED = "unverified"  # a group lookup could not be made and nothing is known


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
        self._refreshing: dict[str, threading.Event] = {}  # group -> set when its lookup ends
        self._failures: dict[str, str] = {}  # group -> why its latest lookup failed
        self._lock = threading.Lock()

    @property
    def groups(self) -> set[str]:
        return {g for action in ACTIONS if (rule := self._rule(action)) for g in rule.usergroups}

    def _rule(self, action: str):  # type: ignore[no-untyped-def]
        return self.rules.get(action)  # type: ignore[call-overload]

    def decide(
        self, action: str, user: str | None, channel: str | None = None, *, wait: bool = True
    ) -> Verdict:
        """The verdict for `user` doing `action` in `channel`. `wait=False` (before an ack) answers
        from the cache only and starts the lookup of an unknown group in the background."""
        return self.explain(action, user, channel, wait=wait)[0]

    def explain(
        self, action: str, user: str | None, channel: str | None = None, *, wait: bool = True
    ) -> tuple[Verdict, str | None]:
        """The verdict, and when it rests on members Slack could not confirm lately, a note saying so."""
        rule = self._rule(action)
        if rule is None:
            return Verdict.ALLOWED, None
        if user in rule.users or (channel is not None and channel in rule.channels):
            return Verdict.ALLOWED, None
        unknown, notes = False, []
        for group in rule.usergroups:
            members = self.members(group, wait=wait)
            note = self.stale_note(group)
            if members is None:
                unknown = True
            elif user is not None and user in members:
                return Verdict.ALLOWED, note
            elif note:
                notes.append(note)
        if unknown and user is not None:
            return Verdict.UNVERIFIED, None
        return Verdict.REFUSED, "; ".join(notes) or None

    def stale_note(self, group: str) -> str | None:
        """'members of S... as known 412 s ago (Slack: <error>)' while the group's lookups fail."""
        with self._lock:
            cached, failure = self._members.get(group), self._failures.get(group)
        if cached is None or failure is None:
            return None
        return f"members of {group} as known {self.clock() - cached[0]:.0f} s ago (Slack: {failure})"

    def allows(self, action: str, user: str | None, channel: str | None = None) -> bool:
        return self.decide(action, user, channel) is Verdict.ALLOWED

    def allowed(self, user: str | None, channel: str | None = None) -> set[str]:
        return {a for a in ACTIONS if self.allows(a, user, channel)}

    def members(self, group: str, *, wait: bool = True) -> frozenset[str] | None:
        """The group's members: fresh, else the last known (refreshed in the background), else
        looked up now (`wait`), else None: nothing known."""
        with self._lock:
            cached = self._members.get(group)
        if cached is not None:
            age = self.clock() - cached[0]
            if age >= self.ttl_s:
                self._refresh(group)
            return cached[1]
        done = self._refresh(group)
        if wait:
            done.wait()
            with self._lock:
                cached = self._members.get(group)
        return cached[1] if cached is not None else None

    def warm(self, wait_s: float = WARM_WAIT_S) -> None:
        """Look up every group the rules name, waiting at most `wait_s` for the answers."""
        pending = [self._refresh(group) for group in sorted(self.groups)]
        deadline = self.clock() + wait_s
        for done in pending:
            done.wait(max(0.0, deadline - self.clock()))

    def _refresh(self, group: str) -> threading.Event:
        """Start the group's lookup unless one is running; the event is set when it ends."""
        with self._lock:
            running = self._refreshing.get(group)
            if running is not None:
                return running
            done = self._refreshing[group] = threading.Event()
        threading.Thread(
            target=self._lookup, args=(group, done), name=f"usergroup-{group}", daemon=True
        ).start()
        return done

    def _lookup(self, group: str, done: threading.Event) -> None:
        started = self.clock()
        users: frozenset[str] | None = None
        failure = "no answer"
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except SlackApiError as exc:
            failure = str(exc.response.get("error"))
            if failure in GONE:
                users = frozenset()
        except (SlackClientError, OSError) as exc:  # a timeout, a refused connection
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                if users is not None:
                    self._members[group] = (started, users)
                    self._failures.pop(group, None)
                else:
                    self._failures[group] = failure
                known = group in self._members
                del self._refreshing[group]
            done.set()
        if users is None:
            fallback = "using the last known members" if known else "nobody in it can be verified"
            log.warning("cannot list members of user group %s (%s): %s", group, failure, fallback)
