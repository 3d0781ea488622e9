"""A real Alertmanager pair (no gossip, so both notify, as an HA pair does when gossip lags) sends its
webhook to a real `lsready serve`; Slack is the local fake. One thread per alert group, repeats
updating it across a restart of lsready, the resolution, and a silence from the button reaching
Alertmanager."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from alertmanager_server import BINARY, MISSING, Alertmanager
from slack_fake import BOT_TOKEN, SIGNING_SECRET, TEAM, FakeSlack, send

from bot import actions as ids
from runbooks.demo.engines import free_port

pytestmark = pytest.mark.skipif(BINARY is None, reason=MISSING)

TOKEN = "am-real-token-0123456789"
CHANNEL = "C0ALERTS01"


class Serve:
    """`lsready serve` in HTTP mode as its own process, Slack pointed at the fake; restartable."""

    def __init__(self, directory: Path, fake: FakeSlack, config: dict) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lsready.yaml").write_text(yaml.safe_dump(config))
        self.port, self.metrics_port = free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LSREADY_", "SLACK_"))},
            "LSREADY_CONFIG": str(directory / "lsready.yaml"),
            "LSREADY_DATA_DIR": str(directory / "data"),
            "LSREADY_ALERTMANAGER_TOKEN": TOKEN,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        self.log = directory / "serve.log"
        self.webhook = f"http://127.0.0.1:{self.metrics_port}/alertmanager"
        self.events = f"http://127.0.0.1:{self.port}/slack/events"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        lsready = str(Path(sys.executable).parent / "lsready")
        args = [lsready, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--metrics-port", str(self.metrics_port)]  # fmt: skip
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab")
        )
        deadline = time.monotonic() + 30
        waiting = [self.metrics_port, self.port]  # the Slack port binds after the metrics port
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{waiting[0]}/healthz", timeout=1):
                    waiting.pop(0)
                    if not waiting:
                        return
                    continue
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lsready serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def click(self, action_id: str, value: str, *, message_ts: str, user: dict) -> None:
        payload = {
            "type": "block_actions",
            "user": {**user, "team_id": TEAM},
            "api_app_id": "A0000001",
            "team": {"id": TEAM},
            "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL},
            "channel": {"id": CHANNEL},
            "message": {"ts": message_ts, "text": "alert"},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "action_ts": "1700000002.0"}],
        }  # fmt: skip
        form = urlencode({"payload": json.dumps(payload)})
        reply = send(self.events, form, "application/x-www-form-urlencoded")
        assert reply.status == 200, reply.body


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.1)


def top_level(fake):
    return [m for (c, _), m in list(fake.messages.items()) if c == CHANNEL and not m.get("thread_ts")]


def by_name(fake, alertname):
    return [m for m in top_level(fake) if alertname in (m.get("text") or "")]


def in_thread(fake, ts):
    return [m for m in list(fake.messages.values()) if m.get("thread_ts") == ts]


def blocks(fake, ts):
    return json.dumps(fake.messages[(CHANNEL, ts)]["blocks"])


def alert(name, runbook, *, resolved=False):
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "runbook": runbook, "lsready_target": "local", "severity": "critical"},
        "annotations": {"summary": f"{name} fired in the test"},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        **({"endsAt": (now - timedelta(seconds=1)).isoformat()} if resolved else {}),
    }


@pytest.fixture
def stack(tmp_path, redis_client, redis_url):
    fake = FakeSlack()
    pair: list[Alertmanager] = []
    serve = None
    try:
        serve = Serve(tmp_path / "lsready", fake, {
            "targets": {"local": {"redis": {"url": redis_url}}},
            "timeouts": {"probe_s": 2, "run_s": 3},
            "alerts": {"channel": CHANNEL, "retriage_after": "1h"},
        })  # fmt: skip
        pair.extend(Alertmanager(tmp_path / f"am{i}", serve.webhook, TOKEN) for i in (1, 2))
        serve.env["LSREADY_ALERTS__ALERTMANAGER_URL"] = pair[0].url  # the Silence buttons
        serve.start()
        yield fake, serve, pair
    finally:
        for am in pair:
            am.close()
        if serve is not None:
            serve.stop()
        fake.close()


def test_real_alertmanager_pair_gives_one_thread_that_repeats_update_across_a_restart_and_resolution_closes(
    stack,
):
    fake, serve, pair = stack
    for am in pair:  # Prometheus sends every alert to each Alertmanager of the pair
        am.post_alerts([alert("LangSmithQueueBacklog", "queue-depth")])
    message = wait_until(lambda: by_name(fake, "LangSmithQueueBacklog"), what="the alert thread")[0]
    ts = message["ts"]
    wait_until(lambda: "Finished in" in json.dumps([m["blocks"] for m in in_thread(fake, ts)]), what="triage")
    assert "Triage: Queue depth" in json.dumps(in_thread(fake, ts)[0]["blocks"])
    # Both Alertmanagers keep notifying (repeat_interval 2 s): the count grows, nothing new is posted.
    wait_until(lambda: "*Notifications:* 4" in blocks(fake, ts) or "*Notifications:* 5" in blocks(fake, ts))
    serve.stop()  # a restart mid-incident
    serve.start()
    before = len(fake.requests("chat.update"))
    wait_until(lambda: len(fake.requests("chat.update")) > before + 2, what="updates after the restart")
    assert len(by_name(fake, "LangSmithQueueBacklog")) == 1
    assert len(in_thread(fake, ts)) == 1  # retriage_after 1h: repeats did not triage again
    for am in pair:
        am.post_alerts([alert("LangSmithQueueBacklog", "queue-depth", resolved=True)])
    wait_until(lambda: "Resolved: LangSmithQueueBacklog" in blocks(fake, ts), what="the resolution")
    replies = wait_until(lambda: [m for m in in_thread(fake, ts) if "Resolved after" in (m["text"] or "")])
    # The twin's resolved notification finds the group closed: counted, nothing posted.
    wait_until(lambda: 'outcome="unknown_group"' in serve.metrics(), what="the twin's resolution")
    assert len([m for m in in_thread(fake, ts) if "Resolved after" in (m["text"] or "")]) == len(replies) == 1
    assert len(by_name(fake, "LangSmithQueueBacklog")) == 1


def test_silence_button_creates_the_silence_in_alertmanager_as_the_clicker(stack):
    fake, serve, pair = stack
    am = pair[0]
    am.post_alerts([alert("LangSmithIngestionDelay", "ingestion-delay")])
    message = wait_until(lambda: by_name(fake, "LangSmithIngestionDelay"), what="the alert thread")[0]
    ts = message["ts"]
    elements = [e for b in message["blocks"] for e in b.get("elements", [])]
    values = {e["action_id"]: e["value"] for e in elements if "value" in e}
    silence = ids.param(ids.ALERT_SILENCE, 4)
    assert silence in values
    serve.click(silence, values[silence], message_ts=ts, user={"id": "U0ONCALL1", "username": "alice"})
    created = wait_until(lambda: am.silences(), what="the silence")[0]
    assert created["createdBy"] == "alice (U0ONCALL1)" and created["status"]["state"] == "active"
    matchers = {m["name"]: m["value"] for m in created["matchers"]}
    assert matchers == {"alertname": "LangSmithIngestionDelay", "lsready_target": "local"}
    lasts = datetime.fromisoformat(created["endsAt"]) - datetime.fromisoformat(created["startsAt"])
    assert abs(lasts - timedelta(hours=4)) < timedelta(seconds=5)
    wait_until(lambda: [m for m in in_thread(fake, ts) if ":mute:" in (m["text"] or "")], what="the reply")
    state = wait_until(lambda: [a["status"]["state"] for a in am.alerts() if a["status"]["silencedBy"]])
    assert state == ["suppressed"]
