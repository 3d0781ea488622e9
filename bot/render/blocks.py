"""The Block Kit pieces every message renderer builds, each cut to Slack's limits."""

from __future__ import annotations

from collections.abc import Sequence

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
    BUTTON_TEXT,
    CONTEXT_TEXT,
    HEADER_TEXT,
    SECTION_TEXT,
    button_value,
    clip,
    fit_lines,
)


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=clip(text, HEADER_TEXT))


def section(text: str) -> SectionBlock:
    """One mrkdwn section; longer text is cut."""
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_TEXT)))


def section_lines(lines: Sequence[str]) -> SectionBlock:
    """One mrkdwn section of whole lines; those that do not fit are counted."""
    return SectionBlock(text=MarkdownTextObject(text=fit_lines(lines, SECTION_TEXT)))


def context(*texts: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(t, CONTEXT_TEXT)) for t in texts])


def button(text: str, action_id: str, value: str | None, *, primary: bool = False) -> ButtonElement:
    style = "primary" if primary else None
    return ButtonElement(text=clip(text, BUTTON_TEXT), action_id=action_id, value=value, style=style)


def evidence_button(snapshot: str | None) -> list[ButtonElement]:
    """ "Show evidence" for the stored snapshot the message was drawn from, when there is one."""
    return [] if snapshot is None else [button("Show evidence", actions.EVIDENCE, snapshot)]


def bundle_button(target: str, snapshot: str | None = None) -> list[ButtonElement]:
    """ "Prepare support bundle": its triage evidence is the snapshot the message shows, when there is one."""
    value = button_value(t=target, k=snapshot)
    return [] if value is None else [button("Prepare support bundle", actions.BUNDLE_PREPARE, value)]


def actions_row(buttons: Sequence[ButtonElement]) -> list[Block]:
    """The buttons as one actions block, or no block when there are none."""
    return [ActionsBlock(elements=list(buttons))] if buttons else []
