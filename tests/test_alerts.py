"""Alertmanager's webhook into the real bot: routing, one thread per alert group, repeats, resolution,
restarts, concurrent duplicates, the buttons, and the endpoint's guard (token, size, shape)."""

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import waiting
from slack_fake import BotHarness

from bot import actions as ids
from bot.alerts.receiver import MAX_BODY, TOKEN_ENV
from checks.errors import ConfigError
from conftest import make_config
from runbooks.alerts import BadNotification, Ignored, Route, parse, route
from runbooks.triage import RUNBOOKS
from storage.alerts import AlertThreads, Firing
from storage.db import open_db

TOKEN = "am-test-token-0123456789"
CHANNEL = "C0ALERTS01"
GROUP = '{}:{alertname="LangSmithQueueBacklog"}'


def notification(
    status="firing", *, group=GROUP, labels=None, alerts=1, summary="Queue depth 12000 on saq:queue", **extra
):
    labels = {
        "alertname": "LangSmithQueueBacklog",
        "runbook": "queue-depth",
        "lsready_target": "local",
        "severity": "critical",
        **(labels or {}),
    }
    start = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    end = start + timedelta(minutes=23) if status == "resolved" else datetime(1, 1, 1, tzinfo=UTC)
    items = [
        {
            "status": status,
            "labels": {**labels, "instance": f"i{n}"},
            "annotations": {"summary": summary, "description": "The ingest queue backs up."},
            "startsAt": start.isoformat(),
            "endsAt": end.isoformat().replace("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00Z"),
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"f{n}",
        }
        for n in range(alerts)
    ]
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "lsready",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": {k: v for k, v in labels.items()},
        "commonAnnotations": {"summary": summary},
        "externalURL": "http://alertmanager:9093",
        "alerts": items,
        **extra,
    }


def deliver(url, body, token=TOKEN, *, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), time.monotonic() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), time.monotonic() - t0


def top_level(fake, channel=CHANNEL):
    """The messages posted in the channel itself (not in a thread)."""
    return [m for (c, _), m in list(fake.messages.items()) if c == channel and not m.get("thread_ts")]


def in_thread(fake, ts):
    return [m for m in list(fake.messages.values()) if m.get("thread_ts") == ts]


wait_until = partial(waiting.wait_until, timeout=20.0)


def counted(bot, outcome):
    """Notifications handled to the end with this outcome (the metric counts after the work)."""
    for line in bot.services.metrics.exposition().decode().splitlines():
        if line.startswith(f'lsready_alert_notifications_total{{outcome="{outcome}"}}'):
            return int(float(line.split()[-1]))
    return 0


def triage_done(message):
    return "Finished in" in json.dumps(message.get("blocks"))


def config(redis_url, **alerts):
    target = {"redis": {"url": redis_url}}
    return make_config(
        {"local": target, "other": target},
        default_target="local",
        timeouts={"probe_s": 2, "run_s": 3},
        thresholds={"triage.queues": {"sample_interval_s": 0.2}},  # test-sized: queues sampled 0.2 s apart
        alerts={"channel": CHANNEL, **alerts},
    )


