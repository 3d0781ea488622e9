"""Posting outside a Slack request: the digest (`lsready digest --post`, the scheduler) and reminders."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.render.slack_digest import render_digest
from bot.settings import load_settings
from checks.errors import LsreadyError
from runbooks.digest import Digest
from runbooks.readiness import Readiness


class PostFailed(LsreadyError):
    """Slack refused a post; the message names Slack's error code."""


def client_from_env() -> WebClient:
    """A Web API client from SLACK_BOT_TOKEN (and SLACK_API_URL); no signing secret needed to post."""
    settings = load_settings(serving=False)
    return WebClient(token=settings.bot_token.get_secret_value(), base_url=settings.api_base_url)


def post_digest(readiness: Readiness, digest: Digest, client: WebClient | None = None) -> tuple[str, str]:
    """Post the digest to digest.channel as a thread parent whose metadata names the target."""
    channel = readiness.config.digest.channel
    if not channel:
        raise PostFailed("digest.channel is not set: put the Slack channel id (C...) under digest.channel")
    message = render_digest(digest, readiness.config.redactor())
    try:
        response = (client or client_from_env()).chat_postMessage(channel=channel, **message.chat_args())
    except SlackApiError as exc:
        error = exc.response.get("error")
        hint = " (invite the bot to the channel)" if error == "not_in_channel" else ""
        raise PostFailed(f"Slack refused the digest for {channel}: {error}{hint}") from None
    return str(response.get("channel") or channel), str(response["ts"])
