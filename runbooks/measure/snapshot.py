"""The evidence snapshot: everything read at once, timestamped, before anyone changes anything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from checks.errors import LsreadyError
from checks.execution import reason
from checks.model import Evidence, Status
from checks.probes.common import pct
from checks.reach import LABELS, endpoint, unreachable, why
from runbooks.measure.readings import Readings

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