@pytest.fixture
def bot(tmp_path, redis_client, redis_url, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with BotHarness(config(redis_url), tmp_path / "lsready.db") as harness:
        harness.alerts = harness.base + "/alertmanager"
        yield harness


# --- routing and parsing (pure) ---------------------------------------------------------------------


def test_runbook_label_routes_and_lsready_target_picks_the_target():
    cfg = make_config({"a": {}, "b": {}}, default_target="a", alerts={"channel": "C1"})
    got = route(parse(json.dumps(notification(labels={"lsready_target": "b"})).encode()), cfg, RUNBOOKS)
    assert got == Route("queue-depth", "b", "C1")


def test_a_configured_route_gives_runbook_target_and_channel_when_the_alert_has_no_runbook_label():
    cfg = make_config(
        {"a": {}, "b": {}},
        default_target="a",
        alerts={
            "channel": "C1",
            "routes": [
                {"match": {"alertname": "Other"}, "runbook": "merge-pressure"},
                {"match": {"alertname": "ClickHouseSlow", "team": "data"}, "runbook": "merge-pressure",
                 "target": "b", "channel": "C2"},
            ],
        },
    )  # fmt: skip
    labels = {"alertname": "ClickHouseSlow", "team": "data", "runbook": "", "lsready_target": ""}
    got = route(parse(json.dumps(notification(labels=labels)).encode()), cfg, RUNBOOKS)
    assert got == Route("merge-pressure", "b", "C2")
    # No target label nor route target: the default target; no route channel: alerts.channel.
    labels = {"alertname": "Other", "runbook": "", "lsready_target": ""}
    got = route(parse(json.dumps(notification(labels=labels)).encode()), cfg, RUNBOOKS)
    assert got == Route("merge-pressure", "a", "C1")


def test_alerts_no_route_matches_are_ignored_with_the_reason():
    cfg = make_config({"a": {}}, alerts={"channel": "C1"})
    labels = {"alertname": "DiskFull", "runbook": "", "lsready_target": ""}
    got = route(parse(json.dumps(notification(labels=labels)).encode()), cfg, RUNBOOKS)
    assert isinstance(got, Ignored) and got.reason == "unrouted" and "DiskFull" in got.detail
    got = route(parse(json.dumps(notification(labels={"lsready_target": "nope"})).encode()), cfg, RUNBOOKS)
    assert isinstance(got, Ignored) and got.reason == "unknown_target"
    got = route(parse(json.dumps(notification(labels={"runbook": "no-such"})).encode()), cfg, RUNBOOKS)
    assert isinstance(got, Ignored) and got.reason == "unknown_runbook"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", json.dumps({**notification(), "version": "3"}).encode(),
     json.dumps({**notification(), "alerts": []}).encode(),
     json.dumps({**notification(), "status": "weird"}).encode(),
     json.dumps({k: v for k, v in notification().items() if k != "groupKey"}).encode()],
)  # fmt: skip
def test_malformed_notifications_are_refused_with_the_reason(body):
    with pytest.raises(BadNotification):
        parse(body)


def test_alert_config_is_validated_with_the_key_to_change():
    with pytest.raises(ConfigError, match=r"alerts\.retriage_after"):
        make_config({"a": {}}, alerts={"retriage_after": "soon"})
    with pytest.raises(ConfigError, match=r"alerts.routes\[0\].target 'b'"):
        make_config({"a": {}}, alerts={"routes": [{"match": {"alertname": "X"}, "target": "b"}]})
    with pytest.raises(ConfigError, match=r"alerts\.alertmanager_url"):
        make_config({"a": {}}, alerts={"alertmanager_url": "alertmanager:9093"})
    assert make_config({"a": {}}).alerts.retriage_after_s == 900
    assert make_config({"a": {}}, alerts={"retriage_after": "90s"}).alerts.retriage_after_s == 90


def test_the_token_variable_is_not_read_as_a_config_key(monkeypatch):
    from checks.config import load_config

    assert load_config(env={TOKEN_ENV: TOKEN}).alerts.channel is None


# --- the store: one open thread per group ----------------------------------------------------------


def firing():
    return Firing(CHANNEL, "local", "queue-depth", "X", "critical", "s", datetime.now(UTC), 1)


def test_concurrent_claims_of_one_group_from_separate_connections_give_exactly_one_winner(tmp_path):
    path = tmp_path / "s.db"
    open_db(path)
    barrier, results = threading.Barrier(12), []

    def claim():
        store = AlertThreads(open_db(path))
        barrier.wait()
        results.append(store.claim(GROUP, firing()))

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(claimed for _, claimed in results) == 1
    assert len({t.id for t, _ in results}) == 1


def test_a_claim_whose_post_died_is_taken_over_once_stale_and_a_resolved_group_opens_anew(tmp_path):
    now = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    store = AlertThreads(open_db(tmp_path / "s.db"), clock=lambda: now[0])
    first, claimed = store.claim(GROUP, firing())
    assert claimed and store.claim(GROUP, firing()) == (first, False)
    now[0] += timedelta(minutes=3)  # the first claimer died before posting
    again, claimed = store.claim(GROUP, firing())
    assert claimed and again.id == first.id
    store.posted(first.id, "1.1")
    assert not store.claim(GROUP, firing())[1]
    assert store.resolve(GROUP) is not None and store.resolve(GROUP) is None  # resolved once
    fresh, claimed = store.claim(GROUP, firing())
    assert claimed and fresh.id != first.id


