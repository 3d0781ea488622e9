"""Background jobs of `lsready serve`: the digest on its cron slot (with a catch-up at start) and reminders.

Exactly-once per slot is the store's job (runbooks.digest.send_due_digests claims a slot before it
posts), so a restart near a slot, or two replicas, never post a digest twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.observability import Metrics
from bot.render.slack_ack import render_reminder
from bot.render.slack_text import SLACK_USER
from bot.slack_post import post_digest
from checks.clients import describe
from runbooks.digest import Digest, digest_retry_at, due_reminders, send_due_digests
from runbooks.readiness import Readiness

log = logging.getLogger(__name__)


def digest_poster(
    readiness: Readiness, client: WebClient, metrics: Metrics | None = None
) -> Callable[[Digest], tuple[str, str]]:
    def post(digest: Digest) -> tuple[str, str]:
        if metrics is not None:  # the digest's check is a whole check: the score gauges follow it
            metrics.observe_report(digest.report, whole=True)
        return post_digest(readiness, digest, client)

    return post


def send_digests(
    readiness: Readiness,
    client: WebClient,
    scheduler: BackgroundScheduler | None = None,
    metrics: Metrics | None = None,
) -> list[str]:
    """Post every target's digest due for the current slot; returns the targets posted.

    A slot still claimed by a post that never finished (a pod killed mid-post, then restarted) is
    tried again once that claim may be taken over, so a restart never costs the slot its digest.
    """
    posted = send_due_digests(readiness, digest_poster(readiness, client, metrics))
    retry = digest_retry_at(readiness)
    if scheduler is not None and retry is not None:
        _digest_once(scheduler, retry, "digest-retry", readiness, client, metrics)
        log.info("a digest post of this slot is unfinished; trying again at %s", retry.isoformat())
    return posted


def _digest_once(
    scheduler: BackgroundScheduler,
    at: datetime,
    job_id: str,
    readiness: Readiness,
    client: WebClient,
    metrics: Metrics | None,
) -> None:
    """One digest run at `at`, besides the cron: a retry of an unfinished post, or the start-up catch-up."""
    scheduler.add_job(
        send_digests,
        "date",
        run_date=at,
        args=[readiness, client, scheduler, metrics],
        id=job_id,
        replace_existing=True,
        misfire_grace_time=3600,
    )


def send_reminders(readiness: Readiness, client: WebClient) -> int:
    """DM each acknowledger whose acknowledgement expires soon (each reminded once); returns how many."""
    redactor, sent = readiness.config.redactor(), 0
    for ack in due_reminders(readiness):
        item = readiness.catalog.get(ack.item_id)
        message = render_reminder(ack, item.title if item else ack.item_id, redactor)
        try:
            if SLACK_USER.match(ack.by):
                channel = client.conversations_open(users=ack.by)["channel"]["id"]
            elif readiness.config.digest.channel:  # acknowledged from the CLI by name: remind the channel
                channel = readiness.config.digest.channel
            else:
                log.info("acknowledgement %s by %s expires soon; nobody to remind in Slack", ack.id, ack.by)
                continue
            client.chat_postMessage(channel=channel, **message.chat_args())
        except SlackApiError as exc:
            error = exc.response.get("error")
            if exc.response.status_code >= 500 or error == "ratelimited":  # Slack's trouble: retry later
                readiness.acks.release_reminder(ack.id, "expiry")
            # else Slack refused (user gone, DMs closed): an answer, not retried
            why = error or exc.response.status_code
            log.warning("reminder for acknowledgement %s failed: %s", ack.id, why)
            continue
        except Exception as exc:  # Slack unreachable: the next hourly run tries again
            readiness.acks.release_reminder(ack.id, "expiry")
            log.warning("reminder for acknowledgement %s not sent, will retry: %s", ack.id, describe(exc))
            continue
        readiness.audit.record(
            "scheduler", "remind", target=ack.target, detail=f"{ack.item_id} to {ack.by}", place=channel
        )
        sent += 1
    return sent


def build_scheduler(
    readiness: Readiness, client: WebClient, metrics: Metrics | None = None
) -> BackgroundScheduler:
    """Reminders hourly (first run at start); with digest.channel, the digest cron and a catch-up run now."""
    cfg = readiness.config.digest
    tz = ZoneInfo(cfg.timezone)
    # One job at a time: the jobs share one SQLite connection, and a digest and a reminder run
    # together at start-up otherwise.
    scheduler = BackgroundScheduler(executors={"default": JobPool(1)}, timezone=tz)
    now = datetime.now(tz)
    if cfg.channel:
        trigger = CronTrigger.from_crontab(cfg.cron, timezone=tz)
        scheduler.add_job(
            send_digests,
            trigger,
            args=[readiness, client, scheduler, metrics],
            id="digest",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        # A restart just after a slot would otherwise wait a whole cycle; the store keeps it at once.
        _digest_once(scheduler, now, "digest-catch-up", readiness, client, metrics)
    scheduler.add_job(
        send_reminders,
        IntervalTrigger(hours=1, timezone=tz),
        args=[readiness, client],
        id="reminders",
        next_run_time=now,
        coalesce=True,
        max_instances=1,
    )
    return scheduler


def start_scheduler(
    readiness: Readiness, client: WebClient, metrics: Metrics | None = None
) -> BackgroundScheduler:
    scheduler = build_scheduler(readiness, client, metrics)
    scheduler.start()
    return scheduler
