"""LangSmith's runs table: its time key, bounded reads, tenant volume (item 56) and ingestion delay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from checks.clients import Clients
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes.clickhouse.query import TableAbsent, error_code, query_rows, quote_ident, table_ref
from checks.probes.common import grade_high
from checks.sessions import ClickHouseSession

# --- Runs table: time key, tenant volume (item 56) and ingestion delay ---------------------------
#
# `runs` is big (a day of runs can be billions) and its sort key is LangSmith's, discovered at run
# time. `max_rows_to_read` with read_overflow_mode = 'break' would stop after N rows *read*, in no
# guaranteed order, so a time filter inside a day's partition can spend the whole budget on older
# rows and return nothing, silently. Instead, one query first picks, from system.parts on the same
# server, the active parts of runs that can hold the rows asked for, smallest first (fresh inserts
# come before big merged parts), as many as fit the row limit, and reads only those
# (`_part IN (...)` prunes parts before anything is read). The query returns how many of the
# candidate parts it read, so a result is either complete or says it is a sample. The limit is
# also enforced with read_overflow_mode = 'throw': a server that did not prune answers
# TOO_MANY_ROWS, which becomes a "read limit hit" reason, never an empty answer.

TOO_MANY_ROWS = 158
# Rows of system.parts the part choice itself reads, allowed on top of the runs rows.
PARTS_READ_HEADROOM = 100_000
# A part holding a run inserted at T was written at or after T; this allows for clock skew.
WRITE_SKEW_MINUTES = 5


class ReadLimitHit(LsreadyError):
    """A bounded read of runs would pass its row limit; the message says how to narrow it."""


@dataclass(frozen=True)
class PartsRead:
    """Which candidate parts of runs a bounded read covered: all of them (complete) or a sample."""

    parts_read: int
    parts_total: int
    rows_in_parts_read: int  # the most ClickHouse read from runs
    rows_in_parts_total: int
    max_rows: int

    @property
    def complete(self) -> bool:
        return self.parts_read == self.parts_total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartsRead:
        return cls(**{f: int(data[f]) for f in cls.__dataclass_fields__})

    def describe(self) -> str:
        """'the 3 smallest of 40 parts, 12000 of 9800000 rows, as the read is limited to 5000000 rows'."""
        return (
            f"the {self.parts_read} smallest of {self.parts_total} parts, {self.rows_in_parts_read} of "
            f"{self.rows_in_parts_total} rows, as the read is limited to {self.max_rows} rows"
        )


def _runs_columns(ch: ClickHouseSession, probe: str) -> list[dict[str, Any]]:
    """The runs table's columns; fails unless it is a MergeTree table, since the bounded reads pick
    its parts (one round trip: the engine comes beside each column)."""
    rows = query_rows(
        ch,
        probe,
        "SELECT name, type, is_in_partition_key, is_in_sorting_key, (SELECT engine FROM system.tables "
        "WHERE database = {db:String} AND name = 'runs' LIMIT 1) AS engine FROM system.columns "
        "WHERE database = {db:String} AND table = 'runs' ORDER BY position LIMIT 500",
        {"db": ch.database},
        reads="system.columns",
        purpose="find the runs table's columns",
    )
    if not rows:
        raise TableAbsent(
            f"{ch.database}.runs does not exist (or is not visible to this user); run the "
            "backend-ch-migrations job or grant SHOW COLUMNS on it"
        )
    engine = str(rows[0]["engine"] or "")
    if "MergeTree" not in engine:
        raise LsreadyError(
            f"{ch.database}.runs is a {engine or 'missing'} table, not a MergeTree one; lsready bounds its "
            "reads of runs by MergeTree parts and will not scan it unbounded"
        )
    return rows


def runs_time_key(columns: Sequence[Mapping[str, Any]]) -> str:
    """The DateTime column of runs' partition key (else its sort key), so a time filter prunes reads."""
    timed = [c for c in columns if "DateTime" in str(c["type"])]
    for flag in ("is_in_partition_key", "is_in_sorting_key"):
        for col in timed:
            if col[flag]:
                return str(col["name"])
    raise LsreadyError(
        "the runs table has no DateTime column in its partition or sort key; refusing to scan it unbounded"
    )


