"""Thresholds as a typed schema: what each number a verdict compares against is, and its limits.

Every threshold lives in checks/catalog.yaml, declared once with its default, type, unit, range
and direction; the items' `thresholds:` and the triage-only `signals:` use the same form:

    warn_ratio: {default: 0.9, type: number, unit: ratio, range: [0, 1], direction: higher_is_worse,
                 fail: fail_ratio}

`direction` says which way is worse (`higher_is_worse`, `lower_is_worse`), or `setting` for a
number that is not a limit (a window, a sample size). A warn level names its fail level in `fail`:
an override that puts them in the wrong order is refused. `check_overrides` is the one validation
of operator overrides, used by the configuration loader, so `config check` and every command agree.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from checks.errors import CatalogError

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
# libyaml's loader when PyYAML has it: the same documents, parsed about ten times faster (every
# check and triage reads the catalog).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TYPES = ("number", "integer", "boolean", "string", "strings")
DIRECTIONS = ("higher_is_worse", "lower_is_worse", "setting")
_SPEC_FIELDS = {"default", "type", "unit", "range", "direction", "fail", "nullable"}


@dataclass(frozen=True)
class Threshold:
    """One threshold: its default and what a value must be to replace it."""

    key: str
    default: Any
    type: str
    unit: str | None = None
    low: float | None = None  # inclusive bounds; None is unbounded
    high: float | None = None
    direction: str = "setting"
    fail: str | None = None  # on a warn level: the key of its fail level
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` cannot stand for this threshold, or None when it can."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}, not empty"
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"must be {self.describe()}, not {value!r}"
            if self.type == "integer" and not float(value).is_integer():
                return f"must be {self.describe()}, not {value!r}"
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"{value!r} is out of range: must be {self.describe()}"
            return None
        if self.type == "boolean" and not isinstance(value, bool):
            return f"must be true or false, not {value!r}"
        if self.type == "string" and not isinstance(value, str):
            return f"must be text, not {value!r}"
        if self.type == "strings" and (
            not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
        ):
            return f"must be a list of text, like [a, b], not {value!r}"
        return None

    def describe(self) -> str:
        """'a number from 0 to 1 (ratio)', 'an integer of at least 1 (count)'."""
        kind = {"number": "a number", "integer": "an integer", "boolean": "true or false",
                "string": "text", "strings": "a list of text"}[self.type]  # fmt: skip
        if self.low is not None and self.high is not None:
            kind += f" from {self.low:g} to {self.high:g}"
        elif self.low is not None:
            kind += f" of at least {self.low:g}"
        elif self.high is not None:
            kind += f" of at most {self.high:g}"
        if self.unit:
            kind += f" ({self.unit})"
        return kind + (", or null" if self.nullable else "")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"default": self.default, "type": self.type, "direction": self.direction}
        if self.unit:
            data["unit"] = self.unit
        if self.low is not None or self.high is not None:
            data["range"] = [self.low, self.high]
        if self.fail:
            data["fail"] = self.fail
        return data


Schema = Mapping[str, Threshold]  # key -> threshold, for one item or signal


def parse_schema(where: str, raw: Any, problems: list[str]) -> dict[str, Threshold]:
    """An item's (or signal's) `thresholds:` as Thresholds; problems are appended, named by `where`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: thresholds must be a mapping")
        return {}
    out: dict[str, Threshold] = {}
    for key, spec in raw.items():
        at = f"{where}: threshold {key}"
        if not isinstance(spec, dict) or "default" not in spec or "type" not in spec:
            problems.append(
                f"{at} must declare at least default and type, like {{default: 5, type: integer, ...}}"
            )
            continue
        extra = sorted(set(spec) - _SPEC_FIELDS)
        if extra:
            problems.append(f"{at}: unknown field(s) {', '.join(extra)}")
            continue
        kind = spec["type"]
        if kind not in TYPES:
            problems.append(f"{at}: type must be one of {', '.join(TYPES)}")
            continue
        numeric = kind in ("number", "integer")
        direction = spec.get("direction", None if numeric else "setting")
        if direction not in DIRECTIONS:
            problems.append(f"{at}: direction must be one of {', '.join(DIRECTIONS)}")
            continue
        bounds = spec.get("range", [None, None])
        if numeric and ("unit" not in spec or "range" not in spec):
            problems.append(f"{at}: a numeric threshold declares its unit and range")
            continue
        if not (isinstance(bounds, list) and len(bounds) == 2):
            problems.append(f"{at}: range must be [low, high] (null for unbounded)")
            continue
        t = Threshold(
            key=str(key), default=spec["default"], type=kind, unit=spec.get("unit"),
            low=bounds[0], high=bounds[1], direction=direction, fail=spec.get("fail"),
            nullable=bool(spec.get("nullable", False)),
        )  # fmt: skip
        wrong = t.problem(t.default)
        if wrong:
            problems.append(f"{at}: its default {wrong}")
            continue
        out[t.key] = t
    for t in out.values():
        if t.fail is not None:
            pair = out.get(t.fail)
            if pair is None or pair.direction != t.direction or t.direction == "setting":
                problems.append(
                    f"{where}: threshold {t.key} names fail level {t.fail}, which is not a limit of its kind"
                )
    problems.extend(f"{where}: {p}" for p in order_problems(out, {}))
    return out


