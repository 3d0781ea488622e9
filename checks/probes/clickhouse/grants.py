"""ClickHouse permissions: the LangSmith user's grants, row policies and diagnostic tables (items 22, 61)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks.clients import Clients
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.probes.clickhouse.query import (
    ACCESS_DENIED,
    SYNTAX_ERROR,
    UNKNOWN_TABLE,
    UNKNOWN_USER_OR_ROLE,
    MissingPrivilege,
    error_code,
    needed_grant,
    query_rows,
    quote_ident,
    remote_settings,
    replicas_answering,
    silent_note,
    system_source,
)
from checks.sessions import ClickHouseSession

# --- Permissions: item 22 ------------------------------------------------------------------------


_GRANT_LINE = re.compile(r"^(GRANT|REVOKE)\s+(.+?)\s+ON\s+(\S+)\s+(?:TO|FROM)\s+", re.S)
_ROLE_LINE = re.compile(r"^GRANT\s+(.+?)\s+TO\s+", re.S)
_ALL = frozenset({"ALL", "ALL PRIVILEGES"})
# Database-level grants are shown expanded (SHOW GRANTS renders ALTER ON db.* as ALTER TABLE, ALTER
# VIEW, ...). Any one of these sets is enough for what LangSmith's migrations and workers do.
SUFFICIENT: dict[str, list[set[str]]] = {
    "ALTER": [{"ALTER"}, {"ALTER TABLE"}],
    "CREATE": [{"CREATE"}, {"CREATE TABLE", "CREATE VIEW"}],
    "DROP": [{"DROP"}, {"DROP TABLE", "DROP VIEW"}],
}


@dataclass(frozen=True)
class GrantLine:
    """One line of SHOW GRANTS: privileges on a target, granted or partially revoked."""

    revoke: bool
    privileges: tuple[str, ...]
    target: str  # '*.*', 'db.*', 'db.table' with backquotes removed


def split_privileges(text: str) -> tuple[str, ...]:
    """'SELECT(a, b), INSERT' -> ('SELECT', 'INSERT'): commas inside column lists do not split."""
    out, depth, token = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(token)
            token = ""
        else:
            token += ch
    out.append(token)
    return tuple(" ".join(re.sub(r"\(.*\)", "", t).split()).upper() for t in out if t.strip())


def parse_grants(lines: Sequence[str]) -> tuple[list[GrantLine], list[str]]:
    """SHOW GRANTS output -> (privilege lines, granted role names)."""
    grants: list[GrantLine] = []
    roles: list[str] = []
    for line in lines:
        match = _GRANT_LINE.match(line.strip())
        if match:
            target = match.group(3).replace("`", "")
            grants.append(GrantLine(match.group(1) == "REVOKE", split_privileges(match.group(2)), target))
            continue
        match = _ROLE_LINE.match(line.strip())
        if match:
            roles += [r.strip().strip("`") for r in match.group(1).split(",")]
    return grants, roles


def _covers_database(target: str, database: str) -> bool:
    return target in ("*.*", f"{database}.*")


def privilege_state(grants: Sequence[GrantLine], privilege: str, database: str) -> str:
    """'granted', 'partial' (sub-privilege, table-level grant or partial revoke) or 'missing'."""
    privilege = privilege.upper()
    held: set[str] = set()
    partial = False
    for g in grants:
        on_db = _covers_database(g.target, database)
        on_table = g.target.startswith(f"{database}.") and not on_db
        related = any(p == privilege or p.startswith(privilege + " ") or p in _ALL for p in g.privileges)
        if g.revoke:
            partial |= (on_db or on_table) and related
        elif on_db:
            held |= set(g.privileges)
        else:
            partial |= on_table and related
    full = bool(held & _ALL) or any(option <= held for option in SUFFICIENT.get(privilege, [{privilege}]))
    if full and not partial:
        return "granted"
    partial |= any(p.startswith(privilege + " ") for p in held)
    return "partial" if full or partial else "missing"


def _show_grants(ch: ClickHouseSession, user: str | None) -> tuple[list[str], bool]:
    """SHOW GRANTS lines for the user and whether role grants are expanded (FINAL, recent servers)."""
    target = f" FOR {quote_ident(user)}" if user else ""
    for final in (True, False):
        try:
            rows = ch.query("permissions", f"SHOW GRANTS{target}{' FINAL' if final else ''}")
            return [str(next(iter(r.values()))) for r in rows], final
        except Exception as exc:
            code = error_code(exc)
            if code == SYNTAX_ERROR and final:
                continue  # a server older than SHOW GRANTS ... FINAL
            if code == ACCESS_DENIED:
                grant = needed_grant(exc) or "SHOW USERS ON *.*"
                raise MissingPrivilege(grant, f"the grants of user '{user}'") from exc
            if code in UNKNOWN_USER_OR_ROLE:
                raise LsreadyError(
                    f"ClickHouse has no user '{user}'; set thresholds.clickhouse.permissions.langsmith_user "
                    "to the user LangSmith connects as (clickhouse.external.user)"
                ) from exc
            raise
    return [], False


def _row_policies(ch: ClickHouseSession, user: str, roles: Sequence[str]) -> list[dict[str, Any]]:
    """Row policies on the LangSmith database that apply to the user or one of its roles."""
    rows = query_rows(
        ch,
        "permissions",
        "SELECT short_name, table, select_filter, is_restrictive, apply_to_all, apply_to_list, "
        "apply_to_except FROM system.row_policies WHERE database = {db:String} ORDER BY table LIMIT 100",
        {"db": ch.database},
        reads="system.row_policies",
        purpose="see row policies that could hide traces",
    )
    who = {user, *roles}
    applying = []
    for r in rows:
        if not r["is_restrictive"] and str(r["select_filter"]).strip().lower() in ("1", "true"):
            continue  # a permissive policy that lets every row through (users.xml adds these)
        excluded = bool(who & set(r["apply_to_except"]))
        if (r["apply_to_all"] and not excluded) or who & set(r["apply_to_list"]):
            applying.append({"policy": r["short_name"], "table": r["table"], "filter": r["select_filter"]})
    return applying


def permissions(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's user holds the privileges it needs on its database and no row policy hides rows."""
    ch = clients.clickhouse
    current = str(ch.query("permissions", "SELECT currentUser() AS u")[0]["u"])
    user = params.get("langsmith_user") or current
    lines, expanded = _show_grants(ch, None if user == current else user)
    grants, roles = parse_grants(lines)
    needed = [str(p).upper() for p in params["privileges"]]
    states = {p: privilege_state(grants, p, ch.database) for p in needed}
    observed: dict[str, Any] = {"user": user, "database": ch.database, "privileges": states, "roles": roles}
    threshold = {"privileges": needed}
    missing = [p for p, s in states.items() if s == "missing"]
    hint = (
        " (lsready's own user; set thresholds.clickhouse.permissions.langsmith_user to check LangSmith's)"
        if not params.get("langsmith_user")
        else ""
    )
    if "INSERT" in missing and not params.get("langsmith_user") and not (roles and not expanded):
        # Not LangSmith's user (it inserts runs): lsready's own least-privilege reader says nothing here.
        raise LsreadyError(
            f"lsready connects to ClickHouse as '{user}', a user that cannot write, so not LangSmith's; "
            "set thresholds.clickhouse.permissions.langsmith_user to LangSmith's user "
            "(clickhouse.external.user) to check its grants and row policies"
        )
    if missing and roles and not expanded:
        raise LsreadyError(
            f"ClickHouse user '{user}' gets privileges through roles ({', '.join(roles)}) and this server "
            "cannot expand them (SHOW GRANTS ... FINAL); check the roles' grants with SHOW GRANTS FOR <role>"
        )
    if missing:
        via = f" or its roles ({', '.join(roles)})" if roles else ""
        return Evidence(
            Status.FAIL,
            f"ClickHouse user '{user}'{hint} lacks {', '.join(missing)} on database '{ch.database}'{via}; "
            f"LangSmith needs {', '.join(needed)} there.",
            observed,
            threshold,
        )
    policies = _row_policies(ch, user, roles)
    observed["row_policies"] = policies
    partial = [p for p, s in states.items() if s == "partial"]
    if policies:
        shown = ", ".join(f"{p['policy']} on {p['table']}" for p in policies[:3])
        return Evidence(
            Status.WARN,
            f"{len(policies)} row {'policy filters' if len(policies) == 1 else 'policies filter'} "
            f"LangSmith tables for ClickHouse user '{user}' ({shown}); they hide traces, drop them.",
            observed,
            threshold,
        )
    if partial:
        return Evidence(
            Status.WARN,
            f"ClickHouse user '{user}' has {', '.join(partial)} on database '{ch.database}' only in part "
            "(a sub-privilege, a table-level grant or a partial revoke); migrations may fail.",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"ClickHouse user '{user}' has {', '.join(needed)} on database '{ch.database}' and no row policy "
        "filters its tables.",
        observed,
        threshold,
    )


