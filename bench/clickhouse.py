"""ClickHouse cost on a big table: what lsready's reads of `runs` touch, and how long they take, vs naive.

A LangSmith-shaped `runs` table (runbooks/demo/schema.py: partitioned by day of start_time) gets
7 days of runs, 10 million rows (1 million with --quick), in the embedded engine of this process.
Each query is the product's own: the probe functions run against a ClickHouseSession whose client
records every query. Rows read come from `EXPLAIN ESTIMATE` of the recorded SQL (MergeTree rows
after partition and index pruning) and, as a cross-check, from the server's `SelectedRows` counter
around the query. The naive query gives the same answer without the partition key bound, with
part pruning by automatic column statistics off: the full scan an unbounded query costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.common import Result, median, row, say, temp_dir

CHUNK = 1_000_000
DAYS = 7
SPEEDUP_TARGET = 5.0
FULL_SCAN = "use_statistics_for_part_pruning = 0"

# 11 tenants whose volumes double from one to the next, so the top 5 is unambiguous.
FILL = """
INSERT INTO `{db}`.runs (id, trace_id, tenant_id, session_id, is_root, name, run_type, status,
    start_time, inputs, outputs, extra, inserted_at, trace_first_received_at)
SELECT generateUUIDv4(), generateUUIDv4(),
    toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(toUInt8(log2(1 + h % 1024))), 12, '0'))),
    toUUID(concat('00000000-0000-0001-0000-', leftPad(toString(h % 200), 12, '0'))),
    true, 'chain', 'chain', 'success', st, '{{}}', '{{}}', '{{}}',
    st + toIntervalMillisecond(200 + h % 800), st
