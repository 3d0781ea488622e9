"""The weekly readiness digest: score, what changed since the last digest, and what needs a person.

A digest compares with the previous digest posted for the same target (scheduled or `--post`):
its check run for statuses, its time for attestations added, expired and revoked since. A preview
(`lsready digest`, `/langsmith digest`) compares the same way and never becomes the baseline.

Scheduling is cron-shaped; a slot is posted exactly once per target, whatever restarts happen near
it, because a slot is claimed in the store before it is posted and released only if posting fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from checks.model import Status
from checks.runner import Report
from runbooks.readiness import Readiness
from storage.acks import Ack
from storage.digests import CLAIM_STALE
from storage.history import StoredRun

log = logging.getLogger(__name__)

# How bad a status is, for telling a regression from an improvement.
_RANK = {"pass": 0, "attested": 0, "n/a": 0, "warn": 1, "manual": 1, "unknown": 2, "fail": 3}


@dataclass(frozen=True)
class Change:
    item_id: str
    title: str
    before: str | None
    after: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.item_id, "title": self.title, "before": self.before, "after": self.after,
                "summary": self.summary}  # fmt: skip


@dataclass(frozen=True)
class Digest:
    target: str
    report: Report
    previous_at: datetime | None
    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    regressions: list[Change] = field(default_factory=list)
    new_unknowns: list[Change] = field(default_factory=list)
    failing_required: list[Change] = field(default_factory=list)
    manual_waiting: list[Change] = field(default_factory=list)
    expiring: list[Ack] = field(default_factory=list)
    acks_added: list[Ack] = field(default_factory=list)
    acks_expired: list[Ack] = field(default_factory=list)
    acks_revoked: list[Ack] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Anything moved since the previous digest: a status or an attestation."""
        return bool(
            self.new_failures or self.fixed or self.regressions or self.new_unknowns
            or self.acks_added or self.acks_expired or self.acks_revoked
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "generated_at": self.report.started_at.isoformat(),
            "previous_at": self.previous_at.isoformat() if self.previous_at else None,
            "score": self.report.score.to_dict(),
            "changes": {
                "new_failures": [c.to_dict() for c in self.new_failures],
                "fixed": [c.to_dict() for c in self.fixed],
                "regressions": [c.to_dict() for c in self.regressions],
                "new_unknowns": [c.to_dict() for c in self.new_unknowns],
            },
            "failing_required": [c.to_dict() for c in self.failing_required],
            "manual_waiting": [c.to_dict() for c in self.manual_waiting],
            "expiring": [a.to_dict() for a in self.expiring],
            "attestations": {
                "added": [a.to_dict() for a in self.acks_added],
                "expired": [a.to_dict() for a in self.acks_expired],
                "revoked": [a.to_dict() for a in self.acks_revoked],
            },
        }


def diff(previous: StoredRun | None, report: Report) -> dict[str, list[Change]]:
    """Classify every item whose status moved since the previous run."""
    out: dict[str, list[Change]] = {"new_failures": [], "fixed": [], "regressions": [], "new_unknowns": []}
    before_all = previous.statuses if previous else {}
    for r in report.results:
        before, after = before_all.get(r.item.id), r.status.value
        if before == after:
            continue
        change = Change(r.item.id, r.item.title, before, after, r.summary)
        if after == "fail":
            out["new_failures"].append(change)
        elif after == "unknown":
            out["new_unknowns"].append(change)
        elif before is not None and _RANK[after] == 0 and _RANK.get(before, 0) > 0:
            out["fixed"].append(change)
        elif before is not None and _RANK[after] > _RANK.get(before, 0):
            out["regressions"].append(change)
    return out


def build_digest(readiness: Readiness, target: str | None = None, report: Report | None = None) -> Digest:
    """Check the target (recording the run) and compare with the previous digest posted for it."""
    name = readiness.target_name(target)
    sent = readiness.digests.last_sent(name)
    previous = None
    if sent and sent.get("run_id"):
        previous = readiness.history.get(int(sent["run_id"]))  # type: ignore[arg-type]
    report = report or readiness.check(name)
    changes = diff(previous, report)
    acks = readiness.acks.changes_since(name, previous.started_at) if previous else {}
    window = timedelta(days=readiness.config.digest.expiring_within_days)
    by_id = {r.item.id: r for r in report.results}
    return Digest(
        target=name,
        report=report,
        previous_at=previous.started_at if previous else None,
        # The score's own list, as `status`, App Home and the exit code count them.
        failing_required=[
            Change(i, by_id[i].item.title, None, by_id[i].status.value, by_id[i].summary)
            for i in report.score.required_failing
        ],
        manual_waiting=[
            Change(r.item.id, r.item.title, None, r.status.value, r.summary)
            for r in report.results
            if r.status is Status.MANUAL
        ],
        expiring=readiness.acks.expiring(name, window),
        # One made in the second the previous digest's run started counts if that run did not see it.
        acks_added=[
            a
            for a in acks.get("added", [])
            if previous is None
            or a.created > previous.started_at
            or previous.statuses.get(a.item_id) != Status.ATTESTED.value
        ],
        acks_expired=acks.get("expired", []),
        acks_revoked=acks.get("revoked", []),
        **changes,
    )


