"""The bot in the worst ten minutes: Slack slow, many requests at once, deliveries repeated.

Acks are shown to come first by order, not by timing: each ack's response is read before the
slowed Web API method has answered anything.
"""

import http.client
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_fake import BotHarness, send
from waiting import wait_until

from bot import actions as ids
from conftest import make_config

USER, CHANNEL = "U0000001", "C0000001"


@pytest.fixture
def bot(tmp_path):
    config = make_config({"prod": {}, "staging": {}}, default_target="prod")
    with BotHarness(config, tmp_path / "lsready.db") as harness:
        yield harness


def _home(bot, user=USER):
    return bot.event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})


def _thread_reply(text, n, thread_ts="1700000000.000001"):
    return {
        "type": "message",
        "channel": CHANNEL,
        "user": USER,
        "text": text,
        "ts": f"1700000099.{n:06d}",
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }


def _modal(item="diag.har_capture", note="restore drill, 40 min"):
    return {
        ids.ACK_ITEM_BLOCK: {ids.ACK_ITEM: {"type": "static_select", "selected_option": {"value": item}}},
        ids.ACK_NOTE_BLOCK: {ids.ACK_NOTE: {"type": "plain_text_input", "value": note}},
        ids.ACK_EXPIRY_BLOCK: {ids.ACK_EXPIRY: {"type": "plain_text_input", "value": "30d"}},
        ids.ACK_LINK_BLOCK: {ids.ACK_LINK: {"type": "url_text_input", "value": None}},
    }


# --- Acks first --------------------------------------------------------------------------------


def test_commands_clicks_and_submissions_are_acked_while_home_publishing_and_replies_are_slow(bot, caplog):
    # Slack sits on these two methods (up to 15 s, the test releases them once it has its answers).
    bot.fake.delays["views.publish"] = 15.0
    bot.fake.delays["conversations.replies"] = 15.0
    with caplog.at_level(logging.WARNING):
        queued = []
        for n in range(20):
            queued += [_home(bot), bot.event(_thread_reply(f"ack diag.har_capture take {n}", n))]
        help_reply = bot.command("help")
        click = bot.click(ids.EVIDENCE, "no-such-snapshot")
        meta = json.dumps({"t": "prod", "c": CHANNEL, "ts": "1700000000.000321"})
        submission = bot.submit(_modal(), meta)
        acked = [*queued, help_reply, click, submission]
        assert [r.status for r in acked] == [200] * len(acked)  # no 404 from a missed ack
        # The command's reply does not queue behind the events either.
        assert bot.fake.wait_for("respond", lambda r: "blocks" in r)
        assert bot.fake.wait_for("respond", lambda r: "Re-run" in r.get("text", ""))
        # All of that happened while Slack had answered none of the slowed calls.
        assert bot.fake.requests("views.publish") and bot.fake.requests("conversations.replies")
        assert bot.fake.first_answer("views.publish") == float("inf")
        assert bot.fake.first_answer("conversations.replies") == float("inf")
        bot.fake.release()
        bot.fake.wait_for("views.publish", lambda a: True, count=20)
        wait_until(lambda: bot.fake.first_answer("views.publish") < float("inf"), what="an answered publish")
    assert not [r for r in caplog.records if "ack()" in r.getMessage()]


def test_messages_the_bot_does_not_act_on_are_acked_without_work(bot):
    chatter = [
        {"type": "message", "channel": CHANNEL, "user": USER, "text": f"deploying {n}", "ts": f"17.{n}"}
        for n in range(30)
    ]
    chatter.append({**_thread_reply("looks fine to me", 99)})  # a thread reply that is not an ack
    chatter.append({**_thread_reply("ack x", 98), "subtype": "message_changed"})  # an edit
    assert all(bot.event(m).status == 200 for m in chatter)
    bot.command("help")
    bot.fake.wait_for("respond")
    assert not bot.fake.requests("conversations.replies")  # no listener looked at any of them


# --- HTTP server -------------------------------------------------------------------------------


def test_a_burst_of_80_concurrent_signed_commands_is_acked_200_every_one(bot):
    with ThreadPoolExecutor(80) as senders:
        replies = list(senders.map(lambda _: bot.command("help"), range(80)))
    assert [r.status for r in replies] == [200] * 80
    bot.fake.wait_for("respond", count=80, timeout=60)


