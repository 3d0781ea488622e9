"""Queue drain: two samples of the same Redis lists, arrivals against drain, time left before expiry."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from checks.execution import reason
from checks.model import Evidence, Status
from checks.probes.common import grade_above, grade_high, human_duration, worst
from checks.probes.published_queues import NoEndpoints, disagreements
from checks.probes.redis import queue_depths
from runbooks.measure.readings import Readings, list_ends


def arrived_since(marker: str | None, newest: list[str]) -> int | None:
    """Jobs pushed after `marker` (the newest job at the first sample); None if it is not in `newest`."""
    if marker is None or marker not in newest:
        return None
    return newest.index(marker)


@dataclass(frozen=True)
class QueueFlow:
    """One queue over the sample: depth, age, and how many jobs arrived and left, per second."""

    label: str
    waiting_before: int
    waiting: int
    oldest_age_s: float | None
    interval_s: float
    arrived: int | None  # None when the first sample's newest job scrolled out of the read window
    drained: int | None  # None when it cannot be told (see `exact`)
    exact: bool  # False: arrived/drained are lower bounds (the queue turned over, or was empty)

    @property
    def arrival_per_s(self) -> float | None:
        return None if self.arrived is None else self.arrived / self.interval_s

    @property
    def drain_per_s(self) -> float | None:
        return None if self.drained is None else self.drained / self.interval_s

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("oldest_age_s", "interval_s"):
            data[key] = None if data[key] is None else round(data[key], 2)
        data["arrival_per_s"] = None if self.arrival_per_s is None else round(self.arrival_per_s, 2)
        data["drain_per_s"] = None if self.drain_per_s is None else round(self.drain_per_s, 2)
        return data


def queue_flow(
    before: int, after: int, arrived: int | None, marked: bool, window: int
) -> tuple[int | None, int | None, bool]:
    """(arrived, drained, exact) from two lengths and where the first sample's newest job now sits."""
    if not marked:  # nothing waited at the first sample: whatever waits now arrived since
        return after, None, False
    if arrived is None and after < window:
        # The whole list was read and the marker is gone: every job of the first sample left.
        return after, before, False
    if arrived is None:  # more than `window` jobs arrived since: only the depth change is known
        return None, None, False
    # A job pushed between the two reads of a sample can skew this by one; never below zero.
    return arrived, max(0, before + arrived - after), True


def _flows(readings: Readings, p: Mapping[str, Any]) -> tuple[list[QueueFlow], datetime, datetime]:
    first = readings.get("redis.queues")
    # The second sample is due `sample_interval_s` after the first, wherever this thread started.
    time.sleep(max(0.0, first["mono"] + float(p["sample_interval_s"]) - time.monotonic()))
    r, window = readings.clients.redis, int(p["queue_scan_window"])
    second_at, second_mono = datetime.now(UTC), time.monotonic()
    depths = first["value"]["depths"]
    ends = list_ends(r, depths, window)
    ages = {q.label: q.oldest_age_s for q in queue_depths(r, int(p["queue_sample_keys"]))}
    dt = max(second_mono - first["mono"], 1e-3)
    flows = []
    for q in depths:
        before, newest_before = first["value"]["ends"][q.label]
        after, newest = ends[q.label]
        marker = newest_before[0] if newest_before else None
        arrived, drained, exact = queue_flow(
            before, after, arrived_since(marker, newest), marker is not None, window
        )
        flows.append(QueueFlow(q.label, before, after, ages.get(q.label), dt, arrived, drained, exact))
    return flows, first["at"], second_at


def _grade_flow(f: QueueFlow, p: Mapping[str, Any]) -> Status:
    depth = grade_above(f.waiting, float(p["queue_warn"]), float(p["queue_fail"]))
    age = (
        Status.PASS
        if f.oldest_age_s is None
        else grade_high(f.oldest_age_s, float(p["oldest_warn_s"]), float(p["oldest_fail_s"]))
    )
    # Jobs waited, none left in the whole sample: the workers are not draining at all.
    stalled = f.exact and f.drained == 0 and f.waiting_before >= int(p["stalled_min_depth"])
    return worst(depth, age, Status.WARN if stalled else Status.PASS)