def order_problems(schema: Schema, values: Mapping[str, Any]) -> list[str]:
    """Warn levels that would be reached after their fail level (`values` over the defaults)."""
    problems = []
    for t in schema.values():
        if t.fail is None:
            continue
        warn, fail = values.get(t.key, t.default), values.get(t.fail, schema[t.fail].default)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (warn, fail)):
            continue
        if t.direction == "higher_is_worse" and warn > fail:
            problems.append(
                f"{t.key} {warn:g} is above {t.fail} {fail:g}: higher is worse, so warn must come first "
                f"(warn <= fail)"
            )
        elif t.direction == "lower_is_worse" and warn < fail:
            problems.append(
                f"{t.key} {warn:g} is below {t.fail} {fail:g}: lower is worse, so warn must come first "
                f"(warn >= fail)"
            )
    return problems


def check_overrides(
    overrides: Mapping[str, Any], schemas: Mapping[str, Schema]
) -> list[tuple[tuple[str, ...], str]]:
    """Problems with `thresholds:` overrides as (key path under thresholds, message); empty when sound."""
    out: list[tuple[tuple[str, ...], str]] = []
    for item_id, values in overrides.items():
        schema = schemas.get(item_id)
        if schema is None:
            close = difflib.get_close_matches(str(item_id), list(schemas), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; see `lsready catalog --format json`"
            out.append(((str(item_id),), f"no such item or signal{hint}"))
            continue
        if not isinstance(values, dict):
            out.append(((item_id,), "must be a mapping of threshold names to values"))
            continue
        unknown = sorted(set(values) - set(schema))
        if unknown:
            known = ", ".join(sorted(schema)) or "none"
            out.append(((item_id,), f"unknown key(s) {', '.join(unknown)} (known: {known})"))
            continue
        bad = False
        for key, value in values.items():
            wrong = schema[key].problem(value)
            if wrong:
                out.append(((item_id, key), wrong))
                bad = True
        if not bad:
            out.extend(((item_id, _order_key(p)), p) for p in order_problems(schema, values))
    return out


def _order_key(problem: str) -> str:
    return problem.split(" ", 1)[0]


@dataclass(frozen=True)
class CatalogSchema:
    """What the catalog file declares, read without the probes: item ids, which are attestable, thresholds."""

    thresholds: Mapping[str, Schema]  # item or signal id -> its thresholds
    items: tuple[str, ...]
    attestable: frozenset[str]


@functools.cache
def catalog_schema(path: Path = CATALOG_PATH) -> CatalogSchema:
    """The catalog's threshold schema and item ids, read once; CatalogError when the file is inconsistent."""
    items, signals = read_catalog(path)
    problems: list[str] = []
    schemas: dict[str, Schema] = {}
    for entry in items:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            schemas[entry["id"]] = parse_schema(entry["id"], entry.get("thresholds"), problems)
    for signal_id, entry in signals.items():
        schemas[signal_id] = parse_schema(signal_id, (entry or {}).get("thresholds"), problems)
    if problems:
        raise CatalogError("; ".join(problems))
    ids = tuple(e["id"] for e in items if isinstance(e, dict) and isinstance(e.get("id"), str))
    attestable = frozenset(
        e["id"] for e in items
        if isinstance(e, dict) and (e.get("kind") == "manual" or e.get("attestable") is True)
    )  # fmt: skip
    return CatalogSchema(schemas, ids, attestable)


def read_catalog(path: Path = CATALOG_PATH) -> tuple[list[Any], dict[str, Any]]:
    """(items, triage-only signals) from the catalog file: the signals document, then the items list."""
    try:
        docs = [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from None
    items = [d for d in docs if isinstance(d, list)]
    signals = [d for d in docs if isinstance(d, dict)]
    if len(items) != 1 or len(signals) > 1 or len(docs) != len(items) + len(signals):
        raise CatalogError(f"catalog {path} must hold a `signals:` mapping and one list of items")
    found = signals[0].get("signals") if signals else {}
    if not isinstance(found, dict) or (signals and set(signals[0]) != {"signals"}):
        raise CatalogError(
            f"catalog {path}: the signals document is `signals: {{<id>: {{thresholds: ...}}}}`"
        )
    return items[0], found
