"""A triage as a live Slack checklist: one line per step, then the diagnosis, actions and buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import actions
from bot.render.limits import (
    ACTION_ELEMENTS,
    BUTTON_TEXT,
    HEADER_TEXT,
    SECTION_TEXT,
    Message,
    button_value,
    clip,
    finish,
    fit_lines,
)
from bot.render.slack_text import line, macros
from checks.secrets import Redactor
from runbooks.model import Runbook, StepResult, TriageResult

OWN_BUTTONS = 5  # Re-run, Run all, Show evidence, the bundle, and one spare
STEP_LINE = 600  # one step's line; the whole checklist still has to fit one section


def _t() -> Any:
    return macros("slack_triage.j2")


def _checklist(runbook: Runbook, done: Sequence[StepResult], *, finished: bool) -> str:
    t = _t()
    lines = [line(t.step_done, _step(s)) for s in done]
    ran = {s.step_id for s in done}
    pending = [s for s in runbook.steps if s.id not in ran]
    for i, step in enumerate(pending):
        if finished:
            lines.append(line(t.step_skipped, step.title))
        else:
            lines.append(line(t.step_running if i == 0 else t.step_waiting, step.title))
    return fit_lines([clip(x, STEP_LINE) for x in lines] or ["_No steps._"], SECTION_TEXT)


def _step(s: StepResult) -> dict[str, Any]:
    return {"status": s.status.value, "title": s.title, "summary": s.summary, "duration_s": s.duration_s}


def _header(runbook: Runbook, target: str) -> HeaderBlock:
    return HeaderBlock(text=clip(line(_t().title, runbook.title, target), HEADER_TEXT))


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
    blocks: list[Block] = [
        _header(runbook, target),
        SectionBlock(text=MarkdownTextObject(text=_checklist(runbook, done, finished=False))),
        ContextBlock(elements=[MarkdownTextObject(text=line(_t().running_footer, started, by))]),
    ]
    text = line(_t().starting, runbook.name, target, by)
    return finish(text, blocks, redactor, metadata=actions.metadata(target, "triage"))


def render_stopped(runbook: Runbook, target: str, done: Sequence[StepResult], redactor: Redactor) -> Message:
    """The message when the triage raised: what finished, and that it stopped."""
    blocks: list[Block] = [
        _header(runbook, target),
        SectionBlock(text=MarkdownTextObject(text=_checklist(runbook, done, finished=True))),
        SectionBlock(text=MarkdownTextObject(text=line(_t().stopped))),
    ]
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
        SectionBlock(
            text=MarkdownTextObject(
                text=clip(line(t.diagnosis, {"kind": d.kind.value, "headline": d.headline}), SECTION_TEXT)
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=_checklist(runbook, result.steps, finished=True))),
    ]
    for label, items in (("Why", d.reasons), ("What to do", d.actions), ("Not measured", d.unmeasured)):
        if items:
            lines = [f"*{label}*", *(line(t.bullet, i) for i in items)]
            blocks.append(SectionBlock(text=MarkdownTextObject(text=fit_lines(lines, SECTION_TEXT))))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=line(t.done_footer, result, by))]))
    blocks += _buttons(result.target, runbook.name, snapshot, others)
    text = line(t.fallback, runbook.name, result.target, d.headline)
    return finish(text, blocks, redactor, metadata=actions.metadata(result.target, "triage"))


def bundle_button(target: str, snapshot: str | None = None) -> list[ButtonElement]:
    """ "Prepare support bundle": its triage evidence is the snapshot the message shows, when there is one."""
    value = button_value(t=target, k=snapshot)
    if value is None:
        return []
    return [ButtonElement(text="Prepare support bundle", action_id=actions.BUNDLE_PREPARE, value=value)]


def _buttons(target: str, runbook: str, snapshot: str | None, others: Sequence[str]) -> list[Block]:
    buttons = []
    rerun = button_value(t=target, r=runbook)
    if rerun is not None:
        buttons.append(
            ButtonElement(text="Re-run", action_id=actions.TRIAGE_RERUN, value=rerun, style="primary")
        )
    for n, name in enumerate(others[: ACTION_ELEMENTS - OWN_BUTTONS]):
        value = button_value(t=target, r=name)
        if value is not None:
            buttons.append(
                ButtonElement(
                    text=clip(f"Run {name}", BUTTON_TEXT),
                    action_id=actions.param(actions.TRIAGE_RUN, n),
                    value=value,
                )
            )
    run_all = button_value(t=target)
    if others and run_all is not None:
        buttons.append(
            ButtonElement(text="Run all runbooks", action_id=actions.TRIAGE_RUN_ALL, value=run_all)
        )
    if snapshot is not None:
        buttons.append(ButtonElement(text="Show evidence", action_id=actions.EVIDENCE, value=snapshot))
    buttons += bundle_button(target, snapshot)
    return [ActionsBlock(elements=buttons)] if buttons else []