def queue_drain(readings: Readings, p: Mapping[str, Any]) -> Evidence:
    """Queue depth, oldest job, arrivals vs drain over the sample, and time left before runs expire;
    LangSmith's published depths beside them, where a disagreement is evidence of its own."""
    readings.start("langsmith.queues")
    flows, first_at, second_at = _flows(readings, p)
    graded = sorted(
        ((f, _grade_flow(f, p)) for f in flows),
        key=lambda fs: (_RANK[fs[1]], -(fs[0].oldest_age_s or 0.0), -fs[0].waiting),
    )
    status = worst(*(s for _, s in graded)) if graded else Status.PASS
    expiry = float(p["runs_expiry_s"])
    observed: dict[str, Any] = {
        "sampled_at": [first_at.isoformat(), second_at.isoformat()],
        "queues": {f.label: {**f.to_dict(), "status": s.value} for f, s in graded},
        "waiting_total": sum(f.waiting for f in flows),
        "runs_expiry_s": expiry,
    }
    threshold = {
        k: p[k] for k in ("queue_warn", "queue_fail", "oldest_warn_s", "oldest_fail_s", "stalled_min_depth")
    }
    published = _published(readings, flows, first_at, observed)
    if all(f.waiting == 0 for f in flows):
        names = ", ".join(f.label for f in flows) or "none found"
        before = sum(f.waiting_before for f in flows)
        earlier = f"; {before} waited {flows[0].interval_s:.1f} s earlier and left" if before else ""
        return Evidence(
            Status.PASS,
            f"No job waits in the Redis queues ({names}){earlier}; the workers keep up{published}.",
            observed,
            threshold,
        )
    lead, _ = graded[0]
    observed["oldest_expires_in_s"] = (
        None if lead.oldest_age_s is None else round(max(0.0, expiry - lead.oldest_age_s), 1)
    )
    return Evidence(status, _flow_sentence(lead, p, expiry)[:-1] + published + ".", observed, threshold)


def _published(
    readings: Readings, flows: list[QueueFlow], first_at: datetime, observed: dict[str, Any]
) -> str:
    """The phrase on LangSmith's published depths (empty when none are configured); fills `observed`."""
    try:
        value = readings.value("langsmith.queues")
    except TimeoutError:
        observed["langsmith_endpoints"] = {"error": f"no answer within {readings.timeout_s:g} s"}
        return "; LangSmith's queue endpoints did not answer in time"
    except NoEndpoints:
        return ""
    except Exception as exc:
        observed["langsmith_endpoints"] = {"error": reason(exc)}
        return f"; LangSmith's queue endpoints were not read ({reason(exc)})"
    depths, errors = value
    apart = disagreements(depths, {f.label: f.waiting_before for f in flows}, first_at.timestamp())
    observed["langsmith_endpoints"] = {
        "depths": {f"{d.service} {d.queue}": d.pending for d in depths},
        "errors": errors,
        "disagreements": [d.sentence() for d in apart],
    }
    unread = "".join(f"; {service} not read ({why})" for service, why in errors.items())
    if apart:
        return "; " + "; ".join(d.sentence() for d in apart) + unread
    if depths:
        shown = ", ".join(f"{d.queue} {d.pending}" for d in depths[:5])
        return f"; LangSmith's own endpoints agree ({shown}){unread}"
    return unread


_RANK = {Status.FAIL: 0, Status.WARN: 1, Status.PASS: 2}


def _flow_sentence(f: QueueFlow, p: Mapping[str, Any], expiry: float) -> str:
    text = (
        f"Redis queue {f.label} has {f.waiting} waiting jobs (warn above {p['queue_warn']}, fail above "
        f"{p['queue_fail']})"
    )
    if f.oldest_age_s is not None:
        text += (
            f", the oldest waiting "
            f"{human_duration(f.oldest_age_s, float(p['oldest_warn_s']), float(p['oldest_fail_s']))} "
            f"(warn at {human_duration(float(p['oldest_warn_s']))}, "
            f"fail at {human_duration(float(p['oldest_fail_s']))})"
        )
    text += f"; over {f.interval_s:.1f} s {_movement(f)}"
    if f.oldest_age_s is not None:
        left = expiry - f.oldest_age_s
        text += (
            f"; its oldest run is dropped in {human_duration(max(0.0, left))} "
            f"(REDIS_RUNS_EXPIRY_SECONDS {expiry:g})"
            if left > 0
            else f"; its oldest job is past REDIS_RUNS_EXPIRY_SECONDS ({expiry:g}), so runs are being lost"
        )
    return text + "."


def _movement(f: QueueFlow) -> str:
    if f.arrived is None or f.drained is None:
        change = f.waiting - f.waiting_before
        return f"its depth changed by {change:+d} (arrivals and drain could not be told apart)"
    bound = "" if f.exact else "at least "
    text = (
        f"{bound}{f.arrived} arrived and {bound}{f.drained} left ({f.drain_per_s:.1f}/s drained vs "
        f"{f.arrival_per_s:.1f}/s arriving)"
    )
    net = (f.drain_per_s or 0.0) - (f.arrival_per_s or 0.0)
    if f.exact and net > 0 and f.waiting:
        text += f", so it empties in about {human_duration(f.waiting / net)} at this rate"
    elif f.exact and net <= 0 and f.waiting:
        text += ", so it is not shrinking"
    return text
