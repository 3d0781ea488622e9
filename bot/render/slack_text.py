"""What every Slack renderer shares: template macros, mrkdwn escaping, emoji, dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from bot.render.limits import escape
from bot.render.report import EMOJI
from bot.render.templating import env

STATUS_EMOJI = {status.value: emoji for status, emoji in EMOJI.items()}
DIAGNOSIS_EMOJI = {
    "clickhouse_saturation": ":fire:",
    "ingestion_backpressure": ":rotating_light:",
    "insert_path_delay": ":hourglass:",
    "healthy": ":white_check_mark:",
    "inconclusive": ":grey_question:",
}
RUNNING, WAITING = ":hourglass_flowing_sand:", ":white_circle:"
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")


def who(by: str) -> str:
    """A Slack user id as a mention, anyone else (a CLI `--by` name) as plain text."""
    return f"<@{by}>" if SLACK_USER.match(by) else escape(by)


def stamp(when: datetime | str | None) -> str:
    """A UTC time for people: 2026-11-27 16:29 UTC."""
    if when is None:
        return "never"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def day(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d") if when else "never"


@cache
def macros(template: str) -> Any:
    """The macros of a bot/templates/slack_*.j2 file, with the shared helpers in scope."""
    helpers = {
        "esc": escape,
        "emoji": STATUS_EMOJI,
        "diagnosis_emoji": DIAGNOSIS_EMOJI,
        "stamp": stamp,
        "day": day,
        "who": who,
        "running": RUNNING,
        "waiting": WAITING,
    }
    return env().get_template(template).make_module(vars=helpers)


def replies() -> Any:
    """The bot's short replies (refusals, busy, progress): bot/templates/slack_replies.j2."""
    return macros("slack_replies.j2")


def line(macro: Any, *args: Any, **kwargs: Any) -> str:
    """One macro call as a single stripped string."""
    return str(macro(*args, **kwargs)).strip()
