"""Socket Mode, the default, end to end: the real `lsready serve` against a local Socket Mode endpoint.

The bot opens its connection with `apps.connections.open` on the fake Web API, acks every envelope by
its `envelope_id`, reconnects after Slack's `disconnect` (refresh_requested) and after a dropped
connection, and handles a redelivered event once.
"""

import os
import subprocess
import sys
import time

import pytest
import yaml
from processes import stop
from slack_fake import BOT_ID, BOT_TOKEN, TEAM, FakeSlack
from slack_socket import FakeSocketMode, command_payload

from bot import actions as ids
from conftest import ROOT

USER, CHANNEL = "U0000001", "C0000001"
ACK_DEADLINE_S = 3.0  # Slack's: an envelope not acked by then is delivered again
# The real `lsready serve`, pinging every second instead of every 5 s: a dead connection is noticed
# after four unanswered pings, so the reconnect below takes a few seconds instead of half a minute.
SERVE = "import bot.app, bot.cli; bot.app.SOCKET_PING_INTERVAL_S = 1; bot.cli.main()"


@pytest.fixture
def socket_bot(tmp_path):
    fake, endpoint = FakeSlack(), FakeSocketMode()
    fake.socket_mode = endpoint
    config = {"default_target": "prod", "targets": {"prod": {}}, "storage": {"path": str(tmp_path / "l.db")}}
    (tmp_path / "lsready.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSREADY_", "SLACK_"))}
    env |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": "xapp-1-A0000001-1-secret",
        "SLACK_API_URL": fake.api_url,
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "serve.log"
    args = [sys.executable, "-c", SERVE, "--config", str(tmp_path / "lsready.yaml"), "serve"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*args, "--metrics-port", "0"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        yield fake, endpoint, proc, log
    finally:
        stop(proc)
        fake.close()
        endpoint.close()


def _help(fake, endpoint, n):
    """A `/langsmith help` envelope; returns its id once it is acked and answered."""
    envelope = endpoint.send("slash_commands", command_payload("help", fake.response_url(f"help{n}")))
    endpoint.wait_ack(envelope, timeout=ACK_DEADLINE_S)
    fake.wait_for("respond", lambda r: r["url"].endswith(f"/help{n}") and "blocks" in r)
    return envelope


def _thread_ack_event(event_id, ts):
    return {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A0000001",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {
            "type": "message",
            "channel": CHANNEL,
            "user": USER,
            "text": "ack diag.har_capture drill done",
            "ts": "1700000099.000001",
            "thread_ts": ts,
            "channel_type": "channel",
        },
        "authorizations": [{"team_id": TEAM, "user_id": "UBOT000001", "is_bot": True}],
    }


def test_serve_in_socket_mode_acks_envelopes_reconnects_and_handles_nothing_twice(socket_bot):
    fake, endpoint, proc, log = socket_bot
    try:
        endpoint.wait_connected(1, timeout=60)
    except AssertionError:
        raise AssertionError(log.read_text()[-3000:]) from None
    assert len(fake.requests("apps.connections.open")) == 1

    # A slash command, a button and an App Home event, each acked by its envelope id.
    _help(fake, endpoint, 1)
    fake.delays["views.publish"] = 15.0  # Slack sits on the board (released below): acks must not wait
    homes = [
        endpoint.send("events_api", {"type": "event_callback", "team_id": TEAM, "event_id": f"EvHome{n}",
                                     "event": {"type": "app_home_opened", "user": USER, "tab": "home"}})
        for n in range(12)
    ]  # fmt: skip
    click = {
        "type": "block_actions",
        "user": {"id": USER, "team_id": TEAM},
        "team": {"id": TEAM},
        "api_app_id": "A0000001",
        "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL},
        "message": {"ts": "1700000000.000001", "text": "report"},
        "response_url": fake.response_url("click"),
        "actions": [{"type": "button", "action_id": ids.EVIDENCE, "block_id": "b", "value": "gone",
                     "action_ts": "1700000002.0"}],
    }  # fmt: skip
    clicked = endpoint.send("interactive", click)
    endpoint.wait_ack(clicked, timeout=ACK_DEADLINE_S)
    _help(fake, endpoint, 2)
    for envelope in homes:
        endpoint.wait_ack(envelope, timeout=ACK_DEADLINE_S)
    assert fake.first_answer("views.publish") == float("inf")  # all acked while Slack still sat on them
    assert "Re-run" in fake.wait_for("respond", lambda r: r["url"].endswith("/click"))[0]["text"]
    fake.release()

    # A thread reply `ack`, delivered again by Slack (same event id, a new envelope): one row, one post.
    fake.messages[(CHANNEL, "1700000000.000050")] = {
        "ts": "1700000000.000050",
        "bot_id": BOT_ID,
        "metadata": {"event_type": "lsready_report", "event_payload": {"target": "prod", "kind": "check"}},
    }
    first = endpoint.send("events_api", _thread_ack_event("EvThreadAck", "1700000000.000050"))
    endpoint.wait_ack(first, timeout=ACK_DEADLINE_S)
    fake.wait_for("chat.postMessage", lambda m: m.get("thread_ts") == "1700000000.000050")
    again = endpoint.send("events_api", _thread_ack_event("EvThreadAck", "1700000000.000050"), retry=1)
    endpoint.wait_ack(again, timeout=ACK_DEADLINE_S)

    # Slack asks for a refresh: the bot opens a new connection and goes on there.
    endpoint.refresh()
    assert len(fake.requests("apps.connections.open")) == 2
    _help(fake, endpoint, 3)

    # The connection dies without a word: the bot notices, reconnects, and goes on.
    endpoint.drop()
    endpoint.wait_connected(3, timeout=60)
    _help(fake, endpoint, 4)

    assert proc.poll() is None
    confirmations = [
        m for m in fake.requests("chat.postMessage") if m.get("thread_ts") == "1700000000.000050"
    ]
    assert len(confirmations) == 1
    helps = [r for r in fake.requests("respond") if "/help" in r["url"] and "blocks" in r]
    assert sorted(r["url"].rsplit("/", 1)[1] for r in helps) == ["help1", "help2", "help3", "help4"]
    text = log.read_text()
    assert "didn't call ack()" not in text and "Traceback" not in text
