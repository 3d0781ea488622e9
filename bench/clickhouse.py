"""ClickHouse cost on a big table: what lsready's reads of `runs` touch, and how long they take, vs naive.

A LangSmith-shaped `runs` table (runbooks/demo/schema.py: partitioned by day of start_time) gets
7 days of runs, 30 million rows (1 million with --quick), in the embedded engine of this process,
inserted a time slice at a time, each part then dated to when it would last have been written.
Each query is the product's own: the probe functions run against a ClickHouseSession whose client
records every query. Rows read come from `EXPLAIN ESTIMATE` of the recorded SQL (MergeTree rows
after partition and index pruning) and, as a cross-check, from the server's `SelectedRows` counter
around the query. The naive query gives the same answer without the partition key bound, with
part pruning by automatic column statistics off: the full scan an unbounded query costs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Result, median, row, say, temp_dir

ROWS = 30_000_000  # a week of a busy deployment; a triage read's cost must not grow with the table
CHUNK = 1_000_000
DAYS = 7
SPEEDUP_TARGET = 5.0
FULL_SCAN = "use_statistics_for_part_pruning = 0"

# 11 tenants whose volumes double from one to the next, so the top 5 is unambiguous. The runs of one
# slice start in the {span_us} microseconds up to {newest_us} before {now_us} (the fill's start).
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
        fromUnixTimestamp64Micro(toInt64({now_us} - {newest_us} - h % {span_us}), 'UTC') AS st
    FROM numbers({rows})
)
"""


@dataclass(frozen=True)
class Slice:
    """Runs that started between `oldest` and `newest` ago, in parts last written `written` ago."""

    newest: timedelta
    oldest: timedelta
    written: timedelta


# Today's partition as continuous inserts and merges leave it: fresh insert parts, then ever larger
# merged parts, each last rewritten some time after its newest run (newest ago, oldest ago, written ago).
TODAY = (
    (timedelta(0), timedelta(minutes=20), timedelta(0)),
    (timedelta(minutes=20), timedelta(hours=1), timedelta(minutes=15)),
    (timedelta(hours=1), timedelta(hours=3), timedelta(minutes=50)),
    (timedelta(hours=3), timedelta(hours=9), timedelta(hours=2, minutes=30)),
    (timedelta(hours=9), timedelta(days=1), timedelta(hours=8)),
)
MERGED_AFTER_DAY = timedelta(minutes=30)  # an earlier day's parts: last merged soon after the day ended


def slices(now: datetime, days: int = DAYS) -> list[Slice]:
    """`days` of runs up to `now` in the parts a LangSmith table written over those days would have.

    Each earlier day is one slice written shortly after the day ended; today is split as `TODAY`
    (cut at midnight UTC). A fresh fill writes every part at once, which no real table has: the
    probes choose parts by when they were written, so the bench gives each part this time.
    """
    span = timedelta(days=days)
    today = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = [Slice(n, min(o, today), w) for n, o, w in TODAY if n < today]
    start = today
    while start < span:
        end = min(start + timedelta(days=1), span)
        out.append(Slice(start, end, max(start - MERGED_AFTER_DAY, timedelta(0))))
        start = end
    return out


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
    triage: bool = True  # a read triage makes (held to the speedup target), else a checklist probe's


def _part_paths(client: Any, db: str) -> dict[str, str]:
    rows = client.query(
        "SELECT name, path FROM system.parts WHERE database = {db:String} AND table = 'runs' AND active",
        parameters={"db": db},
    ).result_rows
    return {str(n): str(p) for n, p in rows}


def _us(t: timedelta) -> int:
    return int(t.total_seconds() * 1_000_000)


