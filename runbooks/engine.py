"""The runbook engine: pure functions from step results to the next step and to a diagnosis.

No I/O, no clock, no thresholds: measurements grade their values (runbooks.measure), this module
only reads statuses, so every branch can be rehearsed with made-up results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from checks.errors import LsreadyError
from checks.model import Status
from runbooks.model import END, Diagnosis, Rule, Runbook, StepResult

# How one signal reads several steps: a definite problem outranks not knowing, which outranks a
# mere warning, so a half-measured ClickHouse never passes for a healthy one.
_SIGNAL_ORDER = (Status.FAIL, Status.UNKNOWN, Status.WARN, Status.PASS)


class RunbookError(LsreadyError):
    """A runbook definition is inconsistent (unknown step, backwards transition, unknown signal)."""


def next_step(book: Runbook, done: Sequence[StepResult]) -> str | None:
    """The id of the step to run after `done` (the path so far), or None when the walk is over."""
    if not done:
        return book.steps[0].id if book.steps else None
    step = book.step(done[-1].step_id)
    if not step.next:
        following = book.index(step.id) + 1
        return book.steps[following].id if following < len(book.steps) else None
    by_id = {r.step_id: r for r in done}
    for go in step.next:
        if go.when is None or (go.when.step in by_id and by_id[go.when.step].status in go.when.status):
            return None if go.to == END else go.to
    return None


def walk(book: Runbook, results: Mapping[str, StepResult]) -> list[StepResult]:
    """The path the engine takes through `results` (step id -> result); stops at a missing result."""
    path: list[StepResult] = []
    while (step_id := next_step(book, path)) is not None and step_id in results:
        path.append(results[step_id])
    return path


def signals(book: Runbook, done: Sequence[StepResult]) -> dict[str, Status | None]:
    """Each signal of the runbook read from the path: the worst status of its steps, None if none ran."""
    out: dict[str, Status | None] = {s.signal: None for s in book.steps if s.signal}
    for result in done:
        signal = book.step(result.step_id).signal
        if signal is None:
            continue
        current = out[signal]
        out[signal] = result.status if current is None else _worse(current, result.status)
    return out


def _worse(a: Status, b: Status) -> Status:
    rank = {s: n for n, s in enumerate(_SIGNAL_ORDER)}
    return a if rank.get(a, 0) <= rank.get(b, 0) else b


def matches(rule: Rule, read: Mapping[str, Status | None]) -> bool:
    """Every listed signal is in its set, and at least one of them was measured."""
    if not rule.when:
        return True
    if all(read.get(signal) is None for signal in rule.when):
        return False
    return all(read.get(signal) in accepted for signal, accepted in rule.when.items())


def diagnose(
    book: Runbook, done: Sequence[StepResult], context: Mapping[str, str] | None = None
) -> Diagnosis:
    """The first rule that matches the path's signals, else the runbook's fallback, filled in."""
    read = signals(book, done)
    rule = next((r for r in book.rules if matches(r, read)), book.fallback)
    unknown = [r for r in done if r.status is Status.UNKNOWN]
    fill = {
        "fullname": "langsmith",
        "namespace": "langsmith",
        **(context or {}),
        "unmeasured": ", ".join(_lower_first(r.title) for r in unknown) or "nothing",
    }
    return Diagnosis(
        kind=rule.kind,
        headline=rule.headline.format(**fill),
        reasons=tuple(_reasons(book, rule, done)),
        actions=tuple(a.format(**fill) for a in rule.actions),
        unmeasured=tuple(f"{r.title}: {r.summary}" for r in unknown),
        rule=rule.id,
    )


def _reasons(book: Runbook, rule: Rule, done: Sequence[StepResult]) -> list[str]:
    """The measured readings that support the rule: each step of a signal the rule reads whose own
    status is one the rule accepts for it (a warning also supports a failure). A passing step beside
    a failing one of the same signal is not a reason for a problem. The fallback lists every reading.

    Unknown steps are left to `unmeasured`, so nothing is said twice.
    """
    signal_of = {s.id: s.signal for s in book.steps}
    if not rule.when:
        wanted = {s.signal for s in book.steps if s.signal}
        return [_reason(r) for r in done if signal_of[r.step_id] in wanted and r.status is not Status.UNKNOWN]
    out = []
    for r in done:
        accepted = rule.when.get(signal_of[r.step_id] or "")
        if accepted is None or r.status is Status.UNKNOWN:
            continue
        if r.status in accepted or (r.status is Status.WARN and Status.FAIL in accepted):
            out.append(_reason(r))
    return out


def _reason(r: StepResult) -> str:
    return f"[{r.status.value}] {r.title}: {r.summary}"


def _lower_first(text: str) -> str:
    """'Queue depth' -> 'queue depth', but 'ClickHouse load' stays as it is."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first[1:].islower() else text


def validate(book: Runbook, measures: Sequence[str], known_signals: Sequence[str]) -> None:
    """Refuse transitions that go backwards or nowhere, and unknown measures or signals."""
    problems: list[str] = []
    ids = [s.id for s in book.steps]
    if len(set(ids)) != len(ids):
        problems.append("duplicate step ids")
    for n, step in enumerate(book.steps):
        if step.measure not in measures:
            problems.append(f"step {step.id}: unknown measure '{step.measure}'")
        if step.signal is not None and step.signal not in known_signals:
            problems.append(f"step {step.id}: unknown signal '{step.signal}'")
        for go in step.next:
            if go.to != END and (go.to not in ids or ids.index(go.to) <= n):
                problems.append(f"step {step.id}: goes to '{go.to}', which is not a later step")
            if go.when is not None and (go.when.step not in ids or ids.index(go.when.step) > n):
                problems.append(f"step {step.id}: condition reads '{go.when.step}', which has not run yet")
    for rule in (*book.rules, book.fallback):
        for signal in sorted(set(rule.when) - set(known_signals)):
            problems.append(f"rule {rule.id}: unknown signal '{signal}'")
    if problems:
        raise RunbookError(f"runbook {book.name}: " + "; ".join(problems))
