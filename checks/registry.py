"""Load the checklist catalog and bind its items to probes; refuse to start on any inconsistency."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from checks.errors import CatalogError
from checks.model import SECTIONS, Item, Kind, Severity
from checks.probes import all_probes
from checks.probes.common import ProbeFn
from checks.thresholds import CATALOG_PATH, Threshold, check_overrides, parse_schema, read_catalog

__all__ = ["CATALOG_PATH", "Catalog", "CatalogEntry", "load_catalog"]
_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_REQUIRED_FIELDS = ("id", "section", "title", "seed", "kind", "required", "severity", "remediation")


@dataclass(frozen=True)
class Catalog:
    items: tuple[Item, ...]
    probes: Mapping[str, ProbeFn]
    # Triage-only signals: id -> threshold values in force (the catalog's `signals:` document).
    signals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {i.id: i for i in self.items})

    def get(self, item_id: str) -> Item | None:
        return self._by_id.get(item_id)  # type: ignore[attr-defined]

    def thresholds(self, owner: str) -> Mapping[str, Any] | None:
        """The threshold values in force of an item or a triage-only signal; None if there is no such id."""
        item = self.get(owner)
        return item.thresholds if item is not None else self.signals.get(owner)

    def section(self, section: str) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.section == section)

    def required_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items if i.required and i.kind is not Kind.DERIVED)


def load_catalog(
    path: Path = CATALOG_PATH,
    probes: Mapping[str, ProbeFn] | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
) -> Catalog:
    """The catalog with operator overrides applied. Raises CatalogError listing every problem.

    Every probe in `probes` must be bound by an item: a probe nothing runs has thresholds nobody
    can see or override.
    """
    probes = all_probes() if probes is None else probes
    raw, raw_signals = read_catalog(path)
    problems: list[str] = []
    items: list[Item] = []
    seen: set[str] = set()
    for n, entry in enumerate(raw, 1):
        item = _parse(entry, n, probes, problems)
        if item is None:
            continue
        if item.id in seen:
            problems.append(f"item {n}: duplicate id '{item.id}'")
        seen.add(item.id)
        items.append(item)
    for item in items:
        for ref in item.derived_from or ():
            if ref not in seen:
                problems.append(f"{item.id}: derived from unknown item '{ref}'")
    unbound = sorted(set(probes) - {i.probe for i in items if i.probe})
    if unbound:
        problems.append(f"probe(s) without a catalog entry: {', '.join(unbound)}")
    signal_schemas = {
        sid: parse_schema(sid, (entry or {}).get("thresholds"), problems)
        for sid, entry in raw_signals.items()
    }
    clash = sorted(seen & set(signal_schemas))
    if clash:
        problems.append(f"signal id(s) {', '.join(clash)} are also item ids")
    by_id = {i.id: i for i in items}
    schemas = {**{i.id: i.schema for i in items}, **signal_schemas}
    for path_, message in check_overrides(thresholds or {}, schemas):
        problems.append(f"thresholds.{'.'.join(path_)}: {message}")
    signals = {sid: {k: t.default for k, t in schema.items()} for sid, schema in signal_schemas.items()}
    if not problems:
        for owner, overrides in (thresholds or {}).items():
            if owner in by_id:
                item = by_id[owner]
                by_id[owner] = replace(item, thresholds={**item.thresholds, **overrides})
            else:
                signals[owner] = {**signals[owner], **overrides}
    for item_id, level in (severity or {}).items():
        if item_id not in by_id:
            problems.append(f"severity.{item_id}: no such item")
            continue
        by_id[item_id] = replace(by_id[item_id], severity=Severity(level))
    if problems:
        raise CatalogError("; ".join(problems))
    return Catalog(items=tuple(by_id[i.id] for i in items), probes=dict(probes), signals=signals)


class CatalogEntry(BaseModel):
    """One item of catalog.yaml as written: the fields, their types, nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, StringConstraints(pattern=_ID.pattern)]
    section: Literal[tuple(SECTIONS)]  # type: ignore[valid-type]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    seed: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    kind: Literal[tuple(k.value for k in Kind)]  # type: ignore[valid-type]
    required: bool
    severity: Literal[tuple(s.value for s in Severity)]  # type: ignore[valid-type]
    remediation: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    thresholds: Any = None
    derived: Any = None
    docs: Any = None
    probe: Any = None
    attestable: bool = False

    @field_validator("section", mode="before")
    @classmethod
    def _section_as_text(cls, value: Any) -> Any:
        return str(value)


