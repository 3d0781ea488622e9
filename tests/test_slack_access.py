"""`slack.access`: refusals are ephemeral and audited, help hides what a user may not run."""

import json

import pytest
from slack_fake import BotHarness

from conftest import make_config

ADMIN, SRE, STRANGER = "UADMIN0001", "USRE000001", "USTRANGER1"
OPS_CHANNEL, OTHER_CHANNEL = "COPS000001", "COTHER0001"


@pytest.fixture
def bot(tmp_path):
    access = {
        "triage": {"users": [ADMIN]},
        "ack": {"usergroups": ["SSRE000001"]},
        "check": {"channels": [OPS_CHANNEL]},
    }
    config = make_config({"prod": {}}, slack={"access": access})
    with BotHarness(config, tmp_path / "lsready.db", usergroups={"SSRE000001": [SRE]}) as harness:
        yield harness


def test_unauthorised_user_is_refused_ephemerally_and_audited(bot):
    assert bot.command("triage prod", user=STRANGER).status == 200
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral"
    assert "not allowed to use `triage`" in reply["text"] and "slack.access.triage" in reply["text"]
    assert not bot.fake.requests("chat.postMessage")
    refusals = [e for e in bot.readiness.audit.since() if e.outcome == "refused"]
    assert [(e.actor, e.action, e.target, e.place) for e in refusals] == [
        (STRANGER, "triage", "prod", "C0000001")
    ]


def test_help_hides_commands_the_user_may_not_run(bot):
    bot.command("help", user=STRANGER, channel=OTHER_CHANNEL)
    text = json.dumps(bot.fake.wait_for("respond")[0]["blocks"])
    assert "/langsmith status" in text and "/langsmith digest" in text
    for hidden in ("/langsmith triage", "/langsmith check", "/langsmith ack", "/langsmith preflight"):
        assert hidden not in text  # preflight follows the check rule
    assert "4 more commands need access you do not have" in text


def test_listed_user_may_run_the_restricted_command(bot):
    bot.command("help", user=ADMIN, channel=OTHER_CHANNEL)
    assert "/langsmith triage" in json.dumps(bot.fake.wait_for("respond")[0]["blocks"])


def test_usergroup_member_may_ack_and_membership_is_cached(bot):
    bot.command("ack diag.har_capture drill done", user=SRE)
    bot.fake.wait_for("respond")
    assert bot.readiness.acks.active("prod")["diag.har_capture"].by == SRE
    bot.command("ack diag.log_collection shipped", user=SRE)
    bot.fake.wait_for("respond", count=2)
    bot.command("ack diag.log_collection again", user=STRANGER)
    refusal = bot.fake.wait_for("respond", count=3)[2]
    assert "not allowed to use `ack`" in refusal["text"]
    assert bot.fake.requests("usergroups.users.list") == [{"usergroup": "SSRE000001"}]


def test_a_channel_rule_lets_anyone_in_that_channel_check(bot):
    bot.command("check", user=STRANGER, channel=OPS_CHANNEL)
    assert bot.fake.wait_for("chat.postMessage")[0]["channel"] == OPS_CHANNEL
    for _ in range(5):  # a refusal right after the ack must not turn into a 3 s timeout and a 404
        reply = bot.command("check", user=STRANGER, channel=OTHER_CHANNEL)
        assert reply.status == 200 and reply.elapsed < 2.5
    assert (
        "not allowed to use `check`"
        in bot.fake.wait_for("respond", lambda r: "allowed" in r.get("text", ""))[0]["text"]
    )


def test_home_hides_acknowledge_buttons_from_users_who_may_not_ack(bot):
    bot.readiness.check("prod")
    bot.event({"type": "app_home_opened", "user": STRANGER, "channel": "D1", "tab": "home"})
    text = json.dumps(bot.fake.wait_for("views.publish")[0]["view"])
    assert "diag.har_capture" in text and "lsready.ack.open" not in text


def test_thread_reply_ack_from_a_stranger_is_refused_in_the_thread(bot):
    bot.command("check", user=ADMIN, channel=OPS_CHANNEL)
    channel, ts = bot.fake.wait_for("chat.postMessage") and bot.fake.posted[0]
    event = {
        "type": "message",
        "channel": channel,
        "user": STRANGER,
        "text": "ack diag.har_capture yes",
        "ts": "1700000099.000003",
        "thread_ts": ts,
        "channel_type": "channel",
    }
    bot.event(event)
    ephemeral = bot.fake.wait_for("chat.postEphemeral")[0]
    assert (
        ephemeral["user"] == STRANGER and ephemeral["thread_ts"] == ts and "not allowed" in ephemeral["text"]
    )
    assert not bot.readiness.acks.active("prod")


def test_modal_submission_by_someone_who_may_not_ack_keeps_the_modal_open_with_the_reason(bot):
    values = {
        "ack_item": {"item": {"type": "static_select", "selected_option": {"value": "diag.har_capture"}}},
        "ack_note": {"note": {"type": "plain_text_input", "value": "done"}},
        "ack_expiry": {"expiry": {"type": "plain_text_input", "value": "90d"}},
        "ack_link": {"link": {"type": "url_text_input", "value": None}},
    }
    reply = bot.submit(values, json.dumps({"t": "prod", "c": OTHER_CHANNEL}), user=STRANGER)
    assert reply.json()["response_action"] == "errors"
    assert "not allowed to use `ack`" in reply.json()["errors"]["ack_note"]
    assert not bot.readiness.acks.active("prod")
    assert [(e.actor, e.outcome) for e in bot.readiness.audit.since()] == [(STRANGER, "refused")]


def test_evidence_needs_the_right_to_produce_it(bot):
    bot.command("check", user=ADMIN, channel=OPS_CHANNEL)
    report = bot.fake.wait_for("chat.postMessage")[0]
    evidence = next(
        e for b in report["blocks"] for e in b.get("elements", []) if e.get("action_id") == "lsready.evidence"
    )
    bot.click(evidence["action_id"], evidence["value"], user=STRANGER, channel=OTHER_CHANNEL)
    refusal = bot.fake.wait_for("respond", lambda r: "allowed" in r.get("text", ""))[0]
    assert "not allowed to use `check`" in refusal["text"] and not bot.fake.requests(
        "files.getUploadURLExternal"
    )


def test_a_group_lookup_slack_never_answers_still_lets_the_modal_answer_in_time(bot, blackhole):
    values = {
        "ack_item": {"item": {"type": "static_select", "selected_option": {"value": "diag.har_capture"}}},
        "ack_note": {"note": {"type": "plain_text_input", "value": "done"}},
        "ack_expiry": {"expiry": {"type": "plain_text_input", "value": "90d"}},
        "ack_link": {"link": {"type": "url_text_input", "value": None}},
    }
    lookups = bot.services.access.client
    fake_api, lookups.base_url = lookups.base_url, f"http://127.0.0.1:{blackhole.port}/api/"
    reply = bot.submit(values, json.dumps({"t": "prod", "c": OPS_CHANNEL}), user=SRE)
    assert reply.status == 200 and reply.elapsed < 3  # the lookup gave up before Slack did
    assert "not allowed to use `ack`" in reply.json()["errors"]["ack_note"]  # nobody, this once
    lookups.base_url = fake_api
    assert bot.submit(values, json.dumps({"t": "prod", "c": OPS_CHANNEL}), user=SRE).status == 200
    assert bot.readiness.acks.active("prod")["diag.har_capture"].by == SRE  # the miss was not cached
