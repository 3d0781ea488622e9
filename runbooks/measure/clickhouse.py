"""ClickHouse measurements: query load with disk use and I/O beside it, merges, ingestion delay."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from checks.execution import reason
from checks.model import Evidence, Status
from checks.probes.clickhouse.reads import grade_ingestion_delay, grade_part_pressure, io_counters
from checks.probes.common import grade_high, human_bytes, pct, worst
from runbooks.measure.readings import PROBE_TAG, Readings


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
