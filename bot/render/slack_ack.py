"""Acknowledgements in Slack: the modal that records one, its confirmation, the expiry reminder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
    UrlInputElement,
)
from slack_sdk.models.views import View

from bot import actions
from bot.render.limits import (
    NOTE_INPUT,
    OPTION_TEXT,
    OPTIONS,
    PRIVATE_METADATA,
    SECTION_TEXT,
    Message,
    clip,
    finish,
    finish_view,
)
from bot.render.slack_text import line, macros
from checks.errors import LsreadyError
from checks.model import Item
from checks.secrets import Redactor
from storage.acks import Ack


class ModalTooLarge(LsreadyError):
    """The modal's context does not fit Slack's private_metadata."""


def render_ack_modal(
    target: str,
    items: Sequence[Item],
    redactor: Redactor,
    *,
    preselected: str | None = None,
    default_days: int = 90,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Item (preselected when opened from an item's button), note, validity, evidence link."""
    t = macros("slack_ack.j2")
    options = [Option(text=clip(f"{i.id}: {i.title}", OPTION_TEXT), value=i.id) for i in items[:OPTIONS]]
    initial = next((o for o in options if o.value == preselected), None)
    meta = json.dumps({"t": target, **(context or {})}, separators=(",", ":"))
    if len(meta) > PRIVATE_METADATA:
        raise ModalTooLarge("this target's name is too long to acknowledge from Slack; use `lsready ack`")
    view = View(
        type="modal",
        callback_id=actions.ACK_MODAL,
        private_metadata=meta,
        title=PlainTextObject(text="Acknowledge item"),
        submit=PlainTextObject(text="Acknowledge"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(line(t.modal_intro, target), SECTION_TEXT))),
            InputBlock(
                block_id=actions.ACK_ITEM_BLOCK,
                label="Checklist item",
                element=StaticSelectElement(
                    action_id=actions.ACK_ITEM,
                    options=options,
                    initial_option=initial,
                    placeholder="Choose an item",
                ),
            ),
            InputBlock(
                block_id=actions.ACK_NOTE_BLOCK,
                label="What was done",
                element=PlainTextInputElement(
                    action_id=actions.ACK_NOTE,
                    multiline=True,
                    max_length=NOTE_INPUT,
                    placeholder="e.g. restore drill on 2026-11-20, 40 min",
                ),
            ),
            InputBlock(
                block_id=actions.ACK_EXPIRY_BLOCK,
                label="Valid for",
                hint="Days (90d), weeks (2w), hours (12h) or months (3mo).",
                element=PlainTextInputElement(
                    action_id=actions.ACK_EXPIRY, initial_value=f"{default_days}d", max_length=20
                ),
            ),
            InputBlock(
                block_id=actions.ACK_LINK_BLOCK,
                label="Evidence link",
                optional=True,
                element=UrlInputElement(action_id=actions.ACK_LINK, placeholder="https://..."),
            ),
        ],
    )
    return finish_view(view, redactor)


def render_ack_confirmation(ack: Ack, title: str, redactor: Redactor) -> Message:
    text = clip(line(macros("slack_ack.j2").confirmed, ack, title), SECTION_TEXT)
    return finish(
        f"{ack.item_id} acknowledged on {ack.target}",
        [SectionBlock(text=MarkdownTextObject(text=text))],
        redactor,
    )


def render_reminder(ack: Ack, title: str, redactor: Redactor) -> Message:
    text = clip(line(macros("slack_ack.j2").reminder, ack, title), SECTION_TEXT)
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=text)),
        ContextBlock(
            elements=[MarkdownTextObject(text="`/langsmith ack &lt;item-id&gt; &lt;note&gt;` re-attests it.")]
        ),
    ]
    return finish(f"The acknowledgement of {ack.item_id} on {ack.target} expires soon", blocks, redactor)
