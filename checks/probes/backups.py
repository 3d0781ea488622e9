"""Evidence for the backup-and-restore item: what each datastore shows of its latest backup.

No probe can see that a restore was rehearsed, so the item stays for a person to attest; what the
stores do show (ClickHouse's BACKUP history, Redis persistence, PostgreSQL WAL archiving) goes with
it as evidence, each store read on its own so one unreachable store does not hide the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import wait
from typing import Any

from checks.clients import Clients
from checks.execution import no_answer, reason, run_probe
from checks.model import Evidence, Status
from checks.probes.clickhouse.reads import query_rows
from checks.probes.common import human_duration
from checks.probes.postgres.storage import archiving
from checks.reach import unreachable
from checks.reach import why as cause


def clickhouse_backups(clients: Clients) -> tuple[str, dict[str, Any]]:
    """The newest BACKUPs this ClickHouse server ran (system.backups keeps those since it started)."""
    ch = clients.clickhouse
    rows = query_rows(
        ch,
        "backups",
        "SELECT name, toString(status) AS status, dateDiff('second', end_time, now()) AS age_s, "
        "total_size FROM system.backups WHERE status IN ('BACKUP_CREATED', 'BACKUP_FAILED') "
        "ORDER BY start_time DESC LIMIT 5",
        reads="system.backups",
        purpose="list recent backups",
    )
    created = [r for r in rows if r["status"] == "BACKUP_CREATED"]
    if created:
        newest = created[0]
        text = f"ClickHouse: last BACKUP {human_duration(float(newest['age_s']))} ago"
    else:
        text = "ClickHouse: no BACKUP since it started (clickhouse-backup and disk snapshots do not show)"
    failed = [r for r in rows if r["status"] == "BACKUP_FAILED"]
    if failed:
        text += f", {len(failed)} failed"
    return text, {"recent": [{k: r[k] for k in ("status", "age_s", "total_size")} for r in rows]}


def redis_persistence(clients: Clients) -> tuple[str, dict[str, Any]]:
    """RDB snapshots and the AOF as INFO persistence reports them."""
    info = clients.redis.info("persistence")
    aof = bool(int(info.get("aof_enabled", 0)))
    last = info.get("rdb_last_save_time")
    age = None
    if last:
        server = clients.redis.info("server")
        now = float(server.get("server_time_usec", 0)) / 1e6 or None
        age = (now - float(last)) if now else None
    facts = {
        "aof_enabled": aof,
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "rdb_last_save_age_s": age,
        "rdb_changes_since_last_save": info.get("rdb_changes_since_last_save"),
    }
    parts = [f"RDB saved {human_duration(age)} ago" if age is not None else "no RDB save time"]
    if info.get("rdb_last_bgsave_status") not in (None, "ok"):
        parts.append(f"last background save {info['rdb_last_bgsave_status']}")
    parts.append("AOF on" if aof else "AOF off")
    return "Redis: " + ", ".join(parts), facts


def postgres_archiving(clients: Clients) -> tuple[str, dict[str, Any]]:
    """WAL archiving: the basis of point-in-time restore."""
    arc = archiving(clients.postgres)
    facts = {"archive_mode": arc.mode, "tool": arc.tool, "last_archived_age_s": arc.last_archived_age_s}
    if not arc.on:
        return "PostgreSQL: WAL archiving off (managed snapshots do not show here)", facts
    tool = arc.tool or "archive_command"
    failing = ", the last attempt failed" if arc.failed_after_success else ""
    if arc.last_archived_age_s is None:
        return f"PostgreSQL: WAL archiving on ({tool}) but nothing archived yet{failing}", facts
    age = human_duration(arc.last_archived_age_s)
    return f"PostgreSQL: WAL archived by {tool} {age} ago{failing}", facts


READERS: dict[str, Callable[[Clients], tuple[str, dict[str, Any]]]] = {
    "clickhouse": clickhouse_backups,
    "redis": redis_persistence,
    "postgres": postgres_archiving,
}


def _read(read: Callable[[Clients], tuple[str, dict[str, Any]]]) -> Callable[..., Any]:
    return lambda clients, params: read(clients)


def evidence(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Each configured store's latest backup, for the person who attests the restore drill.

    The stores are read at once, each on its own thread, so one that never answers costs its own
    line, not the others': whatever has not answered within most of the probe's time is named.
    """
    started = {s: run_probe(_read(read), clients, {}) for s, read in READERS.items() if clients.has(s)}
    limit = clients.inner_timeout_s
    wait(list(started.values()), timeout=limit)
    lines, observed = [], {}
    for store, future in started.items():
        if not future.done():
            why = no_answer(limit, future)  # says what it still waits for, when a client knows
            text, facts = f"{store}: {why[0].lower()}{why[1:].rstrip('.')}", {"error": "timeout"}
        elif future.exception() is not None:
            exc = future.exception()
            if unreachable(exc) is not None:  # type: ignore[arg-type]
                why = cause(exc)  # type: ignore[arg-type]
                text, facts = f"{store}: could not be reached ({why})", {"error": why}
            else:
                why = reason(exc)  # type: ignore[arg-type]
                text, facts = f"{store}: could not read ({why})", {"error": why}
        else:
            text, facts = future.result()  # type: ignore[misc]
        lines.append(text)
        observed[store] = facts
    seen = "; ".join(lines) if lines else "no datastore is configured to look at"
    return Evidence(
        Status.MANUAL,
        f"Backups seen: {seen}. Confirm a restore of ClickHouse, Redis and PostgreSQL was rehearsed and "
        "attest it.",
        observed,
    )


PROBES = {"backups.evidence": evidence}