def test_malformed_bodies_are_400_unsigned_ones_401_and_neither_leaves_a_traceback(bot, caplog):
    with caplog.at_level(logging.DEBUG):
        unsigned = send(
            bot.url, "payload=%7Bnot-json", "application/x-www-form-urlencoded", signature="v0=00"
        )
        signed_json = send(bot.url, '{"type": "event_callback", ', "application/json")
        signed_form = send(bot.url, "payload=%7Bnot-json", "application/x-www-form-urlencoded")
        binary = send(bot.url, "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), "text/plain")
    assert unsigned.status == 401
    assert (signed_json.status, signed_form.status) == (400, 400)
    assert binary.status in (400, 401)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_body_over_the_limit_is_refused_before_the_app_reads_it(bot):
    from bot.serving import MAX_BODY_BYTES

    conn = http.client.HTTPConnection("127.0.0.1", bot.server.port, timeout=10)
    conn.putrequest("POST", "/slack/events")
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 10))
    conn.endheaders(b"text=" + b"x" * 1000)  # the server answers before the rest would arrive
    assert conn.getresponse().status == 413
    conn.close()
    assert bot.command("help").status == 200  # and the server goes on


def test_other_methods_on_the_slack_path_are_405(bot):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bot.url, timeout=5)
    assert err.value.code == 405


# --- Exactly once ------------------------------------------------------------------------------


def _report_thread(bot):
    bot.command("check staging")
    bot.fake.wait_for("chat.postMessage")
    bot.wait_idle()
    return bot.fake.posted[0][1]


def _rows(bot, target, item):
    """Every acknowledgement row of the item, superseded ones included."""
    return [a for a in bot.readiness.acks.list(target, include_inactive=True) if a.item_id == item]


def _confirmations(bot, ts):
    return [m for m in bot.fake.requests("chat.postMessage") if m.get("thread_ts") == ts]


def test_a_thread_ack_delivered_twice_records_one_row_and_posts_once(bot):
    ts = _report_thread(bot)
    event = _thread_reply("ack diag.log_collection logs shipped", 1, ts)
    assert bot.event(event, event_id="Ev0REPEAT").status == 200
    bot.fake.wait_for("chat.postMessage", lambda m: m.get("thread_ts") == ts)
    assert bot.event(event, event_id="Ev0REPEAT", retry=1).status == 200
    bot.services.pool.shutdown(wait=True)  # whatever the retry started has finished
    assert len(_confirmations(bot, ts)) == 1
    assert not bot.fake.requests("chat.postEphemeral")  # the retry was dropped, not even told off
    assert len(_rows(bot, "staging", "diag.log_collection")) == 1


def test_a_retry_after_a_restart_records_nothing_twice(tmp_path):
    config = make_config({"prod": {}, "staging": {}}, default_target="prod")
    with BotHarness(config, tmp_path / "lsready.db") as first:
        ts = _report_thread(first)
        event = _thread_reply("ack diag.log_collection logs shipped", 1, ts)
        first.event(event, event_id="Ev0RESTART")
        first.fake.wait_for("chat.postMessage", lambda m: m.get("thread_ts") == ts)
    with BotHarness(config, tmp_path / "lsready.db") as second:
        second.fake.messages.update(first.fake.messages)  # the same workspace: the report is there
        assert second.event(event, event_id="Ev0RESTART", retry=2).status == 200
        told = second.fake.wait_for("chat.postEphemeral")[0]
        assert "nothing new was" in told["text"]
        assert not second.fake.requests("chat.postMessage")
        assert len(_rows(second, "staging", "diag.log_collection")) == 1


def test_a_modal_submitted_twice_records_one_row_and_posts_once(bot):
    meta = json.dumps({"t": "prod", "c": CHANNEL, "ts": "1700000000.000321"})
    assert bot.submit(_modal(), meta, view_id="V0TWICE").status == 200
    assert bot.submit(_modal(), meta, view_id="V0TWICE").status == 200
    bot.fake.wait_for("chat.postMessage")
    bot.services.pool.shutdown(wait=True)  # whatever the second submission started has finished
    assert len(bot.fake.requests("chat.postMessage")) == 1
    assert not bot.fake.requests("chat.postEphemeral")
    assert len(_rows(bot, "prod", "diag.har_capture")) == 1


def test_an_ack_command_sent_again_records_one_row_and_says_so(bot):
    bot.command("ack diag.har_capture drill done")
    first = bot.fake.wait_for("respond")[0]
    bot.command("ack diag.har_capture drill done")
    again = bot.fake.wait_for("respond", count=2)[1]
    assert first["response_type"] == "in_channel"
    assert again["response_type"] == "ephemeral" and "nothing new was" in again["text"]
    assert len(_rows(bot, "prod", "diag.har_capture")) == 1


