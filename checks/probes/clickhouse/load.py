"""ClickHouse load: running queries, I/O, query latency and timeouts (items 29, 59)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.clickhouse.parts import grade_part_pressure, part_pressure
from checks.probes.clickhouse.query import (
    IO_EVENTS,
    NOT_LSREADY,
    QUERY_WAS_CANCELLED,
    TIMEOUT_EXCEEDED,
    TableAbsent,
    query_rows,
    remote_settings,
    system_source,
)
from checks.probes.common import grade_high, worst
from checks.sessions import ClickHouseSession

# --- Concurrency, I/O and query latency: item 29 -------------------------------------------------


def running_queries(ch: ClickHouseSession, probe: str = "concurrency") -> dict[str, int]:
    """Queries running now per replica, not counting this one."""
    rows = query_rows(
        ch,
        probe,
        f"SELECT hostName() AS host, count() AS n FROM {system_source(ch, 'system.processes')} "
        f"WHERE initial_query_id != initialQueryID() GROUP BY host LIMIT 100{remote_settings(ch)}",
        reads="system.processes",
        purpose="count running queries",
    )
    return {str(r["host"]): int(r["n"]) for r in rows}


def io_counters(ch: ClickHouseSession, probe: str = "concurrency") -> dict[str, Any]:
    """Cumulative disk I/O counters of this server and their average rate since it started."""
    rows = query_rows(
        ch,
        probe,
        "SELECT event, value, uptime() AS uptime_s FROM system.events WHERE event IN {names:Array(String)}",
        {"names": list(IO_EVENTS)},
        reads="system.events",
        purpose="read disk I/O counters",
    )
    uptime = max((int(r["uptime_s"]) for r in rows), default=0)
    counters = {str(r["event"]): int(r["value"]) for r in rows}
    rates = {
        f"{k}_per_s": round(v / uptime, 1) for k, v in counters.items() if uptime and k.endswith("Bytes")
    }
    return {"uptime_s": uptime, "since_start": counters, "average_since_start": rates}


def query_latency(
    ch: ClickHouseSession, users: Sequence[str], window_minutes: int, probe: str = "concurrency"
) -> dict[str, Any]:
    """P95/P99 duration of LangSmith's finished SELECTs over the window, from system.query_log."""
    row = query_rows(
        ch,
        probe,
        "SELECT count() AS queries, quantile(0.95)(query_duration_ms) / 1000 AS p95_s, "
        "quantile(0.99)(query_duration_ms) / 1000 AS p99_s "
        f"FROM {system_source(ch, 'system.query_log')} "
        "WHERE event_date >= toDate(now() - toIntervalMinute({m:UInt32})) "
        "AND event_time >= now() - toIntervalMinute({m:UInt32}) AND type = 'QueryFinish' "
        "AND is_initial_query AND query_kind = 'Select' AND user IN {users:Array(String)} "
        f"AND {NOT_LSREADY}{remote_settings(ch)}",
        {"m": window_minutes, "users": list(users)},
        reads="system.query_log",
        purpose="measure P95 query duration",
    )[0]
    n = int(row["queries"])
    return {
        "window_minutes": window_minutes,
        "queries": n,
        "p95_s": round(float(row["p95_s"]), 3) if n else None,
        "p99_s": round(float(row["p99_s"]), 3) if n else None,
    }


def _max_concurrent(ch: ClickHouseSession) -> int:
    rows = query_rows(
        ch,
        "concurrency",
        "SELECT value FROM system.server_settings WHERE name = 'max_concurrent_queries'",
        reads="system.server_settings",
        purpose="read max_concurrent_queries",
    )
    return int(float(rows[0]["value"])) if rows else 0


