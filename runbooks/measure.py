"""Measurements for the triage runbooks: shared, bounded reads of ClickHouse and Redis, graded.

The reads themselves are the probes' (checks.probes.clickhouse.reads `running_queries`, `part_pressure`,
`disk_usage_by_replica`, `io_counters`, `ingestion_delay`; checks.probes.redis `queue_depths`).
`Readings` runs each of them at most once per triage, on its own daemon thread, so the evidence
snapshot and the later steps see the same numbers and a hung backend holds only its own readers.
What is new here is the second sample: queue arrivals and drain, and disk I/O rates, measured
over `sample_interval_s`.

A measurement is `measure(readings, params) -> Evidence`; `params` are the runbook's resolved
thresholds (runbooks.definitions). It raises when it cannot tell; the triage turns that into `unknown`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from checks.clients import Clients
from checks.errors import LsreadyError
from checks.execution import reason, run_probe
from checks.model import Evidence, Status
from checks.probes.clickhouse.reads import (
    disk_usage_by_replica,
    grade_ingestion_delay,
    grade_part_pressure,
    ingestion_delay,
    io_counters,
    part_pressure,
    running_queries,
)
from checks.probes.common import grade_above, grade_high, human_bytes, human_duration, pct, worst
from checks.probes.published_queues import NoEndpoints, disagreements, read_published
from checks.probes.redis import QueueDepth, queue_depths
from checks.reach import LABELS, endpoint, unreachable, why

PROBE_TAG = "triage"  # ClickHouse queries start with `-- lsready:triage`


# --- Shared readings ---------------------------------------------------------------------------


def _stamp(value: Any) -> dict[str, Any]:
    return {"at": datetime.now(UTC), "mono": time.monotonic(), "value": value}


def _read_running(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(running_queries(clients.clickhouse, PROBE_TAG))


def _read_parts(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    minutes = float(p["stuck_mutation_minutes"])
    return _stamp(part_pressure(clients.clickhouse, stuck_after_minutes=minutes, probe=PROBE_TAG))


def _read_disks(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(disk_usage_by_replica(clients.clickhouse, PROBE_TAG))


def _read_io(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    return _stamp(io_counters(clients.clickhouse, PROBE_TAG))


def _read_delay(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    window = int(p["delay_window_minutes"])
    return _stamp(
        ingestion_delay(clients.clickhouse, window, max_rows=int(p["delay_max_rows"]), probe=PROBE_TAG)
    )


def _read_queues(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    r = clients.redis
    depths = queue_depths(r, int(p["queue_sample_keys"]))
    return _stamp({"depths": depths, "ends": _list_ends(r, depths, 1)})


def _read_published(clients: Clients, p: Mapping[str, Any]) -> dict[str, Any]:
    """LangSmith's own published depths (what KEDA scales on), beside the Redis reading."""
    return _stamp(read_published(clients.target, clients.timeout_s, lambda: clients.cluster.release))


READERS: dict[str, Callable[[Clients, Mapping[str, Any]], dict[str, Any]]] = {
    "clickhouse.running": _read_running,
    "clickhouse.parts": _read_parts,
    "clickhouse.disks": _read_disks,
    "clickhouse.io": _read_io,
    "clickhouse.delay": _read_delay,
    "redis.queues": _read_queues,
    "langsmith.queues": _read_published,
}


class Readings:
    """Each reader started once, on first request, on a daemon thread; waits end at the probe timeout."""

    def __init__(self, clients: Clients, params: Mapping[str, Any]) -> None:
        self.clients = clients
        self.params = params
        self.timeout_s = clients.timeout_s  # the probe timeout, as the clients carry it
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[float, Future[Any]]] = {}

    def start(self, name: str) -> tuple[float, Future[Any]]:
        with self._lock:
            if name not in self._futures:
                self._futures[name] = (time.monotonic(), run_probe(READERS[name], self.clients, self.params))
            return self._futures[name]

    def get(self, name: str) -> dict[str, Any]:
        """The stamped reading; raises its error, or TimeoutError after the probe timeout."""
        started, future = self.start(name)
        return future.result(timeout=max(0.0, started + self.timeout_s - time.monotonic()))

    def value(self, name: str) -> Any:
        return self.get(name)["value"]


