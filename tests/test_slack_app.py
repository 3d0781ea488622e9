"""The bot over real HTTP: signed requests in, Web API calls out to a local fake Slack."""

import json
import logging
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_fake import BotHarness, send
from waiting import wait_until

from bot import actions as ids
from bot.pools import SLOW_WAITING, SLOW_WORKERS
from bot.render.limits import problems
from conftest import make_config
from runbooks.triage import RUNBOOKS

USER, CHANNEL = "U0000001", "C0000001"


@pytest.fixture
def bot(tmp_path):
    config = make_config(
        {"prod": {}, "staging": {}}, default_target="prod", timeouts={"probe_s": 1, "run_s": 3}
    )
    with BotHarness(config, tmp_path / "lsready.db") as harness:
        yield harness


def audit_actions(bot, expect=None, timeout=10.0):
    """(actor, action, outcome) of each audit entry; waits until `expect` is among them."""

    def entries():
        return [(e.actor, e.action, e.outcome) for e in bot.readiness.audit.since()]

    if expect is not None:
        wait_until(lambda: expect in entries(), timeout=timeout, what=f"the audit entry {expect}")
    return entries()


def valid(message):
    """A recorded chat.postMessage/update or respond payload that Slack would accept."""
    payload = {k: message[k] for k in ("text", "blocks", "metadata") if k in message}
    assert problems(payload, "message") == []
    return message


# --- Transport ---------------------------------------------------------------------------------