def _bounded_runs_read(
    ch: ClickHouseSession,
    probe: str,
    *,
    select: str,
    where: str,
    params: Mapping[str, Any],
    max_rows: int,
    started_minutes: int,
    written_minutes: int | None = None,
    group: tuple[str, str] | None = None,
    narrow: str,
    purpose: str,
) -> tuple[dict[str, Any], PartsRead]:
    """One aggregate row over the chosen parts of runs, and which parts those were.

    Candidate parts hold runs that started in the last `started_minutes` (by the partition key's
    min/max time in system.parts; every part counts when the partition key has no time) and, with
    `written_minutes`, were written in that time. `select` aggregates the rows of runs matching
    `where`; with `group` = (columns, key), it aggregates the rows of `SELECT columns ... GROUP BY
    key` instead.
    """
    written = (
        f"AND modification_time >= now() - toIntervalMinute({int(written_minutes) + WRITE_SKEW_MINUTES}) "
        if written_minutes is not None
        else ""
    )
    since = f"now() - toIntervalMinute({int(started_minutes)})"
    plan = (
        "WITH (SELECT groupArray((name, rows, upto)) FROM (SELECT name, rows, sum(rows) OVER (ORDER BY rows, "
        "modification_time DESC, name ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto "
        "FROM system.parts WHERE database = {db:String} AND table = 'runs' AND active "
        f"{written}AND (max_time >= {since} OR max_date >= toDate({since}) "
        "OR (toUnixTimestamp(max_time) = 0 AND max_date = toDate(0))))) AS plan, "
        f"arrayFilter(p -> p.3 <= {int(max_rows)}, plan) AS picked, "
        "arrayMap(p -> p.1, picked) AS chosen "
    )
    parts = (
        "length(plan) AS parts_total, length(picked) AS parts_read, "
        "arraySum(p -> p.2, plan) AS part_rows_total, arraySum(p -> p.2, picked) AS part_rows_read"
    )
    # IN (SELECT ...), not has(chosen, _part): both prune parts, but has() is then evaluated per row.
    runs = f"{table_ref(ch, 'runs')} WHERE _part IN (SELECT arrayJoin(chosen)) AND {where}"
    source = f"(SELECT {group[0]} FROM {runs} GROUP BY {group[1]})" if group else runs
    sql = (
        f"{plan}SELECT {select}, {parts} FROM {source} "
        f"SETTINGS max_rows_to_read = {int(max_rows) + PARTS_READ_HEADROOM}, read_overflow_mode = 'throw'"
    )
    try:
        row = query_rows(
            ch, probe, sql, {"db": ch.database, **params}, reads=f"{ch.database}.runs", purpose=purpose
        )[0]
    except Exception as exc:
        if error_code(exc) == TOO_MANY_ROWS:
            raise ReadLimitHit(
                f"reading {ch.database}.runs would pass the read limit of {max_rows} rows (this server did "
                f"not prune its parts), so nothing was measured; {narrow}"
            ) from exc
        raise
    read = PartsRead(
        int(row.pop("parts_read")),
        int(row.pop("parts_total")),
        int(row.pop("part_rows_read")),
        int(row.pop("part_rows_total")),
        int(max_rows),
    )
    if read.parts_read == 0 and read.parts_total:
        raise ReadLimitHit(
            f"every part of {ch.database}.runs that can hold the runs asked for is larger than the read "
            f"limit of {max_rows} rows ({read.parts_total} parts, {read.rows_in_parts_total} rows), so "
            f"nothing was read; {narrow}"
        )
    return row, read


