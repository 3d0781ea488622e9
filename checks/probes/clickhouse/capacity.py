"""ClickHouse capacity: node size and disk usage with system log size (items 24, 28)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from checks.clients import Clients
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes.clickhouse.query import (
    REMOTE_DISK_TYPES,
    TableAbsent,
    answered_replicas,
    query_rows,
    remote_settings,
    silent_note,
    system_source,
)
from checks.probes.common import grade_high, human_bytes, pct, worst
from checks.sessions import ClickHouseSession

# --- Node size: item 24 --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResources:
    """CPUs and memory of one ClickHouse server, with the signal each number came from."""

    host: str
    cpus: float | None
    cpu_source: str
    memory_bytes: int | None
    memory_source: str


def _resources_from_metrics(rows: Sequence[Mapping[str, Any]]) -> list[NodeResources]:
    by_host: dict[str, dict[str, float]] = {}
    for r in rows:
        by_host.setdefault(str(r["host"]), {})[str(r["metric"])] = float(r["value"])
    nodes = []
    for host, m in sorted(by_host.items()):
        cores = sum(1 for k in m if re.fullmatch(r"OSUserTimeCPU\d+", k))
        if m.get("CGroupMaxCPU", 0) > 0:
            cpus, cpu_src = m["CGroupMaxCPU"], "CGroupMaxCPU, the container limit"
        elif cores:
            cpus, cpu_src = float(cores), "the host CPUs in asynchronous_metrics"
        else:
            cpus, cpu_src = None, "asynchronous_metrics (no CPU metric)"
        host_mem = m.get("OSMemoryTotal", 0)
        cgroup_mem = m.get("CGroupMemoryTotal", 0)
        if cgroup_mem > 0 and (not host_mem or cgroup_mem < host_mem):
            mem, mem_src = int(cgroup_mem), "CGroupMemoryTotal, the container limit"
        elif host_mem:
            mem, mem_src = int(host_mem), "OSMemoryTotal of the host"
        else:
            mem, mem_src = None, "asynchronous_metrics (no memory metric)"
        nodes.append(NodeResources(host, cpus, cpu_src, mem, mem_src))
    return nodes


def _resources_from_settings(ch: ClickHouseSession) -> list[NodeResources]:
    """Fallback without asynchronous_metrics: what the server derived from its CPUs and memory."""
    threads = {
        str(r["host"]): str(r["value"])
        for r in query_rows(
            ch,
            "node_size",
            f"SELECT hostName() AS host, value FROM {system_source(ch, 'system.settings')} "
            f"WHERE name = 'max_threads' LIMIT 100{remote_settings(ch)}",
            reads="system.settings",
            purpose="estimate the CPU count",
        )
    }
    memory: dict[str, dict[str, Any]] = {}
    for r in query_rows(
        ch,
        "node_size",
        f"SELECT hostName() AS host, name, value, changed FROM {system_source(ch, 'system.server_settings')} "
        "WHERE name IN ('max_server_memory_usage', 'max_server_memory_usage_to_ram_ratio') "
        f"LIMIT 100{remote_settings(ch)}",
        reads="system.server_settings",
        purpose="estimate the memory size",
    ):
        memory.setdefault(str(r["host"]), {})[str(r["name"])] = r
    nodes = []
    for host in sorted(set(threads) | set(memory)):
        # max_threads defaults to 'auto(N)', N being the CPUs the server may use (cgroup-aware).
        auto = re.fullmatch(r"auto\((\d+)\)", threads.get(host, ""))
        cpus = float(auto.group(1)) if auto else None
        cpu_src = f"max_threads = auto({auto.group(1)}), the CPUs it may use" if auto else "max_threads"
        mem, mem_src = _memory_from_server_settings(memory.get(host, {}))
        nodes.append(NodeResources(host, cpus, cpu_src, mem, mem_src))
    return nodes


def _memory_from_server_settings(settings: Mapping[str, Mapping[str, Any]]) -> tuple[int | None, str]:
    limit = settings.get("max_server_memory_usage")
    ratio = settings.get("max_server_memory_usage_to_ram_ratio")
    if limit is None or not float(limit["value"]):
        return None, "server_settings (no memory limit reported)"
    if int(limit["changed"]):
        return int(float(limit["value"])), "max_server_memory_usage, its configured memory cap"
    # Left at its default, the limit is RAM (cgroup-aware) times the ratio.
    factor = float(ratio["value"]) if ratio is not None and float(ratio["value"]) > 0 else 1.0
    return int(float(limit["value"]) / factor), "max_server_memory_usage over its RAM ratio"


def node_resources(ch: ClickHouseSession, probe: str = "node_size") -> list[NodeResources]:
    """CPUs and memory of every server: asynchronous_metrics when present, else derived settings."""
    try:
        rows = query_rows(
            ch,
            probe,
            "SELECT hostName() AS host, metric, value "
            f"FROM {system_source(ch, 'system.asynchronous_metrics')} "
            "WHERE metric IN ('CGroupMaxCPU', 'CGroupMemoryTotal', 'OSMemoryTotal') "
            f"OR match(metric, '^OSUserTimeCPU[0-9]+$') LIMIT 10000{remote_settings(ch)}",
            reads="system.asynchronous_metrics",
            purpose="read CPUs and memory",
        )
    except TableAbsent:
        rows = []
    return _resources_from_metrics(rows) if rows else _resources_from_settings(ch)


def _size_score(node: NodeResources, min_cpus: float, min_gib: float) -> float:
    """The node's size as a share of the baseline, by its scarcer resource: under 1 is too small."""
    return min((node.cpus or 0) / min_cpus, (node.memory_bytes or 0) / (min_gib * 2**30))