def test_an_open_thread_silent_for_a_day_is_over_and_the_next_firing_opens_a_new_one(tmp_path):
    now = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    store = AlertThreads(open_db(tmp_path / "s.db"), clock=lambda: now[0])
    first, _ = store.claim(GROUP, firing())
    store.posted(first.id, "1.1")
    now[0] += timedelta(hours=23)
    assert store.claim(GROUP, firing())[0].id == first.id  # still the same incident
    store.seen(first.id, 1, "s", "critical")
    now[0] += timedelta(hours=25)  # resolved never came (send_resolved off, or it was lost)
    fresh, claimed = store.claim(GROUP, firing())
    assert claimed and fresh.id != first.id
    assert store.get(first.id).resolved_at == now[0] - timedelta(hours=25)


def test_a_retriage_is_claimed_once_per_interval(tmp_path):
    now = [datetime(2026, 12, 3, 8, 0, tzinfo=UTC)]
    store = AlertThreads(open_db(tmp_path / "s.db"), clock=lambda: now[0])
    thread, _ = store.claim(GROUP, firing())  # the first triage is claimed with the thread
    assert not store.claim_triage(thread.id, timedelta(minutes=15))
    now[0] += timedelta(minutes=16)
    assert store.claim_triage(thread.id, timedelta(minutes=15))
    assert not store.claim_triage(thread.id, timedelta(minutes=15))
    assert store.claim_triage(thread.id, None)  # Re-run: whatever the age


# --- the endpoint -------------------------------------------------------------------------------------


def test_the_endpoint_is_off_without_the_token_variable(tmp_path, redis_url):
    with BotHarness(config(redis_url), tmp_path / "lsready.db") as harness:
        status, _, _ = deliver(harness.base + "/alertmanager", notification())
        assert status == 404
        assert harness.fake.requests("chat.postMessage") == []


def test_missing_or_wrong_token_is_401_and_posts_nothing(bot):
    assert deliver(bot.alerts, notification(), token=None)[0] == 401
    assert deliver(bot.alerts, notification(), token="wrong")[0] == 401
    assert deliver(bot.alerts, notification(), token=TOKEN + "x")[0] == 401
    assert "unauthorized" in bot.services.metrics.exposition().decode()
    # Refused before any work was handed on: nothing is pending that could post later.
    assert bot.fake.requests("chat.postMessage") == []


