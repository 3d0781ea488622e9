"""An Alertmanager alert group as one Slack message, kept up to date, and the replies in its thread."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot import actions
from bot.render.blocks import actions_row, bundle_button, button, context, header, section
from bot.render.limits import LINK_URL, Message, button_value, finish
from bot.render.slack_text import line, macros
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
    blocks: list[Block] = [header(line(t.header, a)), section(line(t.summary, a)), section(line(t.facts, a))]
    notes = [line(t.triage, a)] if thread.triaged_at else []
    url = thread.external_url
    if url.startswith(("http://", "https://")) and len(url) < LINK_URL and not set(url) & set("<>| "):
        notes.append(line(t.source, a))
    if notes:
        blocks.append(context(*notes))
    blocks += _buttons(thread, silences=silences and thread.resolved_at is None)
    return finish(line(t.fallback, a), blocks, redactor, metadata=actions.metadata(thread.target, "alert"))


def _buttons(thread: AlertThread, *, silences: bool) -> list[Block]:
    value = button_value(g=thread.id)
    buttons = [
        button("Re-run triage", actions.ALERT_RERUN, value, primary=True),
        button("Show evidence", actions.ALERT_EVIDENCE, value),
    ]
    if silences:
        buttons += [
            button(
                f"Silence {hours} h",
                actions.param(actions.ALERT_SILENCE, hours),
                button_value(g=thread.id, h=hours),
            )
            for hours in SILENCE_HOURS
        ]
    buttons += bundle_button(thread.target, thread.snapshot)  # escalation, from the triage shown
    return actions_row(buttons)


def render_resolved_reply(thread: AlertThread, redactor: Redactor) -> Message:
    return _reply(line(_t().resolved_reply, _view(thread)), redactor)


def render_silenced(user: str, hours: int, until: datetime, silence_id: str, redactor: Redactor) -> Message:
    return _reply(line(_t().silenced, user, hours, until, silence_id), redactor)


def render_not_started(reason: str, redactor: Redactor) -> Message:
    return _reply(line(_t().not_started, reason), redactor)


def render_stopped_reply(reason: str, redactor: Redactor) -> Message:
    return _reply(line(_t().stopped, reason), redactor)


def _reply(text: str, redactor: Redactor) -> Message:
    return finish(text, [section(text)], redactor)
