"""Runbook rehearsals: given step results, the engine takes this path and reaches this diagnosis.

The cases are data in tests/rehearsals/<runbook>.yaml; the coverage tests make sure every
transition of every runbook and every rule is rehearsed at least once. A step's result is a
status, or `{measured: {<reading>: <value>}}`: the step's real measurement grades those readings.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.errors import LsreadyError
from checks.model import Status
from checks.probes.clickhouse.reads import DiskUse
from checks.registry import load_catalog
from runbooks.definitions import FALLBACK, RULES, RUNBOOKS, SIGNALS
from runbooks.engine import RunbookError, diagnose, signals, validate, walk
from runbooks.measure import MEASURES
from runbooks.model import END, FromCatalog, Go, Runbook, StepResult
from runbooks.triage import resolve_thresholds

REHEARSALS = Path(__file__).with_name("rehearsals")
AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(REHEARSALS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            cases.append((path.stem, case))
    return cases


CASES = _cases()


class _Readings:
    """Made-up readings for a step's real measurement (runbooks.measure); no second sample."""

    TYPES: dict[str, Any] = {"clickhouse.disks": lambda disks: [DiskUse(**d) for d in disks]}

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = {k: self.TYPES.get(k, lambda v: v)(v) for k, v in values.items()}

    def value(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str) -> dict[str, Any]:
        raise LsreadyError(f"{name} is not part of this rehearsal")


def _result(book: Runbook, sid: str, given: str | dict[str, Any]) -> StepResult:
    """A step's result: a status as given, or what its measurement makes of `measured:` readings."""
    title = book.step(sid).title
    if isinstance(given, str):
        return StepResult(sid, title, Status(given), f"{sid} measured {given}", {}, AT, 0.1)
    params = {**resolve_thresholds(book, load_catalog()), "sample_interval_s": 0}
    ev = MEASURES[book.step(sid).measure].fn(_Readings(given["measured"]), params)
    return StepResult(sid, title, ev.status, ev.summary, dict(ev.observed), AT, 0.1)


def _results(book: Runbook, given: dict[str, str | dict[str, Any]]) -> dict[str, StepResult]:
    return {sid: _result(book, sid, value) for sid, value in given.items()}


def _edges(book: Runbook) -> set[tuple[str, str]]:
    """Every transition a runbook can take: (from step, to step or END)."""
    edges = set()
    for n, step in enumerate(book.steps):
        if step.next:
            edges.update((step.id, go.to) for go in step.next)
        else:
            edges.add((step.id, book.steps[n + 1].id if n + 1 < len(book.steps) else END))
    return edges


def _taken(path: list[str]) -> set[tuple[str, str]]:
    return set(zip(path, [*path[1:], END], strict=True))


@pytest.mark.parametrize(("runbook", "case"), CASES, ids=[f"{rb}: {c['name']}" for rb, c in CASES])
def test_rehearsal(runbook: str, case: dict[str, Any]) -> None:
    book = RUNBOOKS[runbook]
    path = walk(book, _results(book, case["results"]))
    assert [r.step_id for r in path] == case["path"]
    diagnosis = diagnose(book, path)
    assert (diagnosis.kind.value, diagnosis.rule) == (case["diagnosis"], case["rule"])
    for text in case.get("reasons_mention", []):
        assert any(text in r for r in diagnosis.reasons), (text, diagnosis.reasons)
    if "reasons_are" in case:
        by_title = {book.step(s).title: s for s in case["reasons_are"]}
        listed = [
            sid for title, sid in by_title.items() if any(f"] {title}:" in r for r in diagnosis.reasons)
        ]
        assert sorted(listed) == sorted(case["reasons_are"]) and len(diagnosis.reasons) == len(listed), (
            diagnosis.reasons
        )


# Actions that ask to scale or change a layer, by the signal that speaks for that layer.
_CHANGES = {"clickhouse": ("Scale ClickHouse", "more CPU and IOPS"), "queues": ("Scale the ingest workers",)}


@pytest.mark.parametrize(("runbook", "case"), CASES, ids=[f"{rb}: {c['name']}" for rb, c in CASES])
def test_a_diagnosis_never_contradicts_its_evidence(runbook: str, case: dict[str, Any]) -> None:
    """'Why' lists only supporting readings; no action changes a layer whose measured signals all
    passed, unless it names the unmeasured reading that would implicate it."""
    book = RUNBOOKS[runbook]
    path = walk(book, _results(book, case["results"]))
    diagnosis = diagnose(book, path)
    rule = next((r for r in (*RULES, FALLBACK) if r.id == diagnosis.rule), FALLBACK)
    read = signals(book, path)
    for step in path:
        listed = any(f"] {step.title}:" in r for r in diagnosis.reasons)
        accepted = rule.when.get(book.step(step.step_id).signal or "")
        if listed and rule.when:
            assert accepted is not None and (
                step.status in accepted or (step.status is Status.WARN and Status.FAIL in accepted)
            ), (step.step_id, step.status, diagnosis.reasons)
        if diagnosis.kind.value not in ("healthy", "inconclusive") and step.status is Status.PASS and listed:
            assert accepted is not None and Status.PASS in accepted, diagnosis.reasons
    for signal, phrases in _CHANGES.items():
        if read.get(signal) is Status.PASS:
            for action in diagnosis.actions:
                if any(p in action for p in phrases):
                    assert "Only if" in action and "not measure" in " ".join(diagnosis.actions), action


