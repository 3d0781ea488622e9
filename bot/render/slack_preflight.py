"""An upgrade preflight as a live Slack checklist: one line per step, then the verdict and findings."""

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
    CONTEXT_TEXT,
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
from runbooks.preflight import STEPS, Level, PreflightResult, PreflightStep

STEP_LINE = 600
VERDICT_EMOJI = {
    "ready": ":white_check_mark:",
    "ready_with_warnings": ":warning:",
    "not_ready": ":no_entry:",
    "inconclusive": ":grey_question:",
}
SECTIONS = (
    (Level.BLOCKING, "Blocking: clear each before `helm upgrade`"),
    (Level.WARNING, "Warnings"),
    (Level.NOTE, "Notes"),
)


def _t() -> Any:
    return macros("slack_preflight.j2")


def _checklist(done: Sequence[PreflightStep], *, finished: bool) -> str:
    t = _t()
    lines = [line(t.step_done, s) for s in done]
    ran = {s.step_id for s in done}
    pending = [s for s in STEPS if s.id not in ran]
    if not finished:
        lines += [line(t.step_running if i == 0 else t.step_waiting, s.title) for i, s in enumerate(pending)]
    return fit_lines([clip(x, STEP_LINE) for x in lines] or ["_No steps._"], SECTION_TEXT)


def _header(target: str, to: str | None) -> HeaderBlock:
    return HeaderBlock(text=clip(line(_t().title, target, to), HEADER_TEXT))


def render_preflight_progress(
    target: str, to: str | None, done: Sequence[PreflightStep], started: datetime, redactor: Redactor
) -> Message:
    """While it runs: finished steps, the running one, the ones waiting."""
    blocks: list[Block] = [
        _header(target, to),
        SectionBlock(text=MarkdownTextObject(text=_checklist(done, finished=False))),
        ContextBlock(elements=[MarkdownTextObject(text=line(_t().running_footer, started))]),
    ]
    return finish(
        line(_t().starting, target), blocks, redactor, metadata=actions.metadata(target, "preflight")
    )


def render_preflight_stopped(
    target: str, to: str | None, done: Sequence[PreflightStep], redactor: Redactor
) -> Message:
    blocks: list[Block] = [
        _header(target, to),
        SectionBlock(text=MarkdownTextObject(text=_checklist(done, finished=True))),
        SectionBlock(text=MarkdownTextObject(text=line(_t().stopped))),
    ]
    return finish(
        f"Upgrade preflight on {target} stopped",
        blocks,
        redactor,
        metadata=actions.metadata(target, "preflight"),
    )


def render_preflight_result(result: PreflightResult, redactor: Redactor, *, snapshot: str | None) -> Message:
    """The verdict first, then what blocks, what warns, the checklist and what was not read."""
    t = _t()
    v = result.verdict.value
    blocks: list[Block] = [
        _header(result.target, result.to_version),
        SectionBlock(
            text=MarkdownTextObject(
                text=clip(line(t.verdict, VERDICT_EMOJI[v], result.headline), SECTION_TEXT)
            )
        ),
    ]
    for level, label in SECTIONS:
        found = result.findings(level)
        if found:
            lines = [f"*{label}*", *(line(t.finding, f) for f in found)]
            blocks.append(SectionBlock(text=MarkdownTextObject(text=fit_lines(lines, SECTION_TEXT))))
    blocks.append(SectionBlock(text=MarkdownTextObject(text=_checklist(result.steps, finished=True))))
    if result.unmeasured:
        lines = ["*Not read*", *(line(t.bullet, u) for u in result.unmeasured)]
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit_lines(lines, SECTION_TEXT))))
    footer = f"{line(t.values_note, result.values_file)} · {line(t.done_footer, result)}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(footer, CONTEXT_TEXT))]))
    buttons = []
    rerun = button_value(t=result.target, v=result.to_version)
    if rerun is not None:
        buttons.append(
            ButtonElement(text="Re-run", action_id=actions.PREFLIGHT_RERUN, value=rerun, style="primary")
        )
    if snapshot is not None:
        buttons.append(ButtonElement(text="Show evidence", action_id=actions.EVIDENCE, value=snapshot))
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    text = line(t.fallback, result.target, result.headline)
    return finish(text, blocks, redactor, metadata=actions.metadata(result.target, "preflight"))
