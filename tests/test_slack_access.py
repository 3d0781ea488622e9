"""`slack.access`: refusals are ephemeral and audited, help hides what a user may not run."""

import json
import threading

import pytest
from slack_fake import BotHarness
from waiting import wait_until

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
    assert _audited(bot, lambda entries: entries) == [(STRANGER, "ack", "refused")]  # audited behind the ack


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


def _audited(bot, done, timeout=10.0):
    """(actor, action, outcome) of the audit entries once `done(entries)` is truthy."""

    def entries():
        return [(e.actor, e.action, e.outcome) for e in bot.readiness.audit.since()]

    wait_until(lambda: done(entries()), timeout=timeout, what="the audit entries awaited")
    return entries()


MODAL = {
    "ack_item": {"item": {"type": "static_select", "selected_option": {"value": "diag.har_capture"}}},
    "ack_note": {"note": {"type": "plain_text_input", "value": "done"}},
    "ack_expiry": {"expiry": {"type": "plain_text_input", "value": "90d"}},
    "ack_link": {"link": {"type": "url_text_input", "value": None}},
}


def test_membership_is_known_before_the_first_request(bot):
    assert bot.fake.requests("usergroups.users.list") == [{"usergroup": "SSRE000001"}]  # warmed at start
    reply = bot.submit(MODAL, json.dumps({"t": "prod", "c": OPS_CHANNEL}), user=STRANGER)
    assert "not allowed to use `ack`" in reply.json()["errors"]["ack_note"]  # decided from the cache


def test_an_on_call_member_is_not_refused_while_slack_answers_group_lookups_slowly(bot):
    bot.services.access.ttl_s = 0  # every lookup is due again
    bot.fake.delays["usergroups.users.list"] = 2.5
    assert bot.command("ack diag.har_capture drill done", user=SRE).status == 200
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "in_channel"  # the last known members answered
    assert bot.readiness.acks.active("prod")["diag.har_capture"].by == SRE
    assert (SRE, "ack", "refused") not in _audited(bot, lambda e: (SRE, "ack", "ok") in e)


def test_a_member_is_let_in_behind_the_ack_when_the_cache_is_cold_and_slack_is_slow(bot):
    bot.services.access._members.clear()  # as if the warm-up had not been answered
    bot.fake.delays["usergroups.users.list"] = 2.5
    reply = bot.submit(MODAL, json.dumps({"t": "prod", "c": OPS_CHANNEL}), user=SRE)
    assert reply.status == 200 and not reply.body  # closed at once; membership checked behind the ack
    bot.fake.wait_for("chat.postMessage", timeout=15)
    assert bot.readiness.acks.active("prod")["diag.har_capture"].by == SRE


def test_a_lookup_that_cannot_be_made_is_audited_as_unverified_not_refused(bot):
    bot.services.access._members.clear()
    bot.fake.errors["usergroups.users.list"] = "missing_scope"
    bot.command("ack diag.har_capture drill done", user=SRE)
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral" and "could not check with Slack" in reply["text"]
    assert not bot.readiness.acks.active("prod")
    entries = _audited(bot, lambda e: e)
    assert entries == [(SRE, "ack", "unverified")]
    detail = bot.readiness.audit.since()[0].detail
    assert "could not verify" in detail


def test_while_slack_fails_the_last_known_members_decide_and_the_audit_says_so(bot):
    bot.services.access.ttl_s = 0
    bot.fake.errors["usergroups.users.list"] = "internal_error"
    bot.command("ack diag.har_capture drill done", user=SRE)  # starts a refresh that fails
    assert bot.fake.wait_for("respond")[0]["response_type"] == "in_channel"
    wait_until(lambda: bot.services.access.stale_note("SSRE000001") is not None, what="the failed refresh")
    bot.command("ack diag.log_collection shipped", user=SRE)
    bot.command("ack diag.log_collection shipped", user=STRANGER)
    bot.fake.wait_for("respond", count=3)
    entries = {(e.actor, e.outcome): e.detail for e in bot.readiness.audit.since()}
    assert "members of SSRE000001 as known" in entries[(SRE, "allowed")]
    assert "internal_error" in entries[(SRE, "allowed")]
    assert entries[(STRANGER, "refused")].startswith("refused from members of SSRE000001")


class _Lookups:
    """A stand-in for the Web API's usergroups.users.list that answers when told to."""

    def __init__(self, users):
        self.users, self.calls, self.go = users, 0, threading.Event()

    def usergroups_users_list(self, usergroup):
        self.calls += 1
        self.go.wait(10)
        return {"users": list(self.users)}


def test_a_stale_entry_answers_at_once_while_one_lookup_refreshes_it():
    from bot.access import Access, Verdict
    from checks.config import validate

    now = [0.0]
    slack = validate(
        {"targets": {"p": {}}, "slack": {"access": {"triage": {"usergroups": ["S1"]}}}}, "t"
    ).slack
    lookups = _Lookups([SRE])
    access = Access(slack, lookups, ttl_s=60, clock=lambda: now[0])
    assert access.decide("triage", SRE, wait=False) is Verdict.UNVERIFIED  # nothing known yet, not waited
    lookups.go.set()
    assert access.decide("triage", SRE) is Verdict.ALLOWED  # behind the ack: waits for the lookup
    lookups.go.clear()
    lookups.users = [STRANGER]  # SRE left the group
    now[0] = 61.0
    for _ in range(5):  # stale: the last known members answer, and only one lookup runs
        assert access.decide("triage", SRE) is Verdict.ALLOWED
    assert lookups.calls == 2
    lookups.go.set()
    wait_until(lambda: access.decide("triage", SRE) is not Verdict.ALLOWED, what="the new members applied")
    assert (
        access.decide("triage", SRE) is Verdict.REFUSED
        and access.decide("triage", STRANGER) is Verdict.ALLOWED
    )