# --- Diagnostics: item 61 ------------------------------------------------------------------------


# Each diagnostic table with a bounded read; log tables read only today's partition.
DIAG_TABLES: dict[str, str] = {
    "system.query_log": "SELECT 1 FROM {src} WHERE event_date = today() LIMIT 1",
    "system.parts": "SELECT 1 FROM {src} LIMIT 1",
    "system.merges": "SELECT 1 FROM {src} LIMIT 1",
    "system.mutations": "SELECT 1 FROM {src} LIMIT 1",
    "system.processes": "SELECT 1 FROM {src} LIMIT 1",
    "system.part_log": "SELECT 1 FROM {src} WHERE event_date = today() LIMIT 1",
}
OPTIONAL_DIAG_TABLES = frozenset({"system.part_log"})  # off by default on many servers


def _diag_state(ch: ClickHouseSession, table: str, sql: str) -> tuple[str, str | None]:
    """('readable'|'absent'|'denied', the missing grant) for one diagnostic table."""
    try:
        ch.query("system_tables", sql.format(src=system_source(ch, table)) + remote_settings(ch))
        return "readable", None
    except Exception as exc:
        code = error_code(exc)
        if code == UNKNOWN_TABLE:
            return "absent", None
        if code == ACCESS_DENIED:
            return "denied", needed_grant(exc) or f"SELECT ON {table}"
        raise


