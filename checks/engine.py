"""The one call everything else makes: check a configured target, all of it or a part."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from checks.clients import Clients
from checks.config import Config
from checks.errors import LsreadyError
from checks.model import SECTIONS, Attestation, Item, Kind
from checks.prepared import Prepared, catalog_for, prepare
from checks.registry import Catalog
from checks.runner import Report, run_checks
from checks.score import score

__all__ = ["UnknownSelection", "catalog_for", "check", "check_all", "check_prepared", "select"]


class UnknownSelection(LsreadyError):
    """A section or item id that the catalog does not have."""


def select(catalog: Catalog, selector: str | None) -> list[Item]:
    """Items for a section number, a section name, an item id, or everything."""
    if not selector:
        return list(catalog.items)
    key = selector.strip().lower()
    if key in SECTIONS:
        return list(catalog.section(key))
    for number, name in SECTIONS.items():
        if key == name.lower() or key == name.lower().split()[0]:
            return list(catalog.section(number))
    item = catalog.get(key)
    if item is not None:
        return [item]
    prefixed = [i for i in catalog.items if i.id.startswith(key + ".")]
    if prefixed:
        return prefixed
    choices = list(SECTIONS) + [i.id for i in catalog.items]
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownSelection(
        f"'{selector}' is not a section (1-11, signoff) or an item id.{hint} Try `lsready catalog`."
    )


def check(
    config: Config,
    target: str | None = None,
    *,
    selector: str | None = None,
    attestations: Mapping[str, Attestation] | None = None,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> Report:
    """Run the checks of one target and return its report; never raises for a backend's trouble."""
    run = prepare(config, target, catalog=catalog)
    return check_prepared(run, selector=selector, attestations=attestations, now=now)


def check_prepared(
    run: Prepared,
    *,
    selector: str | None = None,
    attestations: Mapping[str, Attestation] | None = None,
    now: datetime | None = None,
    clients: Clients | None = None,
) -> Report:
    """`check` of a target already resolved by `prepare`, on `clients` when the caller has them open
    (they carry the probe timeout), else on clients of its own."""
    catalog = run.catalog
    wanted = select(catalog, selector)
    # A derived item needs its sources evaluated even when they were not asked for.
    needed = {i.id for i in wanted}
    for item in wanted:
        if item.kind is Kind.DERIVED:
            needed.update(item.derived_from or catalog.required_ids())
    to_run = [i for i in catalog.items if i.id in needed]
    with contextlib.nullcontext(clients) if clients is not None else run.clients() as opened:
        report = run_checks(
            catalog,
            opened,
            items=to_run,
            attestations=attestations,
            deadline_s=run.deadline_s,
            redactor=run.redactor,
            now=now,
        )
    if len(to_run) == len(wanted):
        return report
    ids = {i.id for i in wanted}
    shown = tuple(r for r in report.results if r.item.id in ids)
    unreached = tuple(
        replace(u, items=tuple(i for i in u.items if i in ids))
        for u in report.unreachable
        if ids & set(u.items)
    )
    return replace(report, results=shown, score=score(shown), unreachable=unreached)


def check_all(
    config: Config,
    targets: Sequence[str] | None = None,
    *,
    selector: str | None = None,
    attestations: Mapping[str, Mapping[str, Attestation]] | None = None,
    now: datetime | None = None,
    max_workers: int = 16,
) -> list[Report]:
    """Check several targets (every configured one by default) at once; reports in the order asked.

    Each target runs on its own thread with its own Clients, so a hung target costs the others
    nothing: the whole call ends within about one run deadline, not one per target.
    """
    names = list(targets) if targets is not None else list(config.targets)
    catalog = catalog_for(config)
    runs = [prepare(config, name, catalog=catalog) for name in names]  # an unknown name fails here
    acks = attestations or {}

    def one(run: Prepared) -> Report:
        return check_prepared(run, selector=selector, attestations=acks.get(run.name), now=now)

    with ThreadPoolExecutor(max(1, min(max_workers, len(runs))), thread_name_prefix="check") as pool:
        return list(pool.map(one, runs))
