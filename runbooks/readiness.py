"""Readiness as a service: checks with attestations applied and recorded, and the acknowledgement rules.

The bot and the CLI call these; they never touch storage or thresholds themselves.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from checks.config import Config
from checks.engine import catalog_for, check
from checks.errors import LsreadyError
from checks.model import Attestation, Item
from checks.registry import Catalog
from checks.runner import Report
from storage.acks import Ack, AckStore
from storage.alerts import AlertThreads
from storage.audit import Audit
from storage.db import open_db, utcnow
from storage.digests import DigestLog
from storage.history import History


class UnknownItem(LsreadyError):
    def __init__(self, item_id: str, suggestion: str | None) -> None:
        hint = f" Did you mean '{suggestion}'?" if suggestion else " See `lsready catalog`."
        super().__init__(f"there is no checklist item '{item_id}'.{hint}")


class NotAttestable(LsreadyError):
    def __init__(self, item: Item) -> None:
        super().__init__(
            f"'{item.id}' is checked automatically: its status comes from evidence, not acknowledgement. "
            f"Fix what it reports, then re-run the check."
        )


class BadDuration(LsreadyError):
    pass


class BadAttestation(LsreadyError):
    """An acknowledgement without a named person, or with a link that is not a web address."""


def check_attestation(by: str, evidence_link: str | None) -> None:
    """Refuse an empty actor and a link that is not an http(s) URL, saying what to pass instead."""
    if not by.strip():
        raise BadAttestation(
            "an acknowledgement names who attests it: pass --by NAME (a name or a Slack user id)"
        )
    if evidence_link is not None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(evidence_link.strip())
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadAttestation(
                "the evidence link (--link) must be an http(s) URL, like https://wiki.example.com/drill, "
                f"not '{evidence_link}'"
            )


_DURATION = re.compile(
    r"^\s*(\d+)\s*(d|day|days|w|wk|week|weeks|h|hr|hour|hours|m|mo|month|months)?\s*$", re.I
)
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "mo": 30}


def parse_duration(text: str) -> timedelta:
    """'90d', '2w', '12h', '3 months' (a month is 30 days); a bare number is days."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) <= 0:
        raise BadDuration(f"'{text}' is not a duration; use a number of days like 30d, or 2w, 12h, 3mo")
    n, unit = int(m.group(1)), (m.group(2) or "d").lower()
    if unit.startswith("h"):
        return timedelta(hours=n)
    days = _UNIT_DAYS.get(unit[:2] if unit.startswith("mo") else unit[0], 1)
    if n * days > 3650:
        raise BadDuration(f"'{text}' is longer than ten years; acknowledgements must age out")
    return timedelta(days=n * days)


def suggest(catalog: Catalog, item_id: str) -> str | None:
    close = difflib.get_close_matches(item_id, [i.id for i in catalog.items], n=1, cutoff=0.5)
    return close[0] if close else None


@dataclass
class Readiness:
    """Config, catalog and the store, opened once per process."""

    config: Config
    catalog: Catalog
    db: sqlite_utils.Database
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def open(
        cls, config: Config, db_path: str | Path | None = None, clock: Callable[[], datetime] = utcnow
    ) -> Readiness:
        return cls(config, catalog_for(config), open_db(db_path or config.storage.path), clock)

    def open_for_thread(self) -> Readiness:
        """The same config, catalog and clock on a new connection to the same database (one per thread)."""
        path = self.db.execute("PRAGMA database_list").fetchone()[2]
        return Readiness(self.config, self.catalog, open_db(path), self.clock)

    @property
    def acks(self) -> AckStore:
        return AckStore(self.db, self.clock)

    @property
    def history(self) -> History:
        return History(self.db)

    @property
    def audit(self) -> Audit:
        return Audit(self.db, self.clock)

    @property
    def digests(self) -> DigestLog:
        return DigestLog(self.db, self.clock)

    @property
    def alert_threads(self) -> AlertThreads:
        return AlertThreads(self.db, self.clock)

    def target_name(self, target: str | None) -> str:
        return self.config.target(target)[0]

    def attestations(self, target: str) -> dict[str, Attestation]:
        return {
            item_id: Attestation(item_id, a.by, a.created, a.expires, a.note)
            for item_id, a in self.acks.active(target).items()
        }

    def check(self, target: str | None = None, selector: str | None = None, *, record: bool = True) -> Report:
        """Run the checks with current attestations; full runs are recorded in the history."""
        name = self.target_name(target)
        report = check(
            self.config,
            name,
            selector=selector,
            attestations=self.attestations(name),
            catalog=self.catalog,
            now=self.clock(),
        )
        if record and selector is None:
            self.history.record(
                name,
                report.started_at,
                report.duration_s,
                report.score.to_dict(),
                [r.to_dict() for r in report.results],
            )
        return report

    def item(self, item_id: str) -> Item:
        item = self.catalog.get(item_id.strip())
        if item is None:
            raise UnknownItem(item_id, suggest(self.catalog, item_id.strip()))
        return item

    def validity(self, item_id: str, expires: str | timedelta | None) -> timedelta:
        if isinstance(expires, timedelta):
            return expires
        if expires:
            return parse_duration(expires)
        days = self.config.acks.items.get(item_id, self.config.acks.default_days)
        return timedelta(days=days)

    def acknowledge(
        self,
        target: str | None,
        item_id: str,
        by: str,
        *,
        note: str = "",
        expires: str | timedelta | None = None,
        evidence_link: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> Ack:
        """Attest a manual item; refuses automated items and unknown ids with a way forward."""
        check_attestation(by, evidence_link)
        name = self.target_name(target)
        item = self.item(item_id)
        if not item.attestable:
            raise NotAttestable(item)
        previous = self.acks.active(name).get(item.id)
        ack = self.acks.add(
            name,
            item.id,
            by.strip(),
            valid_for=self.validity(item.id, expires),
            note=note.strip(),
            evidence_link=evidence_link.strip() if evidence_link else None,
            channel=channel,
            thread_ts=thread_ts,
        )
        detail = f"{item.id} until {ack.expires:%Y-%m-%d}"
        if previous is not None:
            ack = replace(ack, supersedes=previous)
            detail += f", superseding #{previous.id} by {previous.by}"
        self.audit.record(by.strip(), "ack", target=name, detail=detail, place=channel)
        return ack

    def revoke(self, target: str | None, item_id: str, by: str) -> int:
        if not by.strip():
            raise BadAttestation("a revocation names who revokes: pass --by NAME")
        name = self.target_name(target)
        item = self.item(item_id)
        count = self.acks.revoke(name, item.id, by)
        self.audit.record(
            by, "revoke", target=name, detail=item.id, outcome="ok" if count else "nothing to revoke"
        )
        return count
