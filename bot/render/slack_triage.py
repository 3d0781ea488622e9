"""A triage as a live Slack checklist: one line per step, then the diagnosis, actions and buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, HeaderBlock

from bot import actions
from bot.render.blocks import (
    actions_row,
    bundle_button,
    button,
    context,
    evidence_button,
    header,
    section,
    section_lines,
)
from bot.render.checklist import checklist, progress_blocks, stopped_blocks
from bot.render.limits import ACTION_ELEMENTS, Message, button_value, finish
from bot.render.slack_text import line, macros
from checks.secrets import Redactor
from runbooks.model import Runbook, StepResult, TriageResult

OWN_BUTTONS = 5  # Re-run, Run all, Show evidence, the bundle, and one spare


def _t() -> Any:
    return macros("slack_triage.j2")


def _checklist(runbook: Runbook, done: Sequence[StepResult], *, finished: bool) -> str:
    ran = {s.step_id for s in done}
    pending = [s.title for s in runbook.steps if s.id not in ran]
    return checklist(_t(), [_step(s) for s in done], pending, finished=finished, skipped=True)


def _step(s: StepResult) -> dict[str, Any]:
    return {"status": s.status.value, "title": s.title, "summary": s.summary, "duration_s": s.duration_s}


def _header(runbook: Runbook, target: str) -> HeaderBlock:
    return header(line(_t().title, runbook.title, target))


def render_progress(
    runbook: Runbook,
    target: str,
    done: Sequence[StepResult],
    started: datetime,
    redactor: Redactor,
    *,
    by: str | None = None,
) -> Message:
    """The message while the runbook runs: finished steps, the running one, the ones waiting."""
    steps = _checklist(runbook, done, finished=False)
    blocks = progress_blocks(_header(runbook, target), steps, line(_t().running_footer, started, by))
    text = line(_t().starting, runbook.name, target, by)
    return finish(text, blocks, redactor, metadata=actions.metadata(target, "triage"))


def render_stopped(runbook: Runbook, target: str, done: Sequence[StepResult], redactor: Redactor) -> Message:
    """The message when the triage raised: what finished, and that it stopped."""
    blocks = stopped_blocks(
        _header(runbook, target), _checklist(runbook, done, finished=True), line(_t().stopped)
    )
    return finish(
        f"{runbook.name} triage on {target} stopped",
        blocks,
        redactor,
        metadata=actions.metadata(target, "triage"),
    )


def render_result(
    result: TriageResult,
    runbook: Runbook,
    redactor: Redactor,
    *,
    snapshot: str | None,
    others: Sequence[str] = (),
    by: str | None = None,
) -> Message:
    """The finished triage: diagnosis first, the checklist, why, what to do, what was not measured."""
    t = _t()
    d = result.diagnosis
    blocks: list[Block] = [
        _header(runbook, result.target),
        section(line(t.diagnosis, {"kind": d.kind.value, "headline": d.headline})),
        section(_checklist(runbook, result.steps, finished=True)),
    ]
    for label, items in (("Why", d.reasons), ("What to do", d.actions), ("Not measured", d.unmeasured)):
        if items:
            lines = [f"*{label}*", *(line(t.bullet, i) for i in items)]
            blocks.append(section_lines(lines))
    blocks.append(context(line(t.done_footer, result, by)))
    blocks += _buttons(result.target, runbook.name, snapshot, others)
    text = line(t.fallback, runbook.name, result.target, d.headline)
    return finish(text, blocks, redactor, metadata=actions.metadata(result.target, "triage"))


def _buttons(target: str, runbook: str, snapshot: str | None, others: Sequence[str]) -> list[Block]:
    rerun = button_value(t=target, r=runbook)
    buttons = [button("Re-run", actions.TRIAGE_RERUN, rerun, primary=True)] if rerun is not None else []
    for n, name in enumerate(others[: ACTION_ELEMENTS - OWN_BUTTONS]):
        value = button_value(t=target, r=name)
        if value is not None:
            buttons.append(button(f"Run {name}", actions.param(actions.TRIAGE_RUN, n), value))
    run_all = button_value(t=target)
    if others and run_all is not None:
        buttons.append(button("Run all runbooks", actions.TRIAGE_RUN_ALL, run_all))
    return actions_row(buttons + evidence_button(snapshot) + bundle_button(target, snapshot))