FROM (
    SELECT intHash64(number + {start}) AS h,
        now64(6) - toIntervalMicrosecond(h % {span_us}) AS st
    FROM numbers({rows})
)
"""

NAIVE_DELAY = (
    "SELECT count() AS rows, quantiles(0.5, 0.95)(d) AS q FROM (SELECT dateDiff('millisecond', "
    "trace_first_received_at, inserted_at) / 1000 AS d FROM `{db}`.runs WHERE inserted_at >= now() - "
    "toIntervalMinute({minutes}) AND trace_first_received_at IS NOT NULL)"
)
NAIVE_TENANTS = (
    "SELECT toString(tenant_id) AS tenant, count() AS runs FROM `{db}`.runs WHERE inserted_at >= now() - "
    "toIntervalHour({hours}) GROUP BY tenant ORDER BY runs DESC LIMIT {top}"
)
NAIVE_PARTS = (
    "SELECT _partition_id AS partition_id, uniqExact(_part) AS parts FROM `{db}`.runs "
    "GROUP BY partition_id ORDER BY parts DESC LIMIT 1"
)


@dataclass
class Recorded:
    sql: str
    parameters: dict[str, Any] | None
    seconds: float  # through the driver, as the probe waits for it
    engine_s: float  # the engine's own elapsed time for the query (its summary's elapsed_ns)
    selected_rows: int | None  # the server's SelectedRows counter around the query, when counted


class Recorder:
    """Stands in for a clickhouse-connect client: every query is passed on, timed and recorded."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.log: list[Recorded] = []
        self.count_rows = False  # reading the counter costs two queries: only on an accounting run
        first = self._selected()
        self.overhead = self._selected() - first  # SelectedRows a read of system.events itself adds

    def _selected(self) -> int:
        rows = self.client.query("SELECT value FROM system.events WHERE event = 'SelectedRows'").result_rows
        return int(rows[0][0]) if rows else 0

    def query(self, query: str, parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
        before = self._selected() if self.count_rows else 0
        t0 = time.perf_counter()
        result = self.client.query(query, parameters=parameters, **kw)
        took = time.perf_counter() - t0
        selected = max(0, self._selected() - before - self.overhead) if self.count_rows else None
        engine = int((getattr(result, "summary", None) or {}).get("elapsed_ns", 0)) / 1e9
        self.log.append(Recorded(query, parameters, took, engine or took, selected))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def run(self, fn: Callable[[], Any], reps: int) -> tuple[float, float, list[Recorded], Any]:
        """Median wall and engine seconds of `reps` calls after a warm-up; the last call's queries, value."""
        value = fn()
        walls, engine = [], []
        for _ in range(reps):
            self.log.clear()
            t0 = time.perf_counter()
            value = fn()
            walls.append(time.perf_counter() - t0)
            engine.append(sum(q.engine_s for q in self.log))
        return median(walls), median(engine), list(self.log), value

    def account(self, fn: Callable[[], Any]) -> list[Recorded]:
        """One more call with SelectedRows read around each query."""
        self.log.clear()
        self.count_rows = True
        try:
            fn()
        finally:
            self.count_rows = False
        return list(self.log)


@dataclass
class Case:
    """One read of `runs` lsready makes, the naive query for the same answer, and the window it needs."""

    name: str
    run: Callable[[], Any]
    naive: str
    window: timedelta | None  # None: reads no `runs` rows at all (system tables only)
    same: Callable[[Any, list[tuple[Any, ...]]], bool]


def fill(client: Any, db: str, rows: int) -> float:
    """The LangSmith-shaped runs table with `rows` runs over the last 7 days; seconds it took."""
    from runbooks.demo.schema import CLICKHOUSE_TABLES

    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    client.command(CLICKHOUSE_TABLES[0].format(db=db))
    t0 = time.monotonic()
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        client.command(FILL.format(db=db, start=start, rows=count, span_us=DAYS * 86_400_000_000))
        say(f"clickhouse: {start + count:,} of {rows:,} rows inserted")
    # Merges change part counts between a probe and its naive twin; freeze them for the comparison.
    client.command(f"SYSTEM STOP MERGES `{db}`.runs")
    return time.monotonic() - t0


def _estimate(client: Any, sql: str, parameters: dict[str, Any] | None) -> int:
    """MergeTree rows the plan reads after partition and index pruning (EXPLAIN ESTIMATE)."""
    rows = client.query("EXPLAIN ESTIMATE " + sql, parameters=parameters).result_rows
    return sum(int(r[3]) for r in rows)


def _needed(client: Any, db: str, window: timedelta) -> int:
    """Rows in the partitions a window reaches into: the newest days, and no more."""
    sql = (
        "SELECT sum(rows) FROM (SELECT partition_id, sum(rows) AS rows, max(max_time) AS newest "
        "FROM system.parts WHERE database = {db:String} AND table = 'runs' AND active GROUP BY partition_id) "
        "WHERE newest >= now() - toIntervalSecond({s:UInt32})"
    )
    got = client.query(sql, parameters={"db": db, "s": int(window.total_seconds())}).result_rows
    return int(got[0][0] or 0)


def measure(case: Case, session: Any, recorder: Recorder, db: str, total: int, reps: int) -> dict[str, Any]:
    """Time, rows read and answer of the product's read and of its naive twin."""
    probe_wall, probe_engine, probe_log, answer = recorder.run(case.run, reps)
    naive_sql = case.naive.format(db=db) + " SETTINGS " + FULL_SCAN
    naive_wall, naive_engine, _, naive = recorder.run(lambda: session.query("naive", naive_sql), reps)
    on_runs = [q for q in probe_log if "`runs`" in q.sql]
    counted = [q for q in recorder.account(case.run) if "`runs`" in q.sql]
    raw = recorder.client
    out = {
        "probe_wall_s": probe_wall,
        "probe_engine_s": probe_engine,
        "naive_wall_s": naive_wall,
        "naive_engine_s": naive_engine,
        "speedup": naive_engine / probe_engine if probe_engine else None,
        "queries": len(probe_log),
        "queries_on_runs": len(on_runs),
        "rows_read": sum(_estimate(raw, q.sql, q.parameters) for q in on_runs),
        "selected_rows": sum(q.selected_rows or 0 for q in counted),
        "naive_rows_read": _estimate(raw, naive_sql, None),
        "naive_rows_with_statistics": _estimate(raw, case.naive.format(db=db), None),
        "needed_rows": _needed(raw, db, case.window) if case.window else 0,
        "total_rows": total,
        "same_answer": case.same(answer, [tuple(r.values()) for r in naive]),
        "probe_queries_engine_ms": {
            q.sql.split("FROM", 1)[-1][:70]: round(q.engine_s * 1000, 2) for q in probe_log
        },
    }
    out["fraction_read"] = out["rows_read"] / total
    return out


def _cases(clients: Any, session: Any, db: str) -> list[Case]:
    from checks.engine import catalog_for
    from checks.probes.clickhouse import ingestion_delay, part_pressure, tenant_volume
    from runbooks.measure import PROBE_TAG
    from runbooks.triage import get_runbook, resolve_thresholds

    config = _config(session)
    p = resolve_thresholds(get_runbook("trace-visibility"), catalog_for(config))
    volume = catalog_for(config).get("ops.tenant_limits").thresholds
    window, cap = int(p["delay_window_minutes"]), int(p["delay_max_rows"])
    return [
        Case(
            "ingestion_delay",
            lambda: ingestion_delay(session, window, max_rows=cap, probe=PROBE_TAG),
            NAIVE_DELAY.replace("{minutes}", str(window)),
            timedelta(minutes=window + 60),  # the probe's lookback: the window plus 60 min of slack
            lambda d, naive: abs(d["rows"] - naive[0][0]) <= max(50, d["rows"] // 100),
        ),
        Case(
            "tenant_volume",
            lambda: tenant_volume(clients, volume),
            NAIVE_TENANTS.replace("{hours}", str(volume["window_hours"])).replace(
                "{top}", str(volume["top"])
            ),
            timedelta(hours=int(volume["window_hours"])),
            lambda ev, naive: [t["tenant_id"] for t in ev.observed["top_tenants"]] == [r[0] for r in naive],
        ),
        Case(
            "part_pressure",
            lambda: part_pressure(session, probe=PROBE_TAG),
            NAIVE_PARTS,
            None,
            lambda pp, naive: next(t.parts for t in pp.tables if t.table == "runs") == naive[0][1],
        ),
    ]


def _config(session: Any) -> Any:
    from checks.config import validate

    return validate({"targets": {"bench": {"clickhouse": {"url": session.cfg.url}}}}, "bench")


def _rows_for(name: str, m: dict[str, Any]) -> list[Any]:
    rows = [
        row("clickhouse", f"{name}: engine time", m["probe_engine_s"] * 1000, "ms",
            note=f"{m['queries']} queries; {m['probe_wall_s'] * 1000:.1f} ms through the embedded driver"),
        row("clickhouse", f"{name}: naive full scan engine time", m["naive_engine_s"] * 1000, "ms",
            note=f"{m['naive_wall_s'] * 1000:.1f} ms through the embedded driver"),
        row("clickhouse", f"{name}: speedup vs naive", m["speedup"], "x", ">=", SPEEDUP_TARGET,
            "same answer" if m["same_answer"] else "ANSWERS DIFFER"),
    ]  # fmt: skip
    if m["queries_on_runs"]:
        share = f"{m['fraction_read']:.1%} of {m['total_rows']:,}; SelectedRows {m['selected_rows']:,}"
        rows.insert(0, row("clickhouse", f"{name}: runs rows read", m["rows_read"], "rows", "<=",
                           m["needed_rows"], share))  # fmt: skip
    return rows


def big_table_cost(quick: bool) -> Result:
    """Fill the table, then measure each read lsready makes of it against its naive twin."""
    from checks.clients import Clients
    from checks.config import TargetConfig
    from runbooks.demo.engines import chdb_url

    total, reps, db = (1_000_000 if quick else 10_000_000), (3 if quick else 5), "langsmith"
    with temp_dir() as tmp:
        url = chdb_url(tmp / "ch", db)
        target = TargetConfig.model_validate({"clickhouse": {"url": url}})
        clients = Clients("bench", target, timeout_s=5.0)  # production's default probe timeout
        session = clients.clickhouse
        recorder = Recorder(session.client)
        session.client = recorder
        seconds = fill(recorder.client, db, total)
        say(f"clickhouse: {total:,} rows in {seconds:.1f} s; measuring")
        measured = {
            c.name: measure(c, session, recorder, db, total, reps) for c in _cases(clients, session, db)
        }
        partitions = recorder.client.query(
            "SELECT partition, count() AS parts, sum(rows) AS rows FROM system.parts WHERE database = "
            "{db:String} AND table = 'runs' AND active GROUP BY partition ORDER BY partition",
            parameters={"db": db},
        ).result_rows
    rows = [row("clickhouse", "runs table rows", total, "rows", note=f"{len(partitions)} partitions")]
    for name, m in measured.items():
        rows += _rows_for(name, m)
    return Result(
        rows=rows,
        details={
            "fill_s": round(seconds, 1),
            "partitions": [{"partition": p, "parts": int(n), "rows": int(r)} for p, n, r in partitions],
            "reads": {
                n: {k: round(v, 5) if isinstance(v, float) else v for k, v in m.items()}
                for n, m in measured.items()
            },
        },
    )
