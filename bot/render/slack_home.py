"""The App Home tab: each target's readiness board from its latest stored check."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block, ButtonElement, DividerBlock, HeaderBlock
from slack_sdk.models.views import View

from bot import actions
from bot.render.blocks import actions_row, button, context, section, section_lines
from bot.render.limits import (
    HEADER_TEXT,
    MAX_BLOCKS,
    button_value,
    clip,
    finish_view,
    fit_blocks,
    more_block,
    plain,
)
from bot.render.slack_text import line, macros
from checks.registry import Catalog
from checks.secrets import Redactor
from storage.acks import Ack
from storage.history import StoredRun

ITEM_SUMMARY = 400  # a waiting item's summary, in one section of its own


@dataclass(frozen=True)
class Board:
    """One target as the home tab shows it; `acked` holds items acknowledged since the run."""

    target: str
    run: StoredRun | None
    expiring: Sequence[Ack] = ()
    acked: Collection[str] = field(default_factory=frozenset)


def render_home(
    boards: Sequence[Board],
    catalog: Catalog,
    allowed: Collection[str],
    redactor: Redactor,
    *,
    notice: str | None = None,
) -> dict[str, Any]:
    t = macros("slack_home.j2")
    blocks: list[Block] = [section(line(t.intro))]
    if notice and notice.strip():
        blocks.append(context(line(t.notice, notice)))
    if "status" not in allowed:
        blocks.append(section(line(t.no_access)))
        return finish_view(View(type="home", blocks=blocks), redactor)
    fixed = 7 * len(boards) + len(blocks) + 1
    per_target = max(0, (MAX_BLOCKS["home"] - fixed) // max(1, len(boards)))
    for n, board in enumerate(boards):
        blocks += _board(board, catalog, allowed, per_target, n)
    more = lambda k: more_block(k, "Use `/langsmith status <target>` for the rest.")  # noqa: E731
    return finish_view(View(type="home", blocks=fit_blocks(blocks, MAX_BLOCKS["home"], more)), redactor)


def _board(board: Board, catalog: Catalog, allowed: Collection[str], cap: int, n: int) -> list[Block]:
    t = macros("slack_home.j2")
    blocks: list[Block] = [HeaderBlock(text=plain(board.target, HEADER_TEXT))]
    run = board.run
    if run is None:
        blocks.append(section(line(t.never_checked, board.target)))
    else:
        blocks.append(section(line(t.score, board.target, run)))
        failing = list(run.score.get("required_failing") or [])
        if failing:
            lines = [line(t.failing_title, len(failing))]
            lines += [line(t.failing_item, i, clip(run.summaries.get(i, ""), ITEM_SUMMARY)) for i in failing]
            blocks.append(section_lines(lines))
        waiting = [catalog.get(i) for i, s in sorted(run.statuses.items()) if s == "manual"]
        waiting = [i for i in waiting if i is not None and i.attestable and i.id not in board.acked]
        for k, item in enumerate(waiting[:cap]):
            block = section(line(t.waiting, item, clip(run.summaries.get(item.id, ""), ITEM_SUMMARY)))
            value = button_value(t=board.target, i=item.id)
            if "ack" in allowed and value is not None:
                block.accessory = ButtonElement(
                    text="Acknowledge", value=value, action_id=actions.param(actions.ACK_OPEN, f"{n}.{k}")
                )
            blocks.append(block)
        if len(waiting) > cap:
            blocks.append(more_block(len(waiting) - cap, "`/langsmith check` lists every waiting item."))
    if board.expiring:
        lines = [line(t.expiring, a) for a in board.expiring]
        blocks.append(section_lines(lines))
    value = button_value(t=board.target, home=1)
    if "check" in allowed and value is not None:
        blocks += actions_row([button("Run check", actions.param(actions.HOME_CHECK, n), value)])
    blocks.append(DividerBlock())
    return blocks