# --- Queue drain: two samples of the same lists --------------------------------------------------


def _queue_list(q: QueueDepth) -> tuple[str, bool]:
    """(waiting-list key, True when new jobs are pushed on the right), per system's enqueue order."""
    if q.system == "saq":
        return f"saq:{q.queue}:queued", True  # RPUSH, dequeued from the left
    return f"asynq:{{{q.queue}}}:pending", False  # LPUSH, dequeued from the right


def _list_ends(r: Any, depths: list[QueueDepth], count: int) -> dict[str, tuple[int, list[str]]]:
    """Per queue: its length and its `count` newest ids, newest first, read back to back.

    One pipeline, so length and ids describe nearly the same moment. LRANGE, not LPOS: the
    read-only ACL (deploy/grants) allows LRANGE; MULTI is not granted, so this is not atomic.
    """
    pipe = r.pipeline(transaction=False)
    for q in depths:
        key, right = _queue_list(q)
        pipe.llen(key)
        pipe.lrange(key, -count, -1) if right else pipe.lrange(key, 0, count - 1)
    replies = pipe.execute()
    out = {}
    for n, q in enumerate(depths):
        length, ids = int(replies[2 * n]), list(replies[2 * n + 1])
        out[q.label] = (length, ids[::-1] if _queue_list(q)[1] else ids)
    return out


