"""`/langsmith help`: the commands the caller may run, and what went wrong if they mistyped one."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from slack_sdk.models.blocks import Block

from bot.commands import ACCESS, USAGE
from bot.render.blocks import context, section, section_lines
from bot.render.limits import Message, finish
from bot.render.slack_text import line, macros
from checks.secrets import Redactor


def render_help(
    allowed: Collection[str],
    redactor: Redactor,
    *,
    problem: str | None = None,
    targets: Sequence[str] = (),
    runbooks: Sequence[str] = (),
) -> Message:
    """Restricted commands the caller may not run are left out, only counted."""
    t = macros("slack_help.j2")
    blocks: list[Block] = []
    if problem:
        blocks.append(section(line(t.problem, problem)))
    shown = [name for name in USAGE if name == "help" or ACCESS.get(name, name) in allowed]
    lines = [line(t.command, *USAGE[name]) for name in shown]
    blocks.append(section_lines(lines))
    notes = [line(t.choices, list(targets), list(runbooks))]
    if len(shown) < len(USAGE):
        notes.append(line(t.hidden, len(USAGE) - len(shown)))
    blocks.append(context(*notes))
    text = problem or "lsready commands: " + ", ".join(shown)
    return finish(text, blocks, redactor)
