"""The one error handler: every listener's error reaches `bot.errors.handle`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.errors import handle

if TYPE_CHECKING:
    from bot.services import Services


def register(app: App, services: Services) -> None:
    @app.error
    def on_error(
        error: Exception, body: dict[str, Any], context: Any, client: WebClient, respond: Respond | None
    ) -> None:
        handle(services, error, body, context, client, respond)