def fill(client: Any, db: str, rows: int) -> tuple[float, dict[str, datetime]]:
    """The LangSmith-shaped runs table with `rows` runs over the last 7 days, inserted slice by slice
    (oldest first) with merges stopped; seconds it took, and when each part was written (modelled)."""
    from runbooks.demo.schema import CLICKHOUSE_TABLES

    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    client.command(CLICKHOUSE_TABLES[0].format(db=db))
    client.command(f"SYSTEM STOP MERGES `{db}`.runs")  # each part keeps to its slice
    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1_000_000)
    plan = slices(now)
    total = sum(_us(s.oldest - s.newest) for s in plan)
    written: dict[str, datetime] = {}
    t0, done, start = time.monotonic(), 0, 0
    for piece in reversed(plan):
        n = round(rows * _us(piece.oldest - piece.newest) / total) if piece is not plan[0] else rows - done
        for offset in range(0, n, CHUNK):
            count = min(CHUNK, n - offset)
            client.command(
                FILL.format(
                    db=db, start=start, rows=count, now_us=now_us,
                    newest_us=_us(piece.newest), span_us=_us(piece.oldest - piece.newest),
                )
            )  # fmt: skip
            start += count
        done += n
        for part in _part_paths(client, db).keys() - written.keys():
            written[part] = now - piece.written
        say(f"clickhouse: {done:,} of {rows:,} rows inserted")
    return time.monotonic() - t0, written


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def date_parts(client: Any, db: str, when: dict[str, datetime]) -> None:
    """Give parts the time they were last written (the mtime the server reads on attach)."""
    for part, path in _part_paths(client, db).items():
        if part in when:
            stamp = when[part].timestamp()
            os.utime(path, (stamp, stamp))
    client.command(f"DETACH TABLE `{db}`.runs")
    client.command(f"ATTACH TABLE `{db}`.runs")
    client.command(f"SYSTEM STOP MERGES `{db}`.runs")  # a re-attached table merges again
    got = client.query(
        "SELECT name, modification_time FROM system.parts WHERE database = {db:String} AND table = 'runs' "
        "AND active",
        parameters={"db": db},
    ).result_rows
    off = [n for n, t in got if n in when and abs(_utc(t) - when[n]) > timedelta(seconds=2)]
    if off or len(got) != len(when):
        raise RuntimeError(f"the server did not take the parts' modelled write times: {off or len(got)}")


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
    from checks.probes.clickhouse.reads import ingestion_delay, part_pressure, tenant_volume
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
            triage=False,  # ops.tenant_limits, a checklist item: its 24 h window needs two day-partitions
        ),
        Case(
            "part_pressure",
            lambda: part_pressure(
                session, stuck_after_minutes=float(p["stuck_mutation_minutes"]), probe=PROBE_TAG
            ),
            NAIVE_PARTS,
            None,
            lambda pp, naive: next(t.parts for t in pp.tables if t.table == "runs") == naive[0][1],
        ),
    ]


def _config(session: Any) -> Any:
    from checks.config import validate

    return validate({"targets": {"bench": {"clickhouse": {"url": session.cfg.url}}}}, "bench")


def _rows_for(name: str, m: dict[str, Any], triage: bool = True) -> list[Any]:
    same = "same answer" if m["same_answer"] else "ANSWERS DIFFER"
    figure = f"{name}: speedup vs naive"
    if not triage:
        speedup = row("clickhouse", figure, m["speedup"], "x", note=same + "; checklist probe")
    elif m["total_rows"] < ROWS:
        # A full scan of a small table costs milliseconds: the ratio says nothing there.
        speedup = row("clickhouse", figure, m["speedup"], "x", note=f"{same}; held to >= {SPEEDUP_TARGET:g} "
                      f"at {ROWS:,} rows, not at {m['total_rows']:,}")  # fmt: skip
    else:
        speedup = row("clickhouse", figure, m["speedup"], "x", ">=", SPEEDUP_TARGET, same)
    rows = [
        row("clickhouse", f"{name}: engine time", m["probe_engine_s"] * 1000, "ms",
            note=f"{m['queries']} queries; {m['probe_wall_s'] * 1000:.1f} ms through the embedded driver"),
        row("clickhouse", f"{name}: naive full scan engine time", m["naive_engine_s"] * 1000, "ms",
            note=f"{m['naive_wall_s'] * 1000:.1f} ms through the embedded driver"),
        speedup,
    ]  # fmt: skip
    if m["queries_on_runs"]:
        share = f"{m['fraction_read']:.1%} of {m['total_rows']:,}; SelectedRows {m['selected_rows']:,}"
        rows.insert(0, row("clickhouse", f"{name}: runs rows read", m["rows_read"], "rows", "<=",
                           m["needed_rows"], share))  # fmt: skip
    return rows