def test_malformed_or_oversized_payloads_are_400_and_post_nothing(bot):
    status, body, _ = deliver(bot.alerts, None, raw=b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body, _ = deliver(bot.alerts, {**notification(), "version": "2"})
    assert status == 400 and "version" in body["error"]
    huge = notification(summary="x" * (MAX_BODY + 10))
    status, body, _ = deliver(bot.alerts, huge)
    assert status == 400 and "larger" in body["error"]
    bot.wait_idle()
    assert bot.fake.requests("chat.postMessage") == []


def test_a_firing_alert_posts_one_message_and_the_live_triage_in_its_thread(bot):
    status, _, elapsed = deliver(bot.alerts, notification())
    assert status == 200 and elapsed < 1.0  # answered at once; the work runs behind it
    message = wait_until(lambda: top_level(bot.fake), what="the alert message")[0]
    text = json.dumps(message["blocks"])
    for fact in ("LangSmithQueueBacklog on local", "critical", "Queue depth 12000", "2026-12-03 08:00 UTC"):
        assert fact in text
    actions = [e["action_id"] for b in message["blocks"] for e in b.get("elements", []) if "action_id" in e]
    # No Silence without alerts.alertmanager_url; the support bundle is one click from the alert.
    assert actions == [ids.ALERT_RERUN, ids.ALERT_EVIDENCE, ids.BUNDLE_PREPARE]
    checklist = wait_until(lambda: in_thread(bot.fake, message["ts"]), what="the triage")[0]
    assert "Triage: Queue depth and worker drain rate on local" in json.dumps(checklist["blocks"])
    wait_until(lambda: triage_done(in_thread(bot.fake, message["ts"])[0]), what="the diagnosis")
    wait_until(lambda: "Last triage" in json.dumps(bot.fake.messages[(CHANNEL, message["ts"])]["blocks"]))
    assert bot.readiness.audit.since()[-1].actor == "alertmanager"


def test_repeat_notifications_update_the_message_and_triage_again_only_after_retriage_after(bot):
    deliver(bot.alerts, notification())
    ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
    wait_until(lambda: any(triage_done(m) for m in in_thread(bot.fake, ts)), what="the diagnosis")
    bot.wait_idle()
    deliver(bot.alerts, notification(alerts=3))
    wait_until(lambda: counted(bot, "updated") == 1)
    blocks = json.dumps(bot.fake.messages[(CHANNEL, ts)]["blocks"])
    assert "*Notifications:* 2" in blocks and "*Firing:* 3 alerts" in blocks
    bot.wait_idle()
    assert len(top_level(bot.fake)) == 1 and len(in_thread(bot.fake, ts)) == 1  # no second triage yet
    store = bot.readiness.alert_threads
    thread = store.open(GROUP)
    with store.db.conn:  # the last triage was 16 minutes ago
        store.db.execute("UPDATE alert_threads SET triaged_at = ? WHERE id = ?",
                         [(datetime.now(UTC) - timedelta(minutes=16)).isoformat(), thread.id])  # fmt: skip
    deliver(bot.alerts, notification())
    wait_until(lambda: len(in_thread(bot.fake, ts)) == 2, what="a second triage")
    assert len(top_level(bot.fake)) == 1


def test_resolution_updates_the_message_and_replies_in_the_thread(bot):
    deliver(bot.alerts, notification())
    ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
    bot.wait_idle()
    deliver(bot.alerts, notification("resolved"))
    reply = wait_until(lambda: [m for m in in_thread(bot.fake, ts) if "Resolved after" in (m["text"] or "")])
    assert "Resolved after 23 min" in reply[0]["text"]
    blocks = json.dumps(bot.fake.messages[(CHANNEL, ts)]["blocks"])
    assert "Resolved: LangSmithQueueBacklog" in blocks and "after 23 min" in blocks
    deliver(bot.alerts, notification("resolved"))  # the HA twin's copy: nothing more
    wait_until(lambda: 'outcome="unknown_group"' in bot.services.metrics.exposition().decode())
    assert len([m for m in in_thread(bot.fake, ts) if "Resolved after" in (m["text"] or "")]) == 1
    # The group fires again later: a new incident, a new thread.
    deliver(bot.alerts, notification())
    wait_until(lambda: len(top_level(bot.fake)) == 2, what="a new thread")


def test_concurrent_duplicate_deliveries_give_one_thread(bot):
    barrier = threading.Barrier(10)

    def send():
        barrier.wait()
        assert deliver(bot.alerts, notification())[0] == 200

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: counted(bot, "updated") == 9, what="all 10 handled")
    assert counted(bot, "threaded") == 1
    assert "*Notifications:* 10" in json.dumps(top_level(bot.fake)[0]["blocks"])
    bot.wait_idle()
    assert len(top_level(bot.fake)) == 1
    assert len(in_thread(bot.fake, top_level(bot.fake)[0]["ts"])) == 1  # one triage


