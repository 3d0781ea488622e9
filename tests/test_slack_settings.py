"""Slack settings from the environment, and `lsready serve` choosing Socket Mode or HTTP."""

import pytest
from click.testing import CliRunner
from slack_fake import BOT_TOKEN, FakeSlack

from bot.cli import cli
from bot.settings import SettingsError, load_settings
from conftest import make_config
from runbooks.readiness import Readiness


def test_a_missing_bot_token_is_named_in_one_line():
    with pytest.raises(SettingsError) as exc:
        load_settings({})
    assert str(exc.value).startswith("SLACK_BOT_TOKEN is not set") and "\n" not in str(exc.value)


def test_http_mode_needs_the_signing_secret_and_socket_mode_does_not():
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET is not set"):
        load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN})
    socket = load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-1-A1-1-abc"})
    assert socket.socket_mode and socket.signing_secret is None
    posting = load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN}, serving=False)
    assert not posting.socket_mode


def test_tokens_of_the_wrong_kind_are_refused_without_echoing_them():
    with pytest.raises(SettingsError, match="must be a bot token") as exc:
        load_settings({"SLACK_BOT_TOKEN": "xoxp-user-token-secret", "SLACK_SIGNING_SECRET": "s"})
    assert "secret" not in str(exc.value).split("got")[1]
    with pytest.raises(SettingsError, match="app-level token"):
        load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xoxb-nope"})


def test_api_url_override_gets_the_trailing_slash_slack_sdk_needs():
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": "http://proxy.internal/api",
        }
    )
    assert settings.api_base_url == "http://proxy.internal/api/"
    assert load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s"}).api_base_url == (
        "https://slack.com/api/"
    )
    assert "xoxb" not in repr(settings)


def test_serve_without_slack_settings_exits_2_naming_the_variable(tmp_path, monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(f"targets: {{prod: {{}}}}\nstorage: {{path: '{tmp_path / 'x.db'}'}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "serve"], obj={})
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "lsready: SLACK_BOT_TOKEN is not set: use the Bot User OAuth Token (xoxb-...) "
        "under OAuth & Permissions"
    )


def test_serve_uses_socket_mode_when_an_app_token_is_set(tmp_path, monkeypatch):
    import slack_bolt.adapter.socket_mode as socket_mode

    from bot.app import serve

    started = []

    class FakeHandler:
        def __init__(self, app, app_token, **options):
            started.append((app, app_token))

        def start(self):
            started.append("started")

    monkeypatch.setattr(socket_mode, "SocketModeHandler", FakeHandler)
    fake = FakeSlack()
    try:
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_APP_TOKEN": "xapp-1-A1-1-abc",
                "SLACK_API_URL": fake.api_url,
            }
        )
        readiness = Readiness.open(make_config({"prod": {}}), tmp_path / "x.db")
        lines = []
        serve(settings, readiness, say=lines.append)
    finally:
        fake.close()
    assert started[0][1] == "xapp-1-A1-1-abc" and started[-1] == "started"
    assert lines == ["lsready serve: Socket Mode"]
    assert fake.requests("auth.test")  # the bot token was verified against the (fake) Web API


def test_manifest_declares_the_command_events_and_scopes_the_bot_uses():
    import yaml

    from conftest import ROOT

    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    features, settings = manifest["features"], manifest["settings"]
    assert [c["command"] for c in features["slash_commands"]] == ["/langsmith"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True and settings["socket_mode_enabled"] is True
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_home_opened",
        "message.channels",
        "message.groups",
    }
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "files:write",
        "usergroups:read",
        "im:write",
        "channels:history",
        "groups:history",
    }


def test_readme_access_example_is_a_valid_config():
    import re

    import yaml

    from checks.config import validate
    from conftest import ROOT

    section = (ROOT / "README.md").read_text().split("## Slack app", 1)[1]
    example = re.findall(r"```yaml\n(.*?)```", section, re.S)[0]
    config = validate({"targets": {"prod": {}}, **yaml.safe_load(example)})
    assert config.slack.access["ack"].usergroups == ["S0SRE"] and config.digest.channel == "C0123456789"


def test_serve_with_a_token_slack_refuses_says_so_in_one_line(tmp_path):
    from bot.app import serve

    fake = FakeSlack()
    fake.errors["auth.test"] = "invalid_auth"
    try:
        settings = load_settings(
            {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": fake.api_url}
        )
        with pytest.raises(SettingsError, match=r"Slack did not accept SLACK_BOT_TOKEN.*invalid_auth") as exc:
            serve(settings, Readiness.open(make_config({"prod": {}}), tmp_path / "x.db"))
    finally:
        fake.close()
    assert BOT_TOKEN not in str(exc.value)