def _rewritten_rows(m: dict[str, Any]) -> list[Any]:
    """Context: the same read just after every part of today's partition was rewritten."""
    name = "ingestion_delay, today's partition just rewritten"
    return [
        row("clickhouse", f"{name}: runs rows read", m["rows_read"], "rows", "<=", m["needed_rows"],
            f"{m['fraction_read']:.1%} of {m['total_rows']:,}"),
        row("clickhouse", f"{name}: speedup vs naive", m["speedup"], "x",
            note=f"{m['probe_engine_s'] * 1000:.1f} vs {m['naive_engine_s'] * 1000:.1f} ms; the worst case: "
            "a merge, OPTIMIZE or restore rewrote the whole day in the last minutes"),
    ]  # fmt: skip


def _rounded(m: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in m.items()}


def big_table_cost(quick: bool) -> Result:
    """Fill the table, then measure each read lsready makes of it against its naive twin."""
    from checks.clients import Clients
    from checks.config import TargetConfig
    from runbooks.demo.session import DemoSession

    total, reps, db = (1_000_000 if quick else ROWS), (3 if quick else 5), "langsmith"
    with temp_dir() as tmp, DemoSession(tmp, database=db) as demo:
        url = demo.database_url(db)  # ClickHouse only: chdb in this process
        target = TargetConfig.model_validate({"clickhouse": {"url": url}})
        clients = Clients("bench", target, timeout_s=5.0)  # production's default probe timeout
        session = clients.clickhouse
        recorder = Recorder(session.client)
        session.client = recorder
        seconds, written = fill(recorder.client, db, total)
        date_parts(recorder.client, db, written)
        say(f"clickhouse: {total:,} rows in {seconds:.1f} s; measuring")
        cases = _cases(clients, session, db)
        measured = {c.name: measure(c, session, recorder, db, total, reps) for c in cases}
        parts = recorder.client.query(
            "SELECT partition, name, rows, modification_time FROM system.parts WHERE database = "
            "{db:String} AND table = 'runs' AND active ORDER BY name",
            parameters={"db": db},
        ).result_rows
        today = datetime.now(UTC).strftime("%Y%m%d")
        now = datetime.now(UTC)
        date_parts(recorder.client, db, {p: now if p[:8] == today else t for p, t in written.items()})
        say("clickhouse: today's partition rewritten; measuring ingestion_delay again")
        rewritten = measure(cases[0], session, recorder, db, total, reps)
    partitions: dict[str, list[int]] = {}
    for partition, _, n, _ in parts:
        partitions.setdefault(partition, [0, 0])
        partitions[partition][0] += 1
        partitions[partition][1] += int(n)
    rows = [row("clickhouse", "runs table rows", total, "rows", note=f"{len(partitions)} partitions")]
    for case in cases:
        rows += _rows_for(case.name, measured[case.name], case.triage)
    rows += _rewritten_rows(rewritten)
    return Result(
        rows=rows,
        details={
            "fill_s": round(seconds, 1),
            "partitions": [{"partition": p, "parts": n, "rows": r} for p, (n, r) in partitions.items()],
            "parts": [{"name": n, "rows": int(r), "written": str(t)} for _, n, r, t in parts],
            "reads": {n: _rounded(m) for n, m in measured.items()},
            "reads_after_rewrite": {"ingestion_delay": _rounded(rewritten)},
        },
    )