def system_tables(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The configured user can read query_log, parts, merges, mutations, processes (and part_log)."""
    ch = clients.clickhouse
    states: dict[str, str] = {}
    grants: list[str] = []
    for table, sql in DIAG_TABLES.items():
        state, grant = _diag_state(ch, table, sql)
        states[table] = state
        if grant:
            grants.append(grant)
    answered, expected = replicas_answering(ch, "system_tables")
    note = silent_note(answered, expected)
    where = f" on the replicas of cluster '{ch.cluster}'" if ch.cluster else ""
    observed = {
        "tables": states,
        "missing_grants": grants,
        "replicas_answered": answered,
        "replicas_expected": expected,
    }
    denied = [t for t, s in states.items() if s == "denied"]
    absent = [t for t, s in states.items() if s == "absent"]
    if denied:
        return Evidence(
            Status.FAIL,
            f"The ClickHouse user cannot read {', '.join(denied)}{where}; "
            f"grant {'; '.join(dict.fromkeys(grants))}{note}.",
            observed,
        )
    required_absent = [t for t in absent if t not in OPTIONAL_DIAG_TABLES]
    if required_absent:
        return Evidence(
            Status.WARN,
            f"{', '.join(required_absent)} is not enabled on this ClickHouse server{where}, so support "
            f"cannot collect query history; enable it in the server config{note}.",
            observed,
        )
    readable = [t for t, s in states.items() if s == "readable"]
    extra = f" ({', '.join(absent)} is not enabled, which is optional)" if absent else ""
    return Evidence(
        Status.WARN if note else Status.PASS,
        f"The ClickHouse user can read {len(readable)} diagnostic system tables{where}{extra}{note}.",
        observed,
    )