def _latency_or_none(ch: ClickHouseSession, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """query_latency, or None when query_log is not enabled (the rest of item 29 still stands)."""
    try:
        return query_latency(ch, params["query_users"], int(params["p95_window_minutes"]))
    except TableAbsent:
        return None


def concurrency(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Running queries per replica and P95 query duration against limits, with I/O and part evidence."""
    ch = clients.clickhouse
    warn_q, fail_q = float(params["warn_queries"]), float(params["fail_queries"])
    p95_warn, p95_fail = float(params["p95_warn_s"]), float(params["p95_fail_s"])
    running = running_queries(ch)
    host, busiest = max(running.items(), key=lambda kv: kv[1], default=("", 0))
    cap = _max_concurrent(ch)
    latency = _latency_or_none(ch, params)
    # Stuck mutations are the triage's merges step's business, not this item's: not read here.
    pp = part_pressure(ch, stuck_after_minutes=None, probe="concurrency")
    observed = {
        "running_queries": running,
        "max_concurrent_queries": cap,
        "latency": latency,
        "io": io_counters(ch),
        "merges_running": pp.merges_running,
        "part_pressure": pp.to_dict()["worst"],
    }
    threshold = {k: params[k] for k in ("warn_queries", "fail_queries", "p95_warn_s", "p95_fail_s")}
    status = Status.FAIL if cap and busiest >= cap else grade_high(busiest, warn_q, fail_q)
    limits = f"warn {warn_q:g}, fail {fail_q:g}" + (f", server cap {cap}" if cap else "")
    summary = f"ClickHouse {host or 'server'} is running {busiest} queries ({limits})"
    if latency is None:
        summary += "; P95 unknown: system.query_log is not enabled"
    elif latency["p95_s"] is None:
        summary += f"; no LangSmith SELECT finished in the last {latency['window_minutes']} min"
    else:
        p95 = latency["p95_s"]
        status = worst(status, grade_high(p95, p95_warn, p95_fail))
        summary += (
            f" and P95 query duration over {latency['window_minutes']} min is {p95:g} s "
            f"(warn {p95_warn:g} s, fail {p95_fail:g} s)"
        )
    # Parts piling up toward the insert limits lead saturation too; say so when they do.
    pp_status, pp_text = grade_part_pressure(pp, float(params["parts_warn_ratio"]))
    if pp_status is not Status.PASS:
        status = worst(status, pp_status)
        summary += f"; {pp_text}"
    return Evidence(status, summary + ".", observed, threshold)


# --- Timeouts: item 59 ---------------------------------------------------------------------------


def timeouts_not_masking(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's queries that hit max_execution_time or were cancelled over the window."""
    ch = clients.clickhouse
    hours, allowed = int(params["window_hours"]), int(params["max_timeouts"])
    where = (
        "WHERE event_date >= toDate(now() - toIntervalHour({h:UInt32})) "
        "AND event_time >= now() - toIntervalHour({h:UInt32}) AND type != 'QueryStart' AND is_initial_query "
        f"AND user IN {{users:Array(String)}} AND {NOT_LSREADY}"
    )
    args = {
        "h": hours,
        "users": list(params["query_users"]),
        "codes": [TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED],
    }
    purpose = "count queries cut by timeouts"
    row = query_rows(
        ch,
        "timeouts_not_masking",
        f"SELECT count() AS finished, countIf(exception_code = {TIMEOUT_EXCEEDED}) AS timeouts, "
        f"countIf(exception_code = {QUERY_WAS_CANCELLED}) AS cancelled, "
        "topKIf(1)(Settings['max_execution_time'], Settings['max_execution_time'] != '') AS max_exec "
        f"FROM {system_source(ch, 'system.query_log')} {where}{remote_settings(ch)}",
        args,
        reads="system.query_log",
        purpose=purpose,
    )[0]
    # LangSmith starts each query with a `-- <query_type>` comment: name the kinds that time out.
    kinds = query_rows(
        ch,
        "timeouts_not_masking",
        r"SELECT extract(query, '^--\\s*(\\S+)') AS kind, count() AS n "
        f"FROM {system_source(ch, 'system.query_log')} {where} AND exception_code IN {{codes:Array(Int32)}} "
        f"GROUP BY kind ORDER BY n DESC LIMIT 3{remote_settings(ch)}",
        args,
        reads="system.query_log",
        purpose=purpose,
    )
    cut = int(row["timeouts"]) + int(row["cancelled"])
    max_exec = row["max_exec"][0] if row["max_exec"] else None
    observed = {
        "window_hours": hours,
        "finished": int(row["finished"]),
        "timeouts": int(row["timeouts"]),
        "cancelled": int(row["cancelled"]),
        "max_execution_time": max_exec,
        "top_kinds": [{"kind": k["kind"] or "(untagged)", "count": int(k["n"])} for k in kinds],
    }
    limit = f"max_execution_time {max_exec} s" if max_exec else "the profile's max_execution_time"
    if cut > allowed:
        shown = ", ".join(f"{k['kind']} ({k['count']})" for k in observed["top_kinds"])
        return Evidence(
            Status.WARN,
            f"{row['timeouts']} LangSmith queries hit {limit} and {row['cancelled']} were cancelled in the "
            f"last {hours} h (allowed {allowed}; top: {shown}): timeouts are cutting slow queries, "
            "look at why they are slow.",
            observed,
            {"max_timeouts": allowed},
        )
    return Evidence(
        Status.PASS,
        f"{cut} of {row['finished']} LangSmith queries timed out or were cancelled in the last {hours} h "
        f"(allowed {allowed}; {limit}).",
        observed,
        {"max_timeouts": allowed},
    )