_FIRST_WINDOW = timedelta(hours=1)
_LAST_WINDOW = timedelta(days=4 * 366)  # a slot on 29 February comes back within four years


def latest_slot(cron: str, tz: str, now: datetime) -> datetime:
    """The most recent time at or before `now` that the cron expression fires."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    # Look back in growing windows, then step only through the fires of the first window that has
    # any: an every-minute cron is found within the hour, not by walking a year of minutes.
    window = _FIRST_WINDOW
    while True:
        nxt = trigger.get_next_fire_time(None, now - window)
        if nxt is not None and nxt <= now:
            last = nxt
            while (nxt := trigger.get_next_fire_time(nxt, nxt + timedelta(seconds=1))) and nxt <= now:
                last = nxt
            return last
        if window >= _LAST_WINDOW:
            raise ValueError(f"cron '{cron}' never fires")
        window = min(window * 8, _LAST_WINDOW)


Poster = Callable[[Digest], tuple[str, str]]  # returns (channel, message ts)
DIGEST_GRACE = timedelta(hours=6)  # a slot missed by longer (a process down for days) is not sent late


def send_due_digests(readiness: Readiness, post: Poster, now: datetime | None = None) -> list[str]:
    """Post each target's digest for the current slot unless it was already posted; returns targets posted.

    A slot older than the grace period (a process that was down for days) is skipped, not sent late.
    """
    cfg = readiness.config.digest
    now = now or readiness.clock()
    slot = latest_slot(cfg.cron, cfg.timezone, now)
    if now - slot > DIGEST_GRACE:
        return []
    posted = []
    for target in cfg.targets or sorted(readiness.config.targets):
        if not readiness.digests.claim(target, slot):
            continue
        try:
            digest = build_digest(readiness, target)
            channel, ts = post(digest)
        except Exception:
            readiness.digests.release(target, slot)
            readiness.audit.record(
                "scheduler", "digest", target=target, outcome="failed", detail=slot.isoformat()
            )
            log.exception("digest for %s at %s failed; the slot is released for a retry", target, slot)
            continue
        readiness.digests.mark_sent(target, slot, channel, ts, readiness.history.latest_id(target))
        readiness.audit.record("scheduler", "digest", target=target, place=channel, detail=slot.isoformat())
        posted.append(target)
    return posted


def record_hand_post(readiness: Readiness, digest: Digest, channel: str, ts: str, actor: str) -> None:
    """A digest posted by hand (`lsready digest --post`): the next digest compares with it; audited."""
    run_id = readiness.history.latest_id(digest.target)
    readiness.digests.record_posted(digest.target, readiness.clock(), channel, ts, run_id)
    readiness.audit.record(actor, "digest", target=digest.target, place=channel, detail="posted by hand")


def digest_retry_at(readiness: Readiness, now: datetime | None = None) -> datetime | None:
    """When to try the current slot again: the earliest moment a claim left by a post that never
    finished (a process that died mid-post, just before a restart) may be taken over; None if none."""
    cfg = readiness.config.digest
    now = now or readiness.clock()
    slot = latest_slot(cfg.cron, cfg.timezone, now)
    if now - slot > DIGEST_GRACE:
        return None
    targets = cfg.targets or sorted(readiness.config.targets)
    claimed = [p for p in (readiness.digests.pending_since(t, slot) for t in targets) if p is not None]
    return min(claimed) + CLAIM_STALE + timedelta(seconds=5) if claimed else None


def due_reminders(readiness: Readiness, now: datetime | None = None) -> list[Ack]:
    """Acknowledgements about to expire whose acknowledger has not been reminded yet (claimed once)."""
    now = now or readiness.clock()
    window = timedelta(days=readiness.config.acks.remind_days_before)
    due = []
    for target in sorted(readiness.config.targets):
        for ack in readiness.acks.expiring(target, window):
            if readiness.acks.claim_reminder(ack.id, "expiry"):
                due.append(ack)
    return due
