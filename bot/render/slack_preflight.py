"""An upgrade preflight as a live Slack checklist: one line per step, then the verdict and findings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, HeaderBlock

from bot import actions
from bot.render.blocks import actions_row, button, context, evidence_button, header, section, section_lines
from bot.render.checklist import checklist, progress_blocks, stopped_blocks
from bot.render.limits import Message, button_value, finish
from bot.render.slack_text import line, macros
from checks.secrets import Redactor
from runbooks.preflight import STEPS, Level, PreflightResult, PreflightStep

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
    ran = {s.step_id for s in done}
    return checklist(_t(), done, [s.title for s in STEPS if s.id not in ran], finished=finished)


def _header(target: str, to: str | None) -> HeaderBlock:
    return header(line(_t().title, target, to))


def render_preflight_progress(
    target: str, to: str | None, done: Sequence[PreflightStep], started: datetime, redactor: Redactor
) -> Message:
    """While it runs: finished steps, the running one, the ones waiting."""
    blocks = progress_blocks(
        _header(target, to), _checklist(done, finished=False), line(_t().running_footer, started)
    )
    return finish(
        line(_t().starting, target), blocks, redactor, metadata=actions.metadata(target, "preflight")
    )


def render_preflight_stopped(
    target: str, to: str | None, done: Sequence[PreflightStep], redactor: Redactor
) -> Message:
    blocks = stopped_blocks(_header(target, to), _checklist(done, finished=True), line(_t().stopped))
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
        section(line(t.verdict, VERDICT_EMOJI[v], result.headline)),
    ]
    for level, label in SECTIONS:
        found = result.findings(level)
        if found:
            lines = [f"*{label}*", *(line(t.finding, f) for f in found)]
            blocks.append(section_lines(lines))
    blocks.append(section(_checklist(result.steps, finished=True)))
    if result.unmeasured:
        lines = ["*Not read*", *(line(t.bullet, u) for u in result.unmeasured)]
        blocks.append(section_lines(lines))
    footer = f"{line(t.values_note, result.values_file)} · {line(t.done_footer, result)}"
    blocks.append(context(footer))
    rerun = button_value(t=result.target, v=result.to_version)
    buttons = [button("Re-run", actions.PREFLIGHT_RERUN, rerun, primary=True)] if rerun is not None else []
    blocks += actions_row(buttons + evidence_button(snapshot))
    text = line(t.fallback, result.target, result.headline)
    return finish(text, blocks, redactor, metadata=actions.metadata(result.target, "preflight"))