# What the registry says about a field CatalogEntry refuses, in the order it says it.
_FIELD_PROBLEMS = {
    "id": "id must be dotted lower_snake, like 'redis.memory_sized'",
    "section": f"section must be one of {', '.join(SECTIONS)}",
    "kind": "kind must be probe, manual or derived",
    "severity": "severity must be critical, high, medium or low",
    "required": "required must be true or false",
    "attestable": "attestable is true/false, for probe items only (manual ones always are)",
    "title": "title must be non-empty text",
    "seed": "seed must be non-empty text",
    "remediation": "remediation must be non-empty text",
}


def _parse(entry: Any, n: int, probes: Mapping[str, ProbeFn], problems: list[str]) -> Item | None:
    if not isinstance(entry, dict):
        problems.append(f"item {n}: must be a mapping")
        return None
    where = f"item {n} ({entry.get('id', '?')})"
    try:
        parsed: CatalogEntry | None = CatalogEntry.model_validate(entry)
        refused: set[str] = set()
    except ValidationError as exc:
        parsed = None
        errors = exc.errors()
        missing = {str(e["loc"][0]) for e in errors if e["type"] == "missing"}
        extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if missing or extra:
            if missing:
                problems.append(f"{where}: missing {', '.join(f for f in _REQUIRED_FIELDS if f in missing)}")
            if extra:
                problems.append(f"{where}: unknown field(s) {', '.join(extra)}")
            return None
        refused = {str(e["loc"][0]) for e in errors}
    before = len(problems)
    for name in ("id", "section", "kind", "severity", "required"):
        if name in refused:
            problems.append(f"{where}: {_FIELD_PROBLEMS[name]}")
    kind = Kind(parsed.kind) if parsed else Kind(entry["kind"]) if "kind" not in refused else Kind.MANUAL
    probe = entry.get("probe")
    if probe is not None and probe not in probes:
        problems.append(f"{where}: unknown probe '{probe}'")
    if probe is not None and kind is Kind.DERIVED:
        problems.append(f"{where}: a derived item has no probe")
    if probe is None and kind is Kind.PROBE:
        problems.append(f"{where}: a probe item names its probe")
    derived = entry.get("derived")
    derived_from: tuple[str, ...] | None = None
    if kind is Kind.DERIVED:
        source = (derived or {}).get("from") if isinstance(derived, dict) else None
        if source == "required":
            derived_from = ()  # resolved against the catalog when evaluated
        elif isinstance(source, list) and all(isinstance(s, str) for s in source) and source:
            derived_from = tuple(source)
        else:
            problems.append(f"{where}: derived.from must be 'required' or a list of item ids")
    elif derived is not None:
        problems.append(f"{where}: only derived items have 'derived'")
    if "attestable" in refused or (entry.get("attestable", False) and kind is not Kind.PROBE):
        problems.append(f"{where}: {_FIELD_PROBLEMS['attestable']}")
    schema: dict[str, Threshold] = parse_schema(where, entry.get("thresholds"), problems)
    for name in ("title", "seed", "remediation"):
        if name in refused:
            problems.append(f"{where}: {_FIELD_PROBLEMS[name]}")
    if len(problems) > before or parsed is None:
        return None
    return Item(
        id=parsed.id,
        section=parsed.section,
        title=entry["title"],
        seed=entry["seed"],
        kind=kind,
        required=parsed.required,
        severity=Severity(parsed.severity),
        remediation=parsed.remediation,
        docs=entry.get("docs"),
        probe=probe,
        thresholds={k: t.default for k, t in schema.items()},
        schema=schema,
        derived_from=derived_from,
        attestable_probe=parsed.attestable,
    )
