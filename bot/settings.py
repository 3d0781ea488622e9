"""The Slack app's settings, read once from the environment; a missing one is named in one line."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from checks.errors import LsreadyError


class SettingsError(LsreadyError):
    """A Slack setting is missing or malformed; the message says which and where to find it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bot_token: SecretStr
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str | None = None  # a Slack proxy, or a local fake in tests

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    @property
    def api_base_url(self) -> str:
        """The Web API base URL with the trailing slash slack_sdk expects."""
        return (self.api_url or "https://slack.com/api/").rstrip("/") + "/"


_WHERE = {
    "SLACK_BOT_TOKEN": "the Bot User OAuth Token (xoxb-...) under OAuth & Permissions",
    "SLACK_SIGNING_SECRET": "the Signing Secret under Basic Information > App Credentials; "
    "HTTP mode verifies every request with it (or set SLACK_APP_TOKEN for Socket Mode)",
}


def load_settings(env: Mapping[str, str] | None = None, *, serving: bool = True) -> Settings:
    """Settings from SLACK_* variables; `serving` also requires what `lsready serve` needs."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        return (env.get(name) or "").strip() or None

    bot, app, secret, api = (
        get(n) for n in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL")
    )
    if bot is None:
        raise SettingsError(f"SLACK_BOT_TOKEN is not set: use {_WHERE['SLACK_BOT_TOKEN']}")
    if not bot.startswith("xoxb-"):
        raise SettingsError(f"SLACK_BOT_TOKEN must be a bot token starting xoxb- (got '{bot[:5]}...')")
    if app is not None and not app.startswith("xapp-"):
        raise SettingsError(f"SLACK_APP_TOKEN must be an app-level token starting xapp- (got '{app[:5]}...')")
    if serving and app is None and secret is None:
        raise SettingsError(f"SLACK_SIGNING_SECRET is not set: use {_WHERE['SLACK_SIGNING_SECRET']}")
    if api is not None and not api.startswith(("http://", "https://")):
        raise SettingsError(f"SLACK_API_URL must be an http(s) URL (got '{api}')")
    return Settings(
        bot_token=SecretStr(bot),
        app_token=SecretStr(app) if app else None,
        signing_secret=SecretStr(secret) if secret else None,
        api_url=api,
    )