def test_a_button_double_clicked_runs_once(bot):
    bot.click(ids.TRIAGE_RERUN, json.dumps({"t": "prod", "r": "queue-depth"}), message_ts="1700000000.000900")
    bot.click(ids.TRIAGE_RERUN, json.dumps({"t": "prod", "r": "queue-depth"}), message_ts="1700000000.000900")
    bot.fake.wait_for("chat.postMessage")
    bot.services.pool.shutdown(wait=True)  # whatever the second click started has finished
    assert len(bot.fake.requests("chat.postMessage")) == 1
    assert not bot.fake.requests("respond")  # not even an "already running"


# --- Escaping, clipping, attribution ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "live"),
    [
        ("check <!channel>", "<!channel>"),
        ("status <@U0AAAAAAA>", "<@U0AAAAAAA>"),
        ("check <!here|here>", "<!here"),
    ],
)
def test_error_replies_show_what_was_typed_literally(bot, text, live):
    bot.command(text)
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral" and live not in reply["text"]
    assert "&lt;" in reply["text"]


def test_a_huge_selector_is_refused_before_checking_and_the_reply_is_clipped(bot):
    bot.command("check " + "x" * 8000)
    reply = bot.fake.wait_for("respond")[0]
    assert "8000 characters" in json.dumps(reply) and len(json.dumps(reply)) < 8000
    bot.command("help")
    bot.fake.wait_for("respond", count=2)
    assert not [r for r in bot.fake.requests("respond") if "Checking" in r.get("text", "")]


def test_an_unknown_selector_is_refused_before_checking_and_echoed_clipped_and_escaped(bot):
    bot.command("check " + "<!channel>" + "y" * 90)
    reply = bot.fake.wait_for("respond")[0]
    assert (
        "not a section" in reply["text"] and "<!channel>" not in reply["text"] and len(reply["text"]) <= 3000
    )
    bot.command("help")
    bot.fake.wait_for("respond", count=2)
    assert not [r for r in bot.fake.requests("respond") if "Checking" in r.get("text", "")]


def test_channel_posts_say_who_ran_them(bot):
    bot.command("check staging")
    report = bot.fake.wait_for("chat.postMessage")[0]
    assert f"Run by <@{USER}>" in json.dumps(report["blocks"])
    bot.wait_idle()
    bot.command("triage prod queue-depth")
    first = bot.fake.wait_for("chat.postMessage", count=2)[1]
    assert f"Triage started by <@{USER}>" in json.dumps(first["blocks"])
    final = bot.fake.wait_for("chat.update", lambda u: ids.TRIAGE_RERUN in json.dumps(u.get("blocks")))[0]
    assert f"started by <@{USER}> 20" in json.dumps(final["blocks"])  # the footer repeats it, with the time


def test_status_me_is_answered_only_to_the_caller(bot):
    bot.command("status me")
    reply = bot.fake.wait_for("respond", lambda r: "blocks" in r)[0]
    assert reply["response_type"] == "ephemeral" and "Readiness status: prod" in json.dumps(reply["blocks"])
    bot.wait_idle()
    assert not bot.fake.requests("chat.postMessage")


def test_a_modal_for_a_target_that_is_gone_shows_why_in_the_modal(bot):
    reply = bot.submit(_modal(), json.dumps({"t": "retired", "c": CHANNEL}))
    assert reply.status == 200 and "unknown target 'retired'" in reply.json()["errors"][ids.ACK_ITEM_BLOCK]
    assert (USER, "ack", "error") in [
        (e.actor, e.action, e.outcome) for e in _audit_when(bot, lambda e: e.outcome == "error")
    ]


def _audit_when(bot, match, timeout=10.0):
    wait_until(
        lambda: [e for e in bot.readiness.audit.since() if match(e)], timeout=timeout, what="the entry"
    )
    return bot.readiness.audit.since()


def test_acks_do_not_wait_on_a_store_another_process_holds_locked(bot, tmp_path):
    import sqlite3

    holder = sqlite3.connect(str(tmp_path / "lsready.db"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every write waits, as behind a stuck volume or a long migration
    try:
        meta = json.dumps({"t": "prod", "c": CHANNEL, "ts": "1700000000.000321"})
        acked = [
            bot.submit(_modal(), meta),
            bot.command("ack diag.log_collection shipped"),
            bot.command("help"),
        ]
        assert [r.status for r in acked] == [200, 200, 200]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    bot.fake.wait_for("chat.postMessage")  # the modal's work went on once the store was free
    assert "diag.har_capture" in bot.readiness.acks.active("prod")
