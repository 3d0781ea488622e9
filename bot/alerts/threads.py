"""One Slack thread per alert group: post it once, keep its message current, triage in it.

The first firing notification of a group posts the alert's message and starts the live triage
checklist (the same one `/langsmith triage` draws) in its thread. Repeats update the message and
triage again only once the last triage is `alerts.retriage_after` old; a resolution updates it and
says so in the thread. Which thread belongs to which group lives in SQLite (storage.alerts), so
duplicate, concurrent and post-restart deliveries find the same thread.
"""

from __future__ import annotations

import logging
import threading
import zlib
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.common import Caller, post, update
from bot.flows.triage import live_triage, runbooks
from bot.pools import Request
from bot.render.limits import Message
from bot.render.slack_alert import (
    render_alert,
    render_not_started,
    render_resolved_reply,
    render_stopped_reply,
)
from bot.work import start
from checks.errors import LsreadyError
from runbooks.alerts import Ignored, Notification, route
from runbooks.triage import get_runbook
from storage.alerts import AlertThread, AlertThreads, Firing

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

ACTOR = "alertmanager"  # who the audit says started a triage an alert asked for
# One delivery or message update of a group at a time in this process, in arrival order (the database
# makes deliveries safe across processes and restarts); reentrant, since a delivery also refreshes.
_LOCKS = [threading.RLock() for _ in range(64)]


def _lock(group_key: str) -> threading.RLock:
    return _LOCKS[zlib.crc32(group_key.encode()) % len(_LOCKS)]


class AlertGone(LsreadyError):
    def __init__(self) -> None:
        super().__init__("lsready does not know this alert group (another lsready's store may hold it).")


class AlertThreadsDesk:
    """Handles notifications (off the request thread) and the alert message's buttons."""

    def __init__(self, services: Services, client: WebClient) -> None:
        self.services, self.client = services, client

    @property
    def store(self) -> AlertThreads:
        return self.services.readiness.alert_threads  # this thread's connection

    def handle(self, notification: Notification) -> str:
        """Post, update or resolve the group's thread; returns the outcome counted in the metrics."""
        with _lock(notification.groupKey):
            if notification.status == "resolved":
                outcome = self._resolved(notification)
            else:
                outcome = self._firing(notification)
        self.services.metrics.alert(outcome)
        return outcome

    def _firing(self, n: Notification) -> str:
        routed = route(n, self.services.config, runbooks())
        if isinstance(routed, Ignored):
            log.info("alert notification ignored (%s): %s", routed.reason, routed.detail)
            return routed.reason
        labels = n.labels
        summary = n.annotation("summary") or n.annotation("description")
        severity = labels.get("severity", "")
        firing = Firing(
            channel=routed.channel,
            target=routed.target,
            runbook=routed.runbook,
            alertname=labels.get("alertname", "(unnamed alert)"),
            severity=severity,
            summary=summary,
            started_at=n.started_at,
            firing=len(n.firing),
            group_labels=n.groupLabels or n.commonLabels,
            external_url=n.externalURL,
        )
        store = self.store
        thread, claimed = store.claim(n.groupKey, firing)
        if claimed:
            try:
                ts = post(self.client, thread.channel, self._render(thread))
            except BaseException:
                store.release(thread.id)  # Alertmanager's next notification of the group tries again
                raise
            thread = store.posted(thread.id, ts)
            self.triage(thread, Caller(ACTOR, thread.channel, ts), by_alert=True)
            return "threaded"
        thread = store.seen(thread.id, len(n.firing), summary, severity)
        if thread.message_ts is None:
            return "updated"  # its first delivery is posting it right now
        self.refresh(thread)
        after = timedelta(seconds=self.services.config.alerts.retriage_after_s)
        if store.claim_triage(thread.id, after):
            self.triage(thread, Caller(ACTOR, thread.channel, thread.message_ts), by_alert=True)
        return "updated"

    def _resolved(self, n: Notification) -> str:
        thread = self.store.resolve(n.groupKey, n.ended_at)
        if thread is None:
            return "unknown_group"  # never threaded (ignored, or before this store), or already resolved
        if thread.message_ts is not None:
            self.refresh(thread)
            reply = render_resolved_reply(thread, self.services.redactor)
            post(self.client, thread.channel, reply, thread.message_ts)
        return "resolved"

    def triage(self, thread: AlertThread, caller: Caller, *, by_alert: bool = False) -> None:
        """The group's runbook as a live checklist in its thread; the message shows the diagnosis after.

        A triage that cannot start (busy, or the same one already running) is said in the thread when an
        alert asked for it, and told to the person who pressed Re-run otherwise.
        """
        book = get_runbook(thread.runbook)
        where = Caller(caller.user, thread.channel, thread.message_ts)

        def work() -> None:
            try:
                kind, snapshot = live_triage(
                    self.services, self.client, where, thread.target, book, thread.message_ts
                )
            except Exception as exc:
                if by_alert:  # nobody to tell privately: say it where on-call looks
                    reason = (
                        str(exc)
                        if isinstance(exc, LsreadyError)
                        else "an error on lsready's side (in its log)."
                    )
                    message = render_stopped_reply(reason, self.services.redactor)
                    post(self.client, thread.channel, message, thread.message_ts)
                raise  # logged, audited and counted like any triage's error
            self.refresh(self.store.triaged(thread.id, kind, snapshot))

        request = Request("triage", thread.target, thread.runbook)
        try:
            start(self.services, request, where, work, client=self.client)
        except LsreadyError as exc:
            if not by_alert:
                raise
            message = render_not_started(str(exc), self.services.redactor)
            post(self.client, thread.channel, message, thread.message_ts)
            return
        self.refresh(thread)  # shows when this triage started

    def refresh(self, thread: AlertThread) -> None:
        """Redraw the group's message from the store: the last update sent is always the latest state."""
        with _lock(thread.group_key):
            latest = self.store.get(thread.id) or thread
            if latest.message_ts is not None:
                update(self.client, latest.channel, latest.message_ts, self._render(latest))

    def _render(self, thread: AlertThread) -> Message:
        silences = self.services.config.alerts.alertmanager_url is not None
        return render_alert(thread, self.services.redactor, silences=silences)

    def thread(self, thread_id: object) -> AlertThread:
        """The thread a button names; AlertGone when this store does not know it."""
        try:
            found = self.store.get(int(thread_id))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            found = None
        if found is None or found.message_ts is None:
            raise AlertGone()
        return found
