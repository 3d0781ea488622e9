"""Run probes concurrently under timeouts; turn every outcome, even a hang or a crash, into a Result.

Each probe runs on a daemon thread. The runner waits for each until the probe timeout its clients
carry (counted from the common start) or the run's deadline, whichever is first; a probe still
running then is reported `unknown` and left to finish against the socket timeouts of its client,
never joined. The reason says what it was still waiting for when a client knows (a free
PostgreSQL connection, credentials that do not load); a probe that ended with its own error, a
socket timeout included, gives that. Probes still running when the run ends count against their
backends (see checks.clients), so a hung backend does not collect threads run after run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from checks.clients import Clients
from checks.execution import no_answer, run_probe, settled
from checks.model import Attestation, Evidence, Item, Kind, Result, Status
from checks.reach import LABELS, endpoint, unreachable, why
from checks.registry import Catalog
from checks.score import Score, score
from checks.secrets import Redactor

log = logging.getLogger(__name__)

# How a derived item reads its sources: the worst status present decides.
_DERIVED_ORDER = [Status.FAIL, Status.UNKNOWN, Status.MANUAL, Status.WARN]


@dataclass(frozen=True)
class Unreachable:
    """A backend that could not be reached in this run: said once, the items that needed it point here."""

    backend: str
    label: str  # "ClickHouse"
    endpoint: str  # host:port, never a credential
    why: str
    items: tuple[str, ...]

    @property
    def line(self) -> str:
        return f"{self.label} at {self.endpoint}: {self.why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "endpoint": self.endpoint,
            "why": self.why,
            "items": list(self.items),
        }


@dataclass(frozen=True)
class Report:
    target: str
    results: tuple[Result, ...]
    score: Score
    started_at: datetime
    duration_s: float
    unreachable: tuple[Unreachable, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "unreachable": [u.to_dict() for u in self.unreachable],
            "results": [r.to_dict() for r in self.results],
            "score": self.score.to_dict(),
        }


def run_checks(
    catalog: Catalog,
    clients: Clients,
    *,
    items: Iterable[Item] | None = None,
    attestations: Mapping[str, Attestation] | None = None,
    deadline_s: float = 30.0,
    redactor: Redactor | None = None,
    now: datetime | None = None,
) -> Report:
    """Evaluate items (all by default) for one target and score them.

    Each probe is waited for until the clients' timeout (the one its sockets use too) or
    `deadline_s` for the whole run, whichever comes first.
    """
    probe_timeout_s = clients.timeout_s
    redactor = redactor or Redactor()
    attestations = attestations or {}
    started_at = now or datetime.now(UTC)
    selected = list(items) if items is not None else list(catalog.items)
    t0 = time.monotonic()
    run_deadline = t0 + deadline_s

    futures: dict[str, Future[Evidence]] = {}
    for item in selected:
        if item.probe is not None:
            futures[item.id] = run_probe(catalog.probes[item.probe], clients, item.thresholds)

    evidence: dict[str, tuple[Evidence, float]] = {}
    limit = min(probe_timeout_s, deadline_s)
    down: dict[str, tuple[str, list[str]]] = {}  # backend -> (why, items that needed it)
    for item_id, future in futures.items():
        wait_until = min(t0 + probe_timeout_s, run_deadline)
        wait([future], timeout=max(0.0, wait_until - time.monotonic()))
        # Decided by whether the probe finished, not by the exception type: a probe's own socket
        # timeout is a TimeoutError too, and its message is the better reason.
        if future.done():
            ev = settled(future, limit, name=f"the probe for {item_id}")
            exc = future.exception(timeout=0)
            backend = unreachable(exc) if exc is not None else None
            if exc is not None and backend is not None:
                down.setdefault(backend, (why(exc), []))[1].append(item_id)
                ev = Evidence(
                    Status.UNKNOWN,
                    f"Could not tell: {LABELS.get(backend, backend)} could not be reached "
                    "(see 'Could not reach').",
                    {"unreachable": backend},
                )
        else:
            ev = Evidence(Status.UNKNOWN, no_answer(limit, future))
        evidence[item_id] = (ev, time.monotonic() - t0)
    unreached = tuple(
        Unreachable(b, LABELS.get(b, b), endpoint(clients.target, b), redactor.text(cause), tuple(items))
        for b, (cause, items) in down.items()
    )

    results: dict[str, Result] = {}
    for item in selected:
        if item.kind is Kind.DERIVED:
            continue
        ev, took = evidence.get(item.id, (None, 0.0))
        results[item.id] = _result(item, ev, took, attestations.get(item.id), started_at, redactor)
    for item in selected:
        if item.kind is Kind.DERIVED:
            results[item.id] = _derived(item, catalog, results)
    ordered = tuple(results[i.id] for i in selected)
    return Report(
        target=clients.target_name,
        results=ordered,
        score=score(ordered),
        started_at=started_at,
        duration_s=time.monotonic() - t0,
        unreachable=unreached,
    )


def _valid(att: Attestation | None, now: datetime) -> Attestation | None:
    if att is None or (att.expires is not None and att.expires <= now):
        return None
    return att


def _result(
    item: Item,
    ev: Evidence | None,
    took: float,
    attestation: Attestation | None,
    now: datetime,
    redactor: Redactor,
) -> Result:
    att = _valid(attestation, now)
    if item.kind is Kind.MANUAL or (ev is not None and ev.status is Status.MANUAL):
        # A manual item's probe only gathers evidence, or says the item does not apply.
        if ev is not None and ev.status is Status.NA:
            status, summary = Status.NA, ev.summary
        elif att is not None:
            expires = f", expires {att.expires:%Y-%m-%d}" if att.expires else ""
            status, summary = Status.ATTESTED, f"Attested by {att.by} on {att.at:%Y-%m-%d}{expires}."
            if att.note:
                summary += f" {att.note}"
        else:
            status = Status.MANUAL
            summary = ev.summary if ev is not None else "Needs a person: acknowledge it once it is true."
        observed = ev.observed if ev is not None else {}
        return Result(item, status, redactor.text(summary), redactor.value(observed), None, took, att)
    if ev is None:
        return Result(
            item, Status.UNKNOWN, "No automated probe covers this item yet; it cannot be verified here."
        )
    return Result(
        item,
        ev.status,
        redactor.text(ev.summary),
        redactor.value(ev.observed),
        redactor.value(ev.threshold) if ev.threshold is not None else None,
        took,
    )


def _derived(item: Item, catalog: Catalog, results: Mapping[str, Result]) -> Result:
    sources = item.derived_from or catalog.required_ids()
    statuses = {s: results[s].status for s in sources if s in results}
    if not statuses:
        return Result(item, Status.UNKNOWN, "None of the items this depends on were evaluated in this run.")
    for worst in _DERIVED_ORDER:
        offenders = sorted(s for s, st in statuses.items() if st is worst)
        if offenders:
            shown = ", ".join(offenders[:8]) + (
                f" and {len(offenders) - 8} more" if len(offenders) > 8 else ""
            )
            return Result(
                item,
                worst,
                f"{len(offenders)} of {len(statuses)} items it depends on are {worst.value}: {shown}.",
                {"depends_on": len(statuses), worst.value: offenders},
            )
    return Result(
        item,
        Status.PASS,
        f"All {len(statuses)} items it depends on pass, are attested or do not apply.",
        {"depends_on": len(statuses)},
    )