def node_size(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every ClickHouse server has at least `min_cpus` CPUs and `min_memory_gib` GiB of memory."""
    ch = clients.clickhouse
    min_cpus, min_gib = float(params["min_cpus"]), float(params["min_memory_gib"])
    nodes = node_resources(ch)
    answered, expected = answered_replicas(ch, "node_size", {n.host for n in nodes})
    observed = {
        "nodes": [asdict(n) for n in nodes][:20],
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    threshold = {"min_cpus": min_cpus, "min_memory_gib": min_gib}
    unknown = [n for n in nodes if n.cpus is None or n.memory_bytes is None]
    if not nodes or len(unknown) == len(nodes):
        raise LsreadyError(
            "ClickHouse reports neither asynchronous_metrics nor an automatic max_threads / memory limit; "
            "cannot tell its CPUs and memory"
        )
    known = [n for n in nodes if n not in unknown]
    small = min(known, key=lambda n: _size_score(n, min_cpus, min_gib))
    what = (
        f"ClickHouse node {small.host} has {small.cpus:g} CPUs and {(small.memory_bytes or 0) / 2**30:.1f} "
        f"GiB memory (from {small.cpu_source}; {small.memory_source})"
    )
    note = silent_note(answered, expected)
    if _size_score(small, min_cpus, min_gib) < 1:
        return Evidence(
            Status.FAIL,
            f"{what}, below the {min_cpus:g} vCPU / {min_gib:g} GiB baseline{note}.",
            observed,
            threshold,
        )
    status = Status.WARN if unknown or note else Status.PASS
    smallest = f", the smallest of {len(known)} nodes," if len(known) > 1 else ""
    unmeasured = f"; {len(unknown)} node(s) could not be measured" if unknown else ""
    return Evidence(
        status,
        f"{what}{smallest} meeting the {min_cpus:g} vCPU / {min_gib:g} GiB baseline{unmeasured}{note}.",
        observed,
        threshold,
    )


# --- Disk usage and system log size: item 28 -----------------------------------------------------


@dataclass(frozen=True)
class DiskUse:
    host: str
    disk: str
    path: str
    used_ratio: float
    used_bytes: int
    total_bytes: int


def disk_usage_by_replica(ch: ClickHouseSession, probe: str = "disk_usage") -> list[DiskUse]:
    """Local disks of every replica, fullest first (object-storage disks report no real free space)."""
    rows = query_rows(
        ch,
        probe,
        "SELECT hostName() AS host, name, path, free_space, total_space "
        f"FROM {system_source(ch, 'system.disks')} "
        "WHERE lower(toString(type)) NOT IN {remote:Array(String)} AND total_space > 0 "
        f"LIMIT 1000{remote_settings(ch)}",
        {"remote": list(REMOTE_DISK_TYPES)},
        reads="system.disks",
        purpose="measure disk usage",
    )
    disks = [
        DiskUse(
            host=str(r["host"]),
            disk=str(r["name"]),
            path=str(r["path"]),
            used_ratio=1 - int(r["free_space"]) / int(r["total_space"]),
            used_bytes=int(r["total_space"]) - int(r["free_space"]),
            total_bytes=int(r["total_space"]),
        )
        for r in rows
    ]
    return sorted(disks, key=lambda d: d.used_ratio, reverse=True)


def system_log_bytes(ch: ClickHouseSession, probe: str = "disk_usage") -> dict[str, dict[str, int]]:
    """Bytes on disk of the system log tables (query_log, part_log, trace_log...) per host."""
    rows = query_rows(
        ch,
        probe,
        "SELECT hostName() AS host, table, sum(bytes_on_disk) AS bytes "
        f"FROM {system_source(ch, 'system.parts')} "
        "WHERE database = 'system' AND active AND match(table, '_log(_[0-9]+)?$') "
        f"GROUP BY host, table ORDER BY bytes DESC LIMIT 200{remote_settings(ch)}",
        reads="system.parts",
        purpose="measure the size of system log tables",
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(str(r["host"]), {})[str(r["table"])] = int(r["bytes"])
    return out


def disk_usage(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The fullest local disk of any replica against warn/fail ratios; system logs' share of it."""
    ch = clients.clickhouse
    warn_r, fail_r = float(params["warn_ratio"]), float(params["fail_ratio"])
    logs_share_limit = float(params["system_logs_warn_share"])
    disks = disk_usage_by_replica(ch)
    if not disks:
        return Evidence(
            Status.NA, "ClickHouse stores its data only on object storage; it has no local disk to fill."
        )
    logs = system_log_bytes(ch)
    used_by_host: dict[str, int] = {}
    for d in disks:
        used_by_host[d.host] = used_by_host.get(d.host, 0) + d.used_bytes
    shares = {h: sum(t.values()) / used_by_host[h] for h, t in logs.items() if used_by_host.get(h)}
    answered, expected = answered_replicas(ch, "disk_usage", {d.host for d in disks})
    top = disks[0]
    observed = {
        "disks": [asdict(d) for d in disks[:20]],
        "system_logs_bytes": logs,
        "system_logs_share": {h: round(s, 4) for h, s in shares.items()},
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    threshold = {"warn_ratio": warn_r, "fail_ratio": fail_r, "system_logs_warn_share": logs_share_limit}
    status = grade_high(top.used_ratio, warn_r, fail_r)
    summary = (
        f"ClickHouse disk '{top.disk}' on {top.host} is {pct(top.used_ratio, warn_r, fail_r)} full "
        f"({human_bytes(top.used_bytes)} of {human_bytes(top.total_bytes)}; "
        f"warn {pct(warn_r)}, fail {pct(fail_r)})"
    )
    heavy = max(shares.items(), key=lambda kv: kv[1], default=None)
    if heavy is not None and heavy[1] > logs_share_limit:
        status = worst(status, Status.WARN)
        biggest = max(logs[heavy[0]].items(), key=lambda kv: kv[1])[0]
        summary += (
            f", and system log tables take {pct(heavy[1], logs_share_limit)} of the used space on {heavy[0]} "
            f"(largest system.{biggest}; limit {pct(logs_share_limit)}): set a TTL on them"
        )
    note = silent_note(answered, expected)
    if note:
        status = worst(status, Status.WARN)
    return Evidence(status, summary + note + ".", observed, threshold)
