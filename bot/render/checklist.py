"""The live checklist a triage and a preflight both draw: one line per step, updated as each ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.render.blocks import context, section
from bot.render.limits import SECTION_TEXT, clip, fit_lines
from bot.render.slack_text import line

STEP_LINE = 600  # one step's line; the whole checklist still has to fit one section


def checklist(
    t: Any, done: Sequence[Any], pending: Sequence[str], *, finished: bool, skipped: bool = False
) -> str:
    """`t.step_done` per finished step; then, while running, the running step and those waiting;
    once finished, with `skipped`, the steps not run (`t.step_skipped`)."""
    lines = [line(t.step_done, s) for s in done]
    for i, title in enumerate(pending):
        if not finished:
            lines.append(line(t.step_running if i == 0 else t.step_waiting, title))
        elif skipped:
            lines.append(line(t.step_skipped, title))
    return fit_lines([clip(x, STEP_LINE) for x in lines] or ["_No steps._"], SECTION_TEXT)


def progress_blocks(head: HeaderBlock, steps: str, footer: str) -> list[Block]:
    """While it runs: the checklist, and when it started."""
    return [head, section(steps), context(footer)]


def stopped_blocks(head: HeaderBlock, steps: str, stopped: str) -> list[Block]:
    """When it raised: what finished, and that it stopped."""
    return [head, section(steps), section(stopped)]