def test_every_transition_of_every_runbook_is_rehearsed() -> None:
    for name, book in RUNBOOKS.items():
        taken: set[tuple[str, str]] = set()
        for runbook, case in CASES:
            if runbook == name:
                taken |= _taken(case["path"])
        assert _edges(book) - taken == set(), f"{name} has unrehearsed transitions"


def test_every_rule_is_rehearsed() -> None:
    reached = {case["rule"] for _, case in CASES}
    assert {r.id for r in (*RULES, FALLBACK)} - reached == set()


def test_every_runbook_has_rehearsals_and_no_rehearsal_names_an_unknown_runbook() -> None:
    assert {rb for rb, _ in CASES} == set(RUNBOOKS)


def test_definitions_are_consistent_and_their_catalog_thresholds_exist() -> None:
    catalog = load_catalog()
    for book in RUNBOOKS.values():
        validate(book, list(MEASURES), list(SIGNALS))
        resolved = resolve_thresholds(book, catalog)
        assert not any(isinstance(v, FromCatalog) for v in resolved.values())
    assert resolve_thresholds(RUNBOOKS["queue-depth"], catalog)["queue_warn"] == 50


def test_config_threshold_overrides_reach_the_runbooks() -> None:
    catalog = load_catalog(
        thresholds={"redis.monitored": {"queue_warn": 5}, "ops.alerts": {"ingestion_delay_p95_s": 9}}
    )
    resolved = resolve_thresholds(RUNBOOKS["trace-visibility"], catalog)
    assert (resolved["queue_warn"], resolved["delay_warn_s"]) == (5, 9)
    assert resolved["oldest_fail_s"] == catalog.signals["triage.queues"]["oldest_fail_s"] == 600
    # A triage-only signal is overridden the same way, by its id in the catalog's signals.
    signal = load_catalog(thresholds={"triage.queues": {"oldest_fail_s": 900}})
    assert resolve_thresholds(RUNBOOKS["queue-depth"], signal)["oldest_fail_s"] == 900


def test_runbooks_keep_no_number_of_their_own() -> None:
    """Every runbook threshold is a reference into the catalog file, never a value in code."""
    for book in RUNBOOKS.values():
        assert all(isinstance(v, FromCatalog) for v in book.thresholds.values())


def test_a_backwards_transition_is_refused() -> None:
    book = RUNBOOKS["queue-depth"]
    broken = replace(book, steps=(*book.steps[:2], replace(book.steps[2], next=(Go("queue-drain"),))))
    with pytest.raises(RunbookError, match="not a later step"):
        validate(broken, list(MEASURES), list(SIGNALS))


def test_saturation_says_not_to_add_workers_first_and_shows_the_deciding_evidence() -> None:
    book = RUNBOOKS["queue-depth"]
    results = _results(book, {"queue-drain": "fail", "clickhouse-load": "fail", "merges": "pass"})
    d = diagnose(book, walk(book, results), {"fullname": "acme-langsmith", "namespace": "obs"})
    assert d.actions[0].startswith(
        "Do not add queue workers (acme-langsmith-queue, acme-langsmith-ingest-queue)"
    )
    assert any("CLICKHOUSE_ASYNC_INSERT_WAIT_PCT_FLOAT=0" in a and "not a fix" in a for a in d.actions)
    assert "[fail] ClickHouse query concurrency and disk I/O: clickhouse-load measured fail" in d.reasons


def test_backpressure_scales_the_ingest_deployments_of_the_release() -> None:
    book = RUNBOOKS["queue-depth"]
    results = _results(book, {"queue-drain": "fail", "clickhouse-load": "pass", "merges": "pass"})
    d = diagnose(book, walk(book, results), {"fullname": "acme-langsmith", "namespace": "obs"})
    assert "kubectl -n obs scale deploy/acme-langsmith-ingest-queue" in d.actions[0]
    assert "deploy/acme-langsmith-queue" in d.actions[0]


def test_inconclusive_names_what_could_not_be_measured() -> None:
    book = RUNBOOKS["trace-visibility"]
    statuses = {"snapshot": "warn", "clickhouse-load": "pass", "queue-drain": "unknown"}
    statuses |= {"merges": "pass", "ingestion-delay": "pass"}
    d = diagnose(book, walk(book, _results(book, statuses)))
    assert d.headline.startswith("Inconclusive: queue depth and worker drain rate could not be measured")
    assert not any("queue-drain" in r for r in d.reasons)  # said once, under unmeasured
    assert d.unmeasured == ("Queue depth and worker drain rate: queue-drain measured unknown",)


def test_healthy_says_the_data_is_not_missing() -> None:
    book = RUNBOOKS["ingestion-delay"]
    d = diagnose(book, walk(book, _results(book, {"ingestion-delay": "pass"})))
    assert "the data is not missing" in d.headline
    assert d.unmeasured == ()