def tenant_volume(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Evidence for a person: the workspaces (tenants) with the most runs over the window."""
    ch = clients.clickhouse
    hours, top, cap = int(params["window_hours"]), int(params["top"]), int(params["max_rows"])
    key = runs_time_key(_runs_columns(ch, "tenant_volume"))
    row, read = _bounded_runs_read(
        ch,
        "tenant_volume",
        select="arraySlice(arraySort(t -> -t.2, groupArray((tenant, runs))), 1, {top:UInt32}) AS ranked, "
        "sum(runs) AS total",
        group=("toString(tenant_id) AS tenant, count() AS runs", "tenant"),
        where=f"{quote_ident(key)} >= now() - toIntervalHour({{h:UInt32}})",
        params={"h": hours, "top": top},
        max_rows=cap,
        started_minutes=hours * 60,
        narrow="lower window_hours or raise max_rows for clickhouse.tenant_volume",
        purpose="rank tenants by volume",
    )
    tenants = [{"tenant_id": str(t), "runs": int(n)} for t, n in row["ranked"]]
    counted = int(row["total"])
    observed = {
        "window_hours": hours,
        "time_column": key,
        "top_tenants": tenants,
        "runs_counted": counted,
        "sampled": not read.complete,
        "parts": read.to_dict(),
    }
    table = f"{ch.database}.runs"
    if not tenants and read.complete:
        text = f"No runs in {table} over the last {hours} h; nothing to limit yet"
    elif not tenants:
        text = (
            f"No runs seen in the sample of {table} read for the last {hours} h ({read.describe()}); "
            "the ranking is unknown"
        )
    else:
        shown = ", ".join(f"{t['tenant_id']} ({t['runs']})" for t in tenants)
        where = table
        if not read.complete:
            where = (
                f"a sample of {table} ({counted} runs in {read.describe()}: the freshest inserts, not the "
                "whole window)"
            )
        text = f"Top {len(tenants)} tenants by runs over the last {hours} h in {where}: {shown}"
    return Evidence(
        Status.MANUAL,
        text + "; confirm usage limits exist (or are planned) for the high-volume ones.",
        observed,
    )


def ingestion_delay(
    ch: ClickHouseSession,
    window_minutes: int,
    *,
    max_rows: int,
    slack_minutes: int = 360,
    probe: str = "ingestion_delay",
) -> dict[str, Any]:
    """P50/P95/max seconds from receipt to insert for runs inserted in the last `window_minutes`.

    Uses `received_at` when runs has it, else `trace_first_received_at` (LangSmith's column). Only
    parts written in the window (plus clock skew) can hold those runs, whatever the sort key, so
    the read covers those parts, smallest first, up to `max_rows` rows. Parts whose runs all started
    more than `slack_minutes` before the window are skipped (6 h: REDIS_RUNS_EXPIRY_SECONDS drops
    queued runs older than that). `complete` is False when some of those parts were left unread;
    the quantiles then describe the parts read (the freshest inserts), not every run.
    """
    columns = _runs_columns(ch, probe)
    names = {str(c["name"]) for c in columns}
    received = "received_at" if "received_at" in names else "trace_first_received_at"
    if received not in names or "inserted_at" not in names:
        raise LsreadyError(
            f"{ch.database}.runs has neither received_at nor trace_first_received_at beside inserted_at; "
            "cannot measure ingestion delay"
        )
    delay = f"dateDiff('millisecond', {quote_ident(received)}, inserted_at) / 1000"
    row, read = _bounded_runs_read(
        ch,
        probe,
        select=f"count() AS rows, quantiles(0.5, 0.95)({delay}) AS q, max({delay}) AS max_s",
        where=(
            f"inserted_at >= now() - toIntervalMinute({{w:UInt32}}) AND {quote_ident(received)} IS NOT NULL"
        ),
        params={"w": window_minutes},
        max_rows=max_rows,
        started_minutes=window_minutes + slack_minutes,
        written_minutes=window_minutes,
        narrow="shorten the window or raise the row limit (delay_window_minutes, delay_max_rows)",
        purpose="measure ingestion delay",
    )
    n = int(row["rows"])
    q = row["q"] if n else [None, None]
    return {
        "table": f"{ch.database}.runs",
        "source": f"inserted_at - {received}",
        "window_minutes": window_minutes,
        "rows": n,
        "complete": read.complete,
        "sampled": not read.complete,
        "parts": read.to_dict(),
        "p50_s": round(float(q[0]), 3) if q[0] is not None else None,
        "p95_s": round(float(q[1]), 3) if q[1] is not None else None,
        "max_s": round(float(row["max_s"]), 3) if n else None,
    }


def grade_ingestion_delay(
    d: Mapping[str, Any], warn_s: float, fail_s: float, *, none_inserted: Status = Status.WARN
) -> tuple[Status, str]:
    """Grade an `ingestion_delay` reading; the checklist probe and the triage step both say it so.

    No runs in a complete read is `none_inserted` (the checklist warns; triage, which must not read
    it as a low or a high delay, passes UNKNOWN). No runs in a partial read proves nothing: UNKNOWN.
    """
    table, window = d["table"], d["window_minutes"]
    sample = PartsRead.from_dict(d["parts"])
    if d["p95_s"] is None and sample.complete:
        return none_inserted, (
            f"No runs were inserted into {table} in the last {window} min (every part written in that "
            "time was read), so the ingestion delay cannot be measured; if traces are being sent, they "
            "are not reaching ClickHouse."
        )
    if d["p95_s"] is None:
        return Status.UNKNOWN, (
            f"No runs seen in the part of {table} read for the last {window} min ({sample.describe()}), "
            "so the ingestion delay was not measured; the read is limited, this does not mean no runs "
            "arrived: shorten the window or raise the row limit."
        )
    text = (
        f"Ingestion delay ({d['source']}) of {d['rows']} runs inserted into {table} over the last "
        f"{window} min: p50 {d['p50_s']:g} s, p95 {d['p95_s']:g} s, max {d['max_s']:g} s "
        f"(warn {warn_s:g} s, fail {fail_s:g} s)"
    )
    if not sample.complete:
        text += f"; a sample of the freshest inserts: {sample.describe()}"
    return grade_high(d["p95_s"], warn_s, fail_s), text + "."