def test_after_a_restart_the_group_keeps_its_thread(tmp_path, redis_client, redis_url, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    db = tmp_path / "lsready.db"
    with BotHarness(config(redis_url), db) as first:
        deliver(first.base + "/alertmanager", notification())
        ts = wait_until(lambda: top_level(first.fake))[0]["ts"]
        first.wait_idle()
    with BotHarness(config(redis_url), db) as second:
        deliver(second.base + "/alertmanager", notification())
        update = second.fake.wait_for("chat.update", lambda a: a["ts"] == ts)
        assert "*Notifications:* 2" in json.dumps(update[0]["blocks"])
        deliver(second.base + "/alertmanager", notification("resolved"))
        second.fake.wait_for("chat.postMessage", lambda a: a.get("thread_ts") == ts)
        second.wait_idle()
        assert [a for a in second.fake.requests("chat.postMessage") if not a.get("thread_ts")] == []


def test_unrouted_alerts_are_ignored_and_counted(bot):
    deliver(bot.alerts, notification(labels={"runbook": "", "alertname": "DiskFull"}))
    wait_until(lambda: 'outcome="unrouted"' in bot.services.metrics.exposition().decode())
    assert bot.fake.requests("chat.postMessage") == []


# --- buttons ----------------------------------------------------------------------------------------


def buttons(message):
    elements = [e for b in message["blocks"] for e in b.get("elements", [])]
    return {e["action_id"]: e["value"] for e in elements if "value" in e}


def test_rerun_and_show_evidence_work_from_the_alert_message(bot):
    deliver(bot.alerts, notification())
    message = wait_until(lambda: top_level(bot.fake))[0]
    ts = message["ts"]
    wait_until(lambda: "Last triage" in json.dumps(bot.fake.messages[(CHANNEL, ts)]["blocks"]))
    bot.wait_idle()
    values = buttons(bot.fake.messages[(CHANNEL, ts)])
    bot.click(ids.ALERT_EVIDENCE, values[ids.ALERT_EVIDENCE], channel=CHANNEL, message_ts=ts)
    upload = bot.fake.wait_for("files.completeUploadExternal")[0]
    assert upload["thread_ts"] == ts
    bot.click(ids.ALERT_RERUN, values[ids.ALERT_RERUN], user="U0ONCALL1", channel=CHANNEL, message_ts=ts)
    wait_until(lambda: len(in_thread(bot.fake, ts)) >= 2, what="the re-run triage")
    bot.wait_idle()
    assert any(e.actor == "U0ONCALL1" and e.action == "triage" for e in bot.readiness.audit.since())


def test_buttons_follow_the_access_rules(tmp_path, redis_client, redis_url, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = config(redis_url, alertmanager_url="http://127.0.0.1:9")
    cfg = cfg.model_copy(update={"slack": make_config({}, slack={"access": {
        "silence": {"users": ["U0SRE0001"]}, "triage": {"users": ["U0SRE0001"]}}}).slack})  # fmt: skip
    with BotHarness(cfg, tmp_path / "lsready.db") as bot:
        deliver(bot.base + "/alertmanager", notification())
        ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
        wait_until(lambda: triage_done(in_thread(bot.fake, ts)[0]) if in_thread(bot.fake, ts) else False)
        bot.wait_idle()
        values = buttons(bot.fake.messages[(CHANNEL, ts)])
        bot.click(ids.param(ids.ALERT_SILENCE, 1), values[ids.param(ids.ALERT_SILENCE, 1)],
                  user="U0INTRUDER", channel=CHANNEL, message_ts=ts)  # fmt: skip
        refusal = bot.fake.wait_for("respond")[0]
        assert "not allowed to use `silence`" in refusal["text"]
        bot.click(ids.ALERT_RERUN, values[ids.ALERT_RERUN], user="U0INTRUDER", channel=CHANNEL, message_ts=ts)
        bot.fake.wait_for("respond", count=2)
        refused = [e for e in bot.readiness.audit.since() if e.outcome == "refused"]
        assert {(e.actor, e.action) for e in refused} == {("U0INTRUDER", "silence"), ("U0INTRUDER", "triage")}
        # An allowed user with Alertmanager unreachable hears why.
        bot.click(ids.param(ids.ALERT_SILENCE, 4), values[ids.param(ids.ALERT_SILENCE, 4)],
                  user="U0SRE0001", channel=CHANNEL, message_ts=ts)  # fmt: skip
        failure = bot.fake.wait_for("respond", count=3)[2]
        assert "did not answer" in failure["text"] and "alerts.alertmanager_url" in failure["text"]


def test_the_metrics_port_serves_the_receiver(tmp_path, bot):
    from bot.alerts.receiver import alert_routes
    from bot.observability import serve_observability

    routes = alert_routes(bot.services, bot.app.client)
    server = serve_observability(bot.services.metrics, 0, host="127.0.0.1", routes=routes)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alertmanager"
        assert deliver(url, notification(), token="wrong")[0] == 401
        assert deliver(url, notification())[0] == 200
        wait_until(lambda: top_level(bot.fake), what="the alert message")
    finally:
        server.shutdown()
        server.server_close()


# --- what the thread says, on real engines --------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "runbook", "diagnosis", "says"),
    [
        ("clickhouse-saturation", "merge-pressure", "clickhouse_saturation", "Do not add queue workers"),
        ("queue-backlog", "queue-depth", "ingestion_backpressure", "ingest-queue"),
    ],
)
def test_the_alert_thread_holds_the_diagnosis_and_which_layer_to_act_on(
    scenario, runbook, diagnosis, says, stage, clickhouse, redis_url, tmp_path, monkeypatch
):
    from runbooks.demo.scenarios import SCENARIO_THRESHOLDS, play

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    target = {"redis": {"url": redis_url}, "clickhouse": {"url": clickhouse[0]}}
    cfg = make_config({"local": target}, thresholds=SCENARIO_THRESHOLDS, alerts={"channel": CHANNEL},
                      timeouts={"probe_s": 3, "run_s": 6})  # fmt: skip
    with play(scenario, stage), BotHarness(cfg, tmp_path / "lsready.db") as bot:
        deliver(bot.base + "/alertmanager", notification(labels={"runbook": runbook}))
        ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
        result = wait_until(lambda: [m for m in in_thread(bot.fake, ts) if triage_done(m)], timeout=30)[0]
        text = json.dumps(result["blocks"])
        assert says in text and "What to do" in text
        wait_until(lambda: f"`{diagnosis}`" in json.dumps(bot.fake.messages[(CHANNEL, ts)]["blocks"]))


def test_a_route_naming_an_unknown_runbook_stops_the_bot_at_start_with_the_key_to_change(tmp_path, redis_url):
    from bot.alerts.receiver import alert_routes
    from bot.services import Services
    from runbooks.readiness import Readiness

    cfg = config(redis_url, routes=[{"match": {"alertname": "X"}, "runbook": "queue-dept"}])
    services = Services(Readiness.open(cfg, tmp_path / "lsready.db"))
    try:
        with pytest.raises(ConfigError, match=r"alerts\.routes\[0\]\.runbook: no runbook 'queue-dept'"):
            alert_routes(services, client=None)  # what `lsready serve` mounts before serving
    finally:
        services.shutdown()


def test_a_failed_post_leaves_no_claim_so_the_next_notification_posts_the_thread(bot):
    bot.fake.errors["chat.postMessage"] = "channel_not_found"
    deliver(bot.alerts, notification())
    wait_until(lambda: 'outcome="failed"' in bot.services.metrics.exposition().decode())
    assert bot.readiness.alert_threads.open(GROUP) is None
    del bot.fake.errors["chat.postMessage"]
    deliver(bot.alerts, notification())
    wait_until(lambda: top_level(bot.fake), what="the thread, on the next notification")


def test_the_alert_message_fits_slack_whatever_the_labels_and_escapes_them():
    from bot.render.slack_alert import render_alert
    from checks.secrets import Redactor
    from storage.alerts import AlertThread

    now = datetime.now(UTC)
    huge = AlertThread(
        1, "k" * 4096, CHANNEL, "1.1", "local", "queue-depth", "A" * 5000, "<!channel>" * 500,
        "<!here> " * 2000, now, now, 10**9, 10**6, now, "ingestion_backpressure", "key", None,
        "http://alertmanager:9093/" + "p" * 3000, {"alertname": "A" * 5000},
    )  # fmt: skip
    message = render_alert(huge, Redactor(), silences=True)  # finish() validates every limit
    assert "<!here>" not in json.dumps(message.blocks) and "<!channel>" not in json.dumps(message.blocks)


def test_a_triage_that_cannot_start_says_so_in_the_alert_thread(bot):
    bot.services.pool.capacity = 0  # every slow worker and waiting place taken
    deliver(bot.alerts, notification())
    ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
    reply = wait_until(lambda: in_thread(bot.fake, ts), what="the reply")[0]
    assert "The triage did not start" in reply["text"] and "busy" in reply["text"]
    assert "Re-run triage" in reply["text"]


def test_only_post_is_accepted(bot):
    request = urllib.request.Request(bot.alerts, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "POST"


def test_a_triage_that_stops_on_an_error_says_so_in_the_alert_thread(bot, monkeypatch):
    import bot.flows.triage as live

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(live, "triage", broken)
    deliver(bot.alerts, notification())
    ts = wait_until(lambda: top_level(bot.fake))[0]["ts"]
    said = wait_until(lambda: [m for m in in_thread(bot.fake, ts) if "stopped before" in (m["text"] or "")])
    assert "lsready's side" in said[0]["text"] and "boom" not in said[0]["text"]
    bot.wait_idle()
    assert any(e.outcome == "failed" and e.actor == "alertmanager" for e in bot.readiness.audit.since())