def _arrived_since(marker: str | None, newest: list[str]) -> int | None:
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
    ends = _list_ends(r, depths, window)
    ages = {q.label: q.oldest_age_s for q in queue_depths(r, int(p["queue_sample_keys"]))}
    dt = max(second_mono - first["mono"], 1e-3)
    flows = []
    for q in depths:
        before, newest_before = first["value"]["ends"][q.label]
        after, newest = ends[q.label]
        marker = newest_before[0] if newest_before else None
        arrived, drained, exact = queue_flow(
            before, after, _arrived_since(marker, newest), marker is not None, window
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


# --- ClickHouse ----------------------------------------------------------------------------------


def clickhouse_load(readings: Readings, p: Mapping[str, Any]) -> Evidence:
    """Running queries per replica against their limits; disk use and disk I/O rates beside them.

    The status is load evidence: concurrency, or a disk past its fail ratio (ClickHouse stops merges
    and refuses inserts as it fills). A disk past only its warn ratio is a capacity note in the
    summary: it does not make an idle ClickHouse the bottleneck of a backlog.
    """
    running = readings.value("clickhouse.running")
    host, busiest = max(running.items(), key=lambda kv: kv[1], default=("", 0))
    warn_q, fail_q = float(p["concurrency_warn"]), float(p["concurrency_fail"])
    status = grade_high(busiest, warn_q, fail_q)
    where = f" on {host}" if host and len(running) > 1 else ""
    text = f"ClickHouse is running {busiest} other queries{where} (warn {warn_q:g}, fail {fail_q:g})"
    observed: dict[str, Any] = {"running_queries": running}
    threshold = {
        k: p[k] for k in ("concurrency_warn", "concurrency_fail", "disk_warn_ratio", "disk_fail_ratio")
    }
    disk_status, disk_text = _disk(readings, p, observed)
    io_text = _io_rates(readings, p, observed)
    return Evidence(worst(status, disk_status), f"{text}; {disk_text}; {io_text}.", observed, threshold)


def _disk(readings: Readings, p: Mapping[str, Any], observed: dict[str, Any]) -> tuple[Status, str]:
    """(FAIL at the fail ratio, else PASS; the phrase). Past the warn ratio is a capacity note only."""
    try:
        disks = readings.value("clickhouse.disks")
    except Exception as exc:  # disk use is one part of the step; the concurrency verdict stands
        observed["disks_error"] = reason(exc)
        return Status.PASS, f"disk use not read ({reason(exc)})"
    observed["disks"] = [asdict(d) for d in disks[:10]]
    if not disks:
        return Status.PASS, "no local disk (object storage only)"
    top = disks[0]
    warn_r, fail_r = float(p["disk_warn_ratio"]), float(p["disk_fail_ratio"])
    graded = grade_high(top.used_ratio, warn_r, fail_r)
    where = f"disk '{top.disk}' on {top.host} is {pct(top.used_ratio, warn_r, fail_r)} full"
    limits = f"(warn {pct(warn_r)}, fail {pct(fail_r)})"
    if graded is Status.FAIL:
        return Status.FAIL, f"{where} {limits}: merges and inserts stop as it fills"
    if graded is Status.WARN:
        observed["disk_capacity_warning"] = True
        return Status.PASS, f"{where} {limits}: plan capacity (a capacity signal, not load)"
    return Status.PASS, f"{where} {limits}"


def _io_rates(readings: Readings, p: Mapping[str, Any], observed: dict[str, Any]) -> str:
    """Bytes per second read and written over the sample, from two reads of system.events."""
    try:
        first = readings.get("clickhouse.io")
        time.sleep(max(0.0, first["mono"] + float(p["sample_interval_s"]) - time.monotonic()))
        mono = time.monotonic()
        second = io_counters(readings.clients.clickhouse, PROBE_TAG)
    except Exception as exc:
        observed["io_error"] = reason(exc)
        return f"disk I/O not read ({reason(exc)})"
    dt = max(mono - first["mono"], 1e-3)
    before, after = first["value"]["since_start"], second["since_start"]
    rates = {k: round((after[k] - before[k]) / dt, 1) for k in after if k in before and k.endswith("Bytes")}
    observed["io_per_s"] = rates
    read = rates.get("OSReadBytes", rates.get("ReadBufferFromFileDescriptorReadBytes"))
    written = rates.get("OSWriteBytes", rates.get("WriteBufferFromFileDescriptorWriteBytes"))
    if read is None and written is None:
        return "disk I/O counters not exposed by this server"
    return f"disk I/O over {dt:.1f} s: {human_bytes(read or 0)}/s read, {human_bytes(written or 0)}/s written"


def merges(readings: Readings, p: Mapping[str, Any]) -> Evidence:
    """Active parts of the busiest partitions vs the tables' insert limits, merges, stuck mutations."""
    pp = readings.value("clickhouse.parts")
    status, text = grade_part_pressure(pp, float(p["parts_warn_ratio"]), float(p["stuck_mutation_minutes"]))
    top = pp.worst
    if top is not None and top.ratio >= float(p["parts_warn_ratio"]) and pp.merges_running == 0:
        text += "; no merge is running while parts pile up, so merges may be stopped or starved"
    threshold = {k: p[k] for k in ("parts_warn_ratio", "stuck_mutation_minutes")}
    return Evidence(status, text + ".", pp.to_dict(), threshold)


def delay(readings: Readings, p: Mapping[str, Any]) -> Evidence:
    """P50/P95 seconds from receipt to insert of the runs inserted over the window."""
    d = readings.value("clickhouse.delay")
    warn_s, fail_s = float(p["delay_warn_s"]), float(p["delay_fail_s"])
    threshold = {"delay_warn_s": warn_s, "delay_fail_s": fail_s}
    # No runs read is neither a low delay nor a high one: the diagnosis must not read it as either.
    status, text = grade_ingestion_delay(d, warn_s, fail_s, none_inserted=Status.UNKNOWN)
    return Evidence(status, text, d, threshold)


# --- Evidence snapshot ---------------------------------------------------------------------------

SNAPSHOT_READS = ("clickhouse.running", "clickhouse.parts", "clickhouse.disks", "redis.queues")


def snapshot(readings: Readings, p: Mapping[str, Any]) -> Evidence:
    """Everything at once, timestamped, before anyone changes anything; a missing part is named."""
    for name in SNAPSHOT_READS:
        readings.start(name)
    got: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    for name in SNAPSHOT_READS:
        try:
            got[name] = readings.get(name)
        except TimeoutError:
            missing[name] = f"no answer within {readings.timeout_s:g} s"
        except Exception as exc:
            backend = unreachable(exc)
            where = endpoint(readings.clients.target, backend) if backend else ""
            missing[name] = f"{LABELS[backend]} at {where}: {why(exc)}" if backend else reason(exc)
    observed: dict[str, Any] = {
        "read_at": {n: g["at"].isoformat() for n, g in got.items()},
        "missing": missing,
        **_snapshot_values(got),
    }
    if not got:
        # Readings that failed for one reason (a backend down) are named together, the reason once.
        by_reason: dict[str, list[str]] = {}
        for read, cause in missing.items():
            by_reason.setdefault(cause, []).append(read)
        raise SnapshotEmpty("; ".join(f"{', '.join(reads)}: {cause}" for cause, reads in by_reason.items()))
    status = Status.WARN if missing else Status.PASS
    at = min(g["at"] for g in got.values())
    text = f"Snapshot at {at:%H:%M:%S} UTC: " + "; ".join(_snapshot_phrases(got, p))
    if missing:
        text += f"; not read: {', '.join(sorted(missing))}"
    return Evidence(status, text + ".", observed)


class SnapshotEmpty(LsreadyError):
    """No part of the snapshot could be read."""

    def __str__(self) -> str:
        return f"nothing could be read ({self.args[0]})"


def _snapshot_values(got: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "clickhouse.running" in got:
        out["running_queries"] = got["clickhouse.running"]["value"]
    if "clickhouse.parts" in got:
        pp = got["clickhouse.parts"]["value"]
        out["parts"] = pp.to_dict()
    if "clickhouse.disks" in got:
        out["disks"] = [asdict(d) for d in got["clickhouse.disks"]["value"][:10]]
    if "redis.queues" in got:
        out["queues"] = {q.label: q.to_dict() for q in got["redis.queues"]["value"]["depths"]}
    return out


def _snapshot_phrases(got: Mapping[str, dict[str, Any]], p: Mapping[str, Any]) -> list[str]:
    phrases = []
    if "clickhouse.running" in got:
        phrases.append(f"{sum(got['clickhouse.running']['value'].values())} queries running")
    if "clickhouse.parts" in got:
        pp = got["clickhouse.parts"]["value"]
        top = pp.worst
        busiest = (
            f", busiest partition {top.table}/{top.partition} at {top.parts} active parts" if top else ""
        )
        phrases.append(f"{pp.merges_running} merges running{busiest}")
        if pp.stuck_mutations:
            phrases.append(f"{len(pp.stuck_mutations)} stuck mutations")
    if "clickhouse.disks" in got and got["clickhouse.disks"]["value"]:
        top_disk = got["clickhouse.disks"]["value"][0]
        # As precise as the ClickHouse step that grades it, so the two never read differently.
        limits = (float(p["disk_warn_ratio"]), float(p["disk_fail_ratio"]))
        phrases.append(f"fullest disk {top_disk.disk} {pct(top_disk.used_ratio, *limits)}")
    if "redis.queues" in got:
        depths = got["redis.queues"]["value"]["depths"]
        waiting = [q for q in depths if q.waiting]
        phrases.append(
            f"{sum(q.waiting for q in depths)} jobs waiting in {len(waiting)} of {len(depths)} Redis queues"
        )
    return phrases


# --- Registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    fn: Callable[[Readings, Mapping[str, Any]], Evidence]
    samples: bool = False  # waits `sample_interval_s` for a second sample, on top of the probe timeout


MEASURES: dict[str, Measure] = {
    "snapshot": Measure(snapshot),
    "clickhouse_load": Measure(clickhouse_load, samples=True),
    "queue_drain": Measure(queue_drain, samples=True),
    "merges": Measure(merges),
    "ingestion_delay": Measure(delay),
}