def test_healthz_and_metrics_answer_on_the_http_port(bot):
    with urllib.request.urlopen(bot.base + "/healthz", timeout=5) as resp:
        assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    bot.command("help")
    bot.fake.wait_for("respond")
    with urllib.request.urlopen(bot.base + "/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert resp.status == 200 and 'lsready_commands_total{command="help",outcome="ok"} 1.0' in body


def test_forged_stale_and_unsigned_requests_are_rejected_with_401(bot):
    assert bot.command("help", signature="v0=" + "0" * 64).status == 401
    assert bot.command("help", secret="not-the-secret").status == 401
    assert bot.command("help", timestamp=time.time() - 6 * 60).status == 401
    assert bot.command("help", omit=("X-Slack-Signature",)).status == 401
    assert bot.command("help", omit=("X-Slack-Request-Timestamp",)).status == 401
    assert bot.command("help").status == 200
    bot.fake.wait_for("respond")
    assert len(bot.fake.requests("respond")) == 1  # only the genuine request was acted on


def test_non_slack_paths_are_not_found(bot):
    assert send(bot.base + "/elsewhere", "x", "text/plain").status == 404


# --- Commands --------------------------------------------------------------------------------


def test_help_is_ephemeral_and_lists_every_command(bot):
    assert bot.command("help").status == 200
    reply = valid(bot.fake.wait_for("respond")[0])
    assert reply["response_type"] == "ephemeral"
    for name in ("triage", "check", "status", "ack", "digest"):
        assert f"/langsmith {name}" in json.dumps(reply["blocks"])


def test_unknown_subcommand_gets_help_with_did_you_mean(bot):
    bot.command("stauts prod")
    reply = bot.fake.wait_for("respond")[0]
    assert "Did you mean `status`?" in json.dumps(reply["blocks"])
    assert ("U0000001", "help", "usage") in audit_actions(bot, ("U0000001", "help", "usage"))


def test_check_posts_the_report_with_target_metadata_and_records_it(bot):
    reply = bot.command("check staging")
    assert reply.status == 200 and reply.elapsed < 2.5
    posted = valid(bot.fake.wait_for("chat.postMessage")[0])
    assert posted["channel"] == CHANNEL
    assert posted["metadata"] == {
        "event_type": "lsready_report",
        "event_payload": {"target": "staging", "kind": "check"},
    }
    assert "LangSmith readiness: staging" in json.dumps(posted["blocks"])
    assert "Checking staging" in bot.fake.wait_for("respond")[0]["text"]
    assert bot.readiness.history.latest("staging") is not None
    bot.fake.wait_for("chat.postMessage")
    assert (USER, "check", "ok") in audit_actions(bot, (USER, "check", "ok"))


def test_check_of_one_section_posts_only_that_section(bot):
    bot.command("check redis")
    posted = valid(bot.fake.wait_for("chat.postMessage")[0])
    text = json.dumps(posted["blocks"])
    assert "1. Redis" in text and "2. PostgreSQL" not in text


def test_status_posts_score_buckets(bot):
    bot.command("status")
    posted = valid(bot.fake.wait_for("chat.postMessage")[0])
    text = json.dumps(posted["blocks"])
    assert "Readiness status: prod" in text and "Score" in text and "manual items wait" in text


def test_ack_records_the_acknowledgement_and_confirms_in_channel(bot):
    bot.command("ack diag.har_capture HAR capture drill with support &lt;ok&gt; for 30d")
    reply = valid(bot.fake.wait_for("respond")[0])
    assert reply["response_type"] == "in_channel"
    ack = bot.readiness.acks.active("prod")["diag.har_capture"]
    assert ack.by == USER and ack.note == "HAR capture drill with support <ok>" and ack.channel == CHANNEL
    assert 29 <= (ack.expires - ack.created).days <= 30
    assert "&lt;ok&gt;" in json.dumps(reply["blocks"])  # shown literally, not as a link
    assert (USER, "ack", "ok") in audit_actions(bot, (USER, "ack", "ok"))


def test_a_second_ack_says_in_its_confirmation_that_it_supersedes_the_first(bot):
    bot.command("ack diag.har_capture first drill for 30d")
    first = valid(bot.fake.wait_for("respond")[0])
    assert "supersedes" not in json.dumps(first["blocks"])
    bot.command("ack diag.har_capture second drill for 60d")
    second = valid(bot.fake.wait_for("respond", count=2)[1])
    assert "It supersedes" in json.dumps(second["blocks"])


def test_ack_of_an_automated_item_is_refused_with_the_reason(bot):
    bot.command("ack redis.memory_sized it is fine")
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral" and "checked automatically" in reply["text"]
    assert not bot.readiness.acks.active("prod")
    assert (USER, "ack", "error") in audit_actions(bot, (USER, "ack", "error"))


def test_unknown_target_is_a_one_line_ephemeral_naming_the_targets(bot):
    bot.command("status nowhere")
    reply = bot.fake.wait_for("respond")[0]
    assert "unknown target 'nowhere'" in reply["text"] and "prod, staging" in reply["text"]


def test_digest_preview_is_ephemeral_with_the_digest_blocks(bot):
    bot.command("digest")
    replies = bot.fake.wait_for("respond", lambda r: "blocks" in r)
    assert replies[0]["response_type"] == "ephemeral"
    assert "Weekly LangSmith readiness: prod" in json.dumps(valid(replies[0])["blocks"])


def test_triage_posts_a_checklist_and_updates_it_in_place_to_the_diagnosis(bot):
    reply = bot.command("triage prod queue-depth")
    assert reply.status == 200 and reply.elapsed < 2.5
    first = valid(bot.fake.wait_for("chat.postMessage")[0])
    assert "Running queue-depth triage on prod" in first["text"]
    assert first["metadata"]["event_payload"] == {"target": "prod", "kind": "triage"}
    final = bot.fake.wait_for("chat.update", lambda u: ids.TRIAGE_RERUN in json.dumps(u.get("blocks")))[0]
    valid(final)
    assert (final["channel"], final["ts"]) == bot.fake.posted[0]  # the same message, updated in place
    text = json.dumps(final["blocks"])
    steps = RUNBOOKS["queue-depth"].steps
    assert all(step.title in text for step in steps)
    assert ids.TRIAGE_RUN_ALL in text and ids.EVIDENCE in text
    assert (USER, "triage", "ok") in audit_actions(bot, (USER, "triage", "ok"))


def test_triage_is_acked_in_time_even_when_backends_never_answer(tmp_path, blackhole):
    silent = f"127.0.0.1:{blackhole.port}"
    target = {"redis": {"url": f"redis://{silent}/0"}, "clickhouse": {"url": f"http://{silent}/default"}}
    config = make_config({"prod": target}, timeouts={"probe_s": 1, "run_s": 2})
    with BotHarness(config, tmp_path / "lsready.db") as bot:
        reply = bot.command("triage prod")
        assert reply.status == 200
        assert reply.elapsed < 2.5  # Slack's limit is 3 s; this is a correctness bound, not a benchmark
        final = bot.fake.wait_for(
            "chat.update", lambda u: ids.TRIAGE_RERUN in json.dumps(u.get("blocks")), timeout=40
        )
        text = json.dumps(valid(final[0])["blocks"])
        assert ":grey_question:" in text  # inconclusive, with the steps that could not tell


# --- Buttons, modal, thread replies, App Home ---------------------------------------------------


def _posted_report(bot, target="prod"):
    bot.command(f"check {target}")
    message = bot.fake.wait_for("chat.postMessage")[0]
    bot.wait_idle()  # a click on its buttons comes from a person, after the run has ended
    return message


def _button(message, base):
    for block in message["blocks"]:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if ids.pattern(base).match(element.get("action_id", "")):
                return element
    raise AssertionError(f"no {base} button")


def _counted(bot, command, outcome):
    labels = {"command": command, "outcome": outcome}
    return bot.services.metrics.registry.get_sample_value("lsready_commands_total", labels) or 0


def test_each_command_is_counted_once_with_its_outcome(bot):
    bot.command("help")
    bot.fake.wait_for("respond")
    _posted_report(bot)  # a check: counted when it has run, not when it was handed on
    assert (_counted(bot, "help", "ok"), _counted(bot, "check", "ok")) == (1, 1)
    bot.submit(_modal_values(expiry="forever"), json.dumps({"t": "prod"}))
    bot.submit(_modal_values(), json.dumps({"t": "prod"}))
    wait_until(
        lambda: (_counted(bot, "ack", "error"), _counted(bot, "ack", "ok")) == (1, 1),
        what="both acks counted",
    )


def test_rerun_button_posts_a_fresh_report_in_the_thread(bot):
    report = _posted_report(bot)
    button = _button(report, ids.CHECK_RERUN)
    assert bot.click(button["action_id"], button["value"], message_ts="1700000000.000777").status == 200
    again = bot.fake.wait_for("chat.postMessage", count=2)[1]
    assert again["thread_ts"] == "1700000000.000777"
    assert len(bot.readiness.history.runs("prod")) == 2


def test_show_evidence_uploads_the_timestamped_snapshot_as_json(bot):
    report = _posted_report(bot)
    button = _button(report, ids.EVIDENCE)
    bot.click(button["action_id"], button["value"], message_ts="1700000000.000555")
    complete = bot.fake.wait_for("files.completeUploadExternal")[0]
    assert complete["channel_id"] == CHANNEL and complete["thread_ts"] == "1700000000.000555"
    start = bot.fake.requests("files.getUploadURLExternal")[0]
    assert start["filename"].startswith("lsready-check-prod-") and start["filename"].endswith(".json")
    upload = bot.fake.wait_for("upload")[0]
    snapshot = json.loads(bot.fake.uploads[upload["file_id"]])
    assert snapshot["kind"] == "check" and snapshot["target"] == "prod" and snapshot["snapshot_at"]
    assert len(snapshot["data"]["results"]) == 69


def test_show_evidence_for_a_forgotten_snapshot_says_to_rerun(bot):
    bot.click(ids.EVIDENCE, "no-such-snapshot")
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral" and "Re-run" in reply["text"]


def test_acknowledge_button_opens_the_modal_with_the_item_preselected(bot):
    value = json.dumps({"t": "prod", "i": "diag.har_capture"})
    bot.click(ids.param(ids.ACK_OPEN, "0.1"), value, message_ts="1700000000.000321")
    opened = bot.fake.wait_for("views.open")[0]
    view = opened["view"]
    assert problems(view, "modal") == []
    assert view["callback_id"] == ids.ACK_MODAL and opened["trigger_id"] == "1.2.3"
    assert json.loads(view["private_metadata"]) == {"t": "prod", "c": CHANNEL, "ts": "1700000000.000321"}
    select = next(b for b in view["blocks"] if b.get("block_id") == ids.ACK_ITEM_BLOCK)["element"]
    assert select["initial_option"]["value"] == "diag.har_capture"


def _modal_values(item="diag.har_capture", note="restore drill, 40 min", expiry="60d", link="https://wiki/x"):
    return {
        ids.ACK_ITEM_BLOCK: {ids.ACK_ITEM: {"type": "static_select", "selected_option": {"value": item}}},
        ids.ACK_NOTE_BLOCK: {ids.ACK_NOTE: {"type": "plain_text_input", "value": note}},
        ids.ACK_EXPIRY_BLOCK: {ids.ACK_EXPIRY: {"type": "plain_text_input", "value": expiry}},
        ids.ACK_LINK_BLOCK: {ids.ACK_LINK: {"type": "url_text_input", "value": link}},
    }


def test_modal_submission_records_the_ack_and_confirms_in_the_thread(bot):
    meta = json.dumps({"t": "prod", "c": CHANNEL, "ts": "1700000000.000321"})
    reply = bot.submit(_modal_values(), meta)
    assert reply.status == 200 and not reply.body  # closes the modal; the work runs behind the ack
    confirmation = valid(bot.fake.wait_for("chat.postMessage")[0])
    ack = bot.readiness.acks.active("prod")["diag.har_capture"]
    assert ack.evidence_link == "https://wiki/x" and ack.thread_ts == "1700000000.000321"
    assert 59 <= (ack.expires - ack.created).days <= 60
    assert confirmation["thread_ts"] == "1700000000.000321" and "restore drill" in json.dumps(
        confirmation["blocks"]
    )


def test_modal_opened_from_home_records_the_ack_and_refreshes_the_board(bot):
    bot.click(ids.param(ids.ACK_OPEN, "0.0"), json.dumps({"t": "prod", "i": "diag.har_capture"}), home=True)
    meta = bot.fake.wait_for("views.open")[0]["view"]["private_metadata"]
    assert json.loads(meta) == {"t": "prod", "home": 1}
    assert bot.submit(_modal_values(), meta).status == 200
    board = bot.fake.wait_for("views.publish")[0]
    bot.wait_idle()
    assert "Acknowledged diag.har_capture on prod." in json.dumps(board["view"])
    assert bot.readiness.acks.active("prod")["diag.har_capture"].channel is None
    assert not bot.fake.requests("chat.postMessage")


def test_modal_submission_with_a_bad_duration_shows_the_error_on_that_field(bot):
    reply = bot.submit(_modal_values(expiry="forever"), json.dumps({"t": "prod"}))
    body = reply.json()
    assert body["response_action"] == "errors" and "not a duration" in body["errors"][ids.ACK_EXPIRY_BLOCK]
    assert not bot.readiness.acks.active("prod")
    # audited like /langsmith ack
    assert audit_actions(bot, (USER, "ack", "error")) == [(USER, "ack", "error")]


def test_thread_reply_ack_under_a_report_uses_the_target_from_its_metadata(bot):
    parent = _posted_report(bot, "staging")
    ts = bot.fake.posted[0][1]
    event = {
        "type": "message",
        "channel": CHANNEL,
        "user": USER,
        "text": "ack diag.log_collection logs shipped",
        "ts": "1700000099.000001",
        "thread_ts": ts,
        "channel_type": "channel",
    }
    assert parent["metadata"]["event_payload"]["target"] == "staging"
    assert bot.event(event).status == 200
    confirmation = bot.fake.wait_for("chat.postMessage", lambda m: m.get("thread_ts") == ts)[0]
    assert "diag.log_collection" in json.dumps(valid(confirmation)["blocks"])
    replies = bot.fake.requests("conversations.replies")[0]
    assert replies["ts"] == ts and str(replies["include_all_metadata"]).lower() in ("1", "true")
    ack = bot.readiness.acks.active("staging")["diag.log_collection"]
    assert ack.note == "logs shipped" and ack.thread_ts == ts and ack.channel == CHANNEL


def test_thread_reply_under_someone_elses_message_is_ignored(bot):
    event = {
        "type": "message",
        "channel": CHANNEL,
        "user": USER,
        "text": "ack diag.log_collection sure",
        "ts": "1700000099.000002",
        "thread_ts": "1600000000.000001",
        "channel_type": "channel",
    }
    assert bot.event(event).status == 200
    bot.fake.wait_for("conversations.replies")
    assert not bot.readiness.acks.active("prod") and not bot.fake.requests("chat.postMessage")


def test_app_home_shows_the_stored_board_without_running_probes(bot):
    bot.readiness.check("prod")
    runs = len(bot.readiness.history.runs("prod"))
    bot.event({"type": "app_home_opened", "user": USER, "channel": "D1", "tab": "home"})
    published = bot.fake.wait_for("views.publish")[0]
    assert published["user_id"] == USER
    view = published["view"]
    assert problems(view, "home") == [] and view["type"] == "home"
    text = json.dumps(view)
    assert "diag.har_capture" in text and ids.ACK_OPEN in text and ids.HOME_CHECK in text
    assert "No check of *staging* is stored yet" in text
    assert len(bot.readiness.history.runs("prod")) == runs


def test_home_run_check_button_checks_and_republishes_the_board(bot):
    bot.click(ids.param(ids.HOME_CHECK, 0), json.dumps({"t": "staging", "home": 1}), home=True)
    views = bot.fake.wait_for("views.publish", count=2)
    assert "Checked staging" in json.dumps(views[1]["view"])
    assert bot.readiness.history.latest("staging") is not None


def test_triage_rerun_and_run_all_buttons_post_in_the_thread(bot):
    bot.click(ids.TRIAGE_RERUN, json.dumps({"t": "prod", "r": "queue-depth"}), message_ts="1700000000.000900")
    first = bot.fake.wait_for("chat.postMessage")[0]
    assert first["thread_ts"] == "1700000000.000900" and "queue-depth" in first["text"]
    bot.click(ids.TRIAGE_RUN_ALL, json.dumps({"t": "prod"}), message_ts="1700000000.000901")
    n = len(RUNBOOKS)
    posted = bot.fake.wait_for(
        "chat.postMessage", lambda m: m.get("thread_ts") == "1700000000.000901", count=n, timeout=60
    )
    assert {p["text"].split(" ")[1] for p in posted} == set(RUNBOOKS)


# --- Errors ----------------------------------------------------------------------------------


def test_unexpected_error_gets_an_id_the_user_can_quote_and_the_log_has_it(bot, caplog):
    bot.fake.errors["chat.postMessage"] = "fatal_error"
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        bot.command("status")
        reply = bot.fake.wait_for("respond", lambda r: "error id" in r.get("text", ""))[0]
    error_id = reply["text"].split("`")[1]
    assert reply["response_type"] == "ephemeral"
    assert any(error_id in r.getMessage() for r in caplog.records)
    assert (USER, "status", "failed") in audit_actions(bot, (USER, "status", "failed"))
    assert any(e.detail == f"error id {error_id}" for e in bot.readiness.audit.since())


def test_bot_outside_the_channel_asks_to_be_invited(bot):
    bot.fake.errors["chat.postMessage"] = "not_in_channel"
    bot.command("check")
    reply = bot.fake.wait_for("respond", lambda r: "invite" in r.get("text", ""))[0]
    assert reply["response_type"] == "ephemeral"


def test_concurrent_commands_each_use_their_own_database_connection(bot):
    items = [i.id for i in bot.readiness.catalog.items if i.attestable][:8]
    threads = [threading.Thread(target=bot.command, args=(f"ack {item} done",)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replies = bot.fake.wait_for("respond", count=len(items))
    assert all(r["response_type"] == "in_channel" for r in replies)
    assert set(bot.readiness.acks.active("prod")) == set(items)


# --- Capacity --------------------------------------------------------------------------------


def test_a_flood_of_hung_triages_leaves_acks_prompt_and_the_overflow_hears_busy_at_once(tmp_path, blackhole):
    silent = f"127.0.0.1:{blackhole.port}"
    target = {"redis": {"url": f"redis://{silent}/0"}, "clickhouse": {"url": f"http://{silent}/default"}}
    capacity = SLOW_WORKERS + SLOW_WAITING
    config = make_config({f"t{n}": target for n in range(capacity + 1)}, timeouts={"probe_s": 3, "run_s": 5})
    with BotHarness(config, tmp_path / "lsready.db") as bot:
        with ThreadPoolExecutor(capacity) as senders:
            flood = list(senders.map(bot.command, [f"triage t{n}" for n in range(capacity)]))
        assert all(r.status == 200 and r.elapsed < 3 for r in flood)
        wait_until(lambda: bot.services.pool.admitted == capacity, what="every slot taken")  # some wait

        # Slack gives up on an ack after 3 s; this is a correctness bound, not a benchmark.
        reply = bot.command("help")
        assert reply.status == 200 and reply.elapsed < 3
        assert "/langsmith triage" in json.dumps(bot.fake.wait_for("respond", lambda r: "blocks" in r)[0])

        t0 = time.monotonic()
        assert bot.command(f"triage t{capacity}").status == 200
        busy = bot.fake.wait_for("respond", lambda r: "busy" in r.get("text", ""), timeout=3)[0]
        assert time.monotonic() - t0 < 3  # at once, not after the triages ahead of it
        assert busy["response_type"] == "ephemeral"
        assert f"{capacity} checks/triages are running or waiting" in busy["text"]

        assert bot.command("triage t0").status == 200  # identical to one running: told where to look
        same = bot.fake.wait_for("respond", lambda r: "already running" in r.get("text", ""), timeout=3)[0]
        assert same["response_type"] == "ephemeral" and f"<#{CHANNEL}>" in same["text"]

        finals = bot.fake.wait_for(
            "chat.update",
            lambda u: ids.TRIAGE_RERUN in json.dumps(u.get("blocks")),
            count=capacity,
            timeout=60,
        )
        assert len(finals) == capacity == len(bot.fake.requests("chat.postMessage"))  # t16 never ran
        assert (USER, "triage", "busy") in audit_actions(bot, (USER, "triage", "busy"))
        wait_until(lambda: bot.services.pool.admitted == 0, what="every slot free again")
