"""A real Alertmanager pair (no gossip, so both notify, as an HA pair does when gossip lags) sends its
webhook to a real `lsready serve`; Slack is the local fake. One thread per alert group, repeats
updating it across a restart of lsready, the resolution, and a silence from the button reaching
Alertmanager."""

import json
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import waiting
from alertmanager_server import BINARY, MISSING, Alertmanager
from lsready_server import TOKEN, Serve
from slack_fake import FakeSlack

from bot import actions as ids

pytestmark = pytest.mark.skipif(BINARY is None, reason=MISSING)

CHANNEL = "C0ALERTS01"


wait_until = partial(waiting.wait_until, timeout=30.0)


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
    serve.click(
        silence,
        values[silence],
        channel=CHANNEL,
        message_ts=ts,
        user={"id": "U0ONCALL1", "username": "alice"},
    )
    created = wait_until(lambda: am.silences(), what="the silence")[0]
    assert created["createdBy"] == "alice (U0ONCALL1)" and created["status"]["state"] == "active"
    matchers = {m["name"]: m["value"] for m in created["matchers"]}
    assert matchers == {"alertname": "LangSmithIngestionDelay", "lsready_target": "local"}
    lasts = datetime.fromisoformat(created["endsAt"]) - datetime.fromisoformat(created["startsAt"])
    assert abs(lasts - timedelta(hours=4)) < timedelta(seconds=5)
    wait_until(lambda: [m for m in in_thread(fake, ts) if ":mute:" in (m["text"] or "")], what="the reply")
    state = wait_until(lambda: [a["status"]["state"] for a in am.alerts() if a["status"]["silencedBy"]])
    assert state == ["suppressed"]
