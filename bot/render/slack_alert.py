"""An Alertmanager alert group as one Slack message, kept up to date, and the replies in its thread."""

from __future__ import annotations

from dataclasses import asdict
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
    LINK_URL,
    SECTION_TEXT,
    Message,
    button_value,
    clip,
    finish,
)
from bot.render.slack_text import line, macros
from bot.render.slack_triage import bundle_button
from checks.secrets import Redactor
from storage.alerts import AlertThread

SILENCE_HOURS = (1, 4)


def _t() -> Any:
    return macros("slack_alert.j2")


def lasted(start: datetime, end: datetime | None) -> str:
    """A duration for people: 45 s, 23 min, 2 h 5 min."""
    if end is None:
        return "an unknown time"
    seconds = max(0, int((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def _view(thread: AlertThread) -> dict[str, Any]:
    return {**asdict(thread), "lasted": lasted(thread.started_at, thread.resolved_at)}


def render_alert(thread: AlertThread, redactor: Redactor, *, silences: bool) -> Message:
    """The group's message: what fired, where, since when, how often, the last diagnosis, the buttons."""
    t, a = _t(), _view(thread)
    blocks: list[Block] = [
        HeaderBlock(text=clip(line(t.header, a), HEADER_TEXT)),
        SectionBlock(text=MarkdownTextObject(text=clip(line(t.summary, a), SECTION_TEXT))),
        SectionBlock(text=MarkdownTextObject(text=clip(line(t.facts, a), SECTION_TEXT))),
    ]
    context = [line(t.triage, a)] if thread.triaged_at else []
    url = thread.external_url
    if url.startswith(("http://", "https://")) and len(url) < LINK_URL and not set(url) & set("<>| "):
        context.append(line(t.source, a))
    if context:
        elements = [MarkdownTextObject(text=clip(c, CONTEXT_TEXT)) for c in context]
        blocks.append(ContextBlock(elements=elements))
    blocks += _buttons(thread, silences=silences and thread.resolved_at is None)
    return finish(line(t.fallback, a), blocks, redactor, metadata=actions.metadata(thread.target, "alert"))


def _buttons(thread: AlertThread, *, silences: bool) -> list[Block]:
    buttons = [
        ButtonElement(
            text="Re-run triage",
            action_id=actions.ALERT_RERUN,
            value=button_value(g=thread.id),
            style="primary",
        ),
        ButtonElement(
            text="Show evidence", action_id=actions.ALERT_EVIDENCE, value=button_value(g=thread.id)
        ),
    ]
    if silences:
        buttons += [
            ButtonElement(
                text=f"Silence {hours} h",
                action_id=actions.param(actions.ALERT_SILENCE, hours),
                value=button_value(g=thread.id, h=hours),
            )
            for hours in SILENCE_HOURS
        ]
    buttons += bundle_button(thread.target, thread.snapshot)  # escalation, from the triage shown
    return [ActionsBlock(elements=buttons)]


def render_resolved_reply(thread: AlertThread, redactor: Redactor) -> Message:
    text = line(_t().resolved_reply, _view(thread))
    return finish(text, [SectionBlock(text=MarkdownTextObject(text=text))], redactor)


def render_silenced(user: str, hours: int, until: datetime, silence_id: str, redactor: Redactor) -> Message:
    text = line(_t().silenced, user, hours, until, silence_id)
    return finish(text, [SectionBlock(text=MarkdownTextObject(text=text))], redactor)


def render_not_started(reason: str, redactor: Redactor) -> Message:
    return _reply(line(_t().not_started, reason), redactor)


def render_stopped_reply(reason: str, redactor: Redactor) -> Message:
    return _reply(line(_t().stopped, reason), redactor)


def _reply(text: str, redactor: Redactor) -> Message:
    return finish(text, [SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_TEXT)))], redactor)
