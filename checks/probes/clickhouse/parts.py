"""ClickHouse part pressure: parts against insert limits, merges and stuck mutations (items 29, 54)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from checks.model import Status
from checks.probes.clickhouse.query import merge_tree_tables, query_rows, remote_settings, system_source
from checks.probes.common import grade_high, worst
from checks.sessions import ClickHouseSession

# --- Part pressure: reused by the runbooks, evidence for items 29 and 54 -------------------------


@dataclass(frozen=True)
class TableParts:
    """The busiest partition of one table: active parts against the effective insert limits."""

    table: str
    partition: str
    parts: int
    delay_at: int  # parts_to_delay_insert in effect for this table
    throw_at: int  # parts_to_throw_insert in effect for this table
    host: str = ""

    @property
    def ratio(self) -> float:
        """Parts as a share of parts_to_delay_insert: 1.0 means inserts are being slowed."""
        return self.parts / self.delay_at if self.delay_at else 0.0


@dataclass(frozen=True)
class StuckMutation:
    table: str
    mutation_id: str
    command: str
    age_s: int
    parts_to_do: int
    latest_fail_reason: str
    host: str = ""


@dataclass(frozen=True)
class PartPressure:
    """Part counts, merges and stuck mutations of the LangSmith database."""

    database: str
    tables: tuple[TableParts, ...]  # busiest partition of each table, busiest first
    merges_running: int
    stuck_mutations: tuple[StuckMutation, ...]
    default_delay_at: int
    default_throw_at: int

    @property
    def worst(self) -> TableParts | None:
        return max(self.tables, key=lambda t: t.ratio, default=None)

    def to_dict(self) -> dict[str, Any]:
        worst_table = self.worst
        return {
            "database": self.database,
            "worst": asdict(worst_table) if worst_table else None,
            "tables": [asdict(t) for t in self.tables[:20]],
            "merges_running": self.merges_running,
            "stuck_mutations": [asdict(m) for m in self.stuck_mutations[:10]],
            "parts_to_delay_insert_default": self.default_delay_at,
            "parts_to_throw_insert_default": self.default_throw_at,
        }


# ClickHouse's own defaults, used only if system.merge_tree_settings does not list the settings.
SERVER_DEFAULT_DELAY_AT, SERVER_DEFAULT_THROW_AT = 1000, 3000
_TABLE_SETTING = re.compile(r"\b(parts_to_delay_insert|parts_to_throw_insert)\s*=\s*(\d+)")


def table_part_limits(engine_full: str, delay_default: int, throw_default: int) -> tuple[int, int]:
    """(delay, throw) in effect: a table's SETTINGS clause overrides the server's merge_tree defaults."""
    found = {k: int(v) for k, v in _TABLE_SETTING.findall(engine_full)}
    delay = found.get("parts_to_delay_insert", delay_default)
    return delay, found.get("parts_to_throw_insert", throw_default)


def part_pressure(
    ch: ClickHouseSession,
    *,
    stuck_after_minutes: float | None,
    probe: str = "part_pressure",
) -> PartPressure:
    """Busiest partition per LangSmith table vs its insert limits, merges running, and (when
    `stuck_after_minutes` is given) mutations unfinished after that long."""
    defaults = {
        str(r["name"]): int(r["value"])
        for r in query_rows(
            ch,
            probe,
            "SELECT name, value FROM system.merge_tree_settings "
            "WHERE name IN ('parts_to_delay_insert', 'parts_to_throw_insert')",
            reads="system.merge_tree_settings",
            purpose="read the insert limits",
        )
    }
    delay_default = defaults.get("parts_to_delay_insert", SERVER_DEFAULT_DELAY_AT)
    throw_default = defaults.get("parts_to_throw_insert", SERVER_DEFAULT_THROW_AT)
    limits = {
        str(r["name"]): table_part_limits(str(r["engine_full"]), delay_default, throw_default)
        for r in merge_tree_tables(ch, probe, "read per-table insert limits")
    }
    busiest = query_rows(
        ch,
        probe,
        "SELECT hostName() AS host, table, any(partition) AS partition, count() AS parts "
        f"FROM {system_source(ch, 'system.parts')} WHERE database = {{db:String}} AND active "
        "GROUP BY host, table, partition_id ORDER BY parts DESC LIMIT 1 BY table LIMIT 1000"
        f"{remote_settings(ch)}",
        {"db": ch.database},
        reads="system.parts",
        purpose="count active parts",
    )
    tables = tuple(
        TableParts(
            table=str(r["table"]),
            partition=str(r["partition"]),
            parts=int(r["parts"]),
            delay_at=limits.get(str(r["table"]), (delay_default, throw_default))[0],
            throw_at=limits.get(str(r["table"]), (delay_default, throw_default))[1],
            host=str(r["host"]),
        )
        for r in busiest
    )
    merges = query_rows(
        ch,
        probe,
        f"SELECT count() AS n FROM {system_source(ch, 'system.merges')} WHERE database = {{db:String}}"
        f"{remote_settings(ch)}",
        {"db": ch.database},
        reads="system.merges",
        purpose="count running merges",
    )[0]["n"]
    stuck = tuple(
        StuckMutation(
            table=str(r["table"]),
            mutation_id=str(r["mutation_id"]),
            command=str(r["command"])[:200],
            age_s=int(r["age_s"]),
            parts_to_do=int(r["parts_to_do"]),
            latest_fail_reason=str(r["latest_fail_reason"])[:300],
            host=str(r["host"]),
        )
        for r in (
            query_rows(
                ch,
                probe,
                "SELECT hostName() AS host, table, mutation_id, command, parts_to_do, latest_fail_reason, "
                "toUInt64(greatest(0, dateDiff('second', create_time, now()))) AS age_s "
                f"FROM {system_source(ch, 'system.mutations')} "
                "WHERE database = {db:String} AND is_done = 0 "
                "AND create_time <= now() - toIntervalSecond({age:UInt32}) ORDER BY create_time LIMIT 20"
                f"{remote_settings(ch)}",
                {"db": ch.database, "age": int(stuck_after_minutes * 60)},
                reads="system.mutations",
                purpose="find stuck mutations",
            )
            if stuck_after_minutes is not None
            else []
        )
    )
    return PartPressure(
        database=ch.database,
        tables=tuple(sorted(tables, key=lambda t: t.ratio, reverse=True)),
        merges_running=int(merges),
        stuck_mutations=stuck,
        default_delay_at=delay_default,
        default_throw_at=throw_default,
    )


def grade_part_pressure(
    pp: PartPressure, warn_ratio: float, stuck_minutes: float | None = None
) -> tuple[Status, str]:
    """A status and one sentence: at parts_to_delay_insert inserts slow down, at throw they fail."""
    top = pp.worst
    if top is None:
        status, text = Status.PASS, f"ClickHouse database '{pp.database}' has no active parts yet"
    else:
        on_host = f" on {top.host}" if top.host else ""
        where = f"{pp.database}.{top.table} partition {top.partition}{on_host}"
        text = (
            f"ClickHouse {where} has {top.parts} active parts (inserts slow at {top.delay_at}, "
            f"fail at {top.throw_at}) with {pp.merges_running} merges running"
        )
        if top.parts >= top.throw_at:
            status, text = Status.FAIL, text + ": inserts are being rejected with TOO_MANY_PARTS"
        elif top.ratio >= 1:
            status, text = Status.FAIL, text + ": inserts are being delayed"
        else:
            status = grade_high(top.ratio, warn_ratio, 1.0)
    if pp.stuck_mutations and stuck_minutes is not None:
        oldest = max(pp.stuck_mutations, key=lambda m: m.age_s)
        status = worst(status, Status.WARN)
        text += (
            f", and {len(pp.stuck_mutations)} mutation(s) are unfinished after {stuck_minutes:g} min "
            f"(oldest {oldest.mutation_id} on {oldest.table}, {oldest.age_s} s)"
        )
    return status, text
