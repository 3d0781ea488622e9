"""The digest on its cron slot (once per slot, caught up after a restart) and expiry reminders."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from slack_fake import BOT_TOKEN, FakeSlack
from slack_sdk import WebClient

from bot.cli import cli
from bot.scheduler import build_scheduler, send_digests, send_reminders, start_scheduler
from checks.config import load_config
from conftest import make_config
from runbooks.readiness import Readiness

DIGEST_CHANNEL = "CDIGEST001"
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def fake():
    slack = FakeSlack()
    yield slack
    slack.close()


def client_for(fake):
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url)


def readiness_at(tmp_path, when, **digest):
    config = make_config({"prod": {}, "staging": {}}, digest={"channel": DIGEST_CHANNEL, **digest})
    return Readiness.open(config, tmp_path / "lsready.db", clock=lambda: when)


def test_scheduler_follows_the_digest_cron_in_its_timezone(tmp_path, fake):
    readiness = readiness_at(tmp_path, MONDAY_9, cron="30 8 * * mon", timezone="Europe/Berlin")
    scheduler = build_scheduler(readiness, client_for(fake))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"digest", "digest-catch-up", "reminders"}
    trigger = jobs["digest"].trigger
    nxt = trigger.get_next_fire_time(None, datetime(2026, 11, 27, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    assert (nxt.weekday(), nxt.hour, nxt.minute, str(nxt.tzinfo)) == (0, 8, 30, "Europe/Berlin")


def test_without_a_digest_channel_only_reminders_are_scheduled(tmp_path, fake):
    readiness = Readiness.open(make_config({"prod": {}}), tmp_path / "x.db")
    assert [job.id for job in build_scheduler(readiness, client_for(fake)).get_jobs()] == ["reminders"]


def test_each_target_gets_one_digest_per_slot_as_a_thread_parent_with_metadata(tmp_path, fake):
    readiness = readiness_at(tmp_path, MONDAY_9 + timedelta(minutes=1))
    assert sorted(send_digests(readiness, client_for(fake))) == ["prod", "staging"]
    assert send_digests(readiness, client_for(fake)) == []  # the same slot again: nothing
    posts = fake.requests("chat.postMessage")
    assert len(posts) == 2 and {p["channel"] for p in posts} == {DIGEST_CHANNEL}
    assert {p["metadata"]["event_payload"]["target"] for p in posts} == {"prod", "staging"}
    assert all(p["metadata"]["event_type"] == "lsready_report" for p in posts)
    assert {readiness.digests.last_sent(t)["message_ts"] for t in ("prod", "staging")} == {
        ts for _, ts in fake.posted
    }


def test_a_failed_post_releases_the_slot_for_a_retry(tmp_path, fake):
    readiness = readiness_at(tmp_path, MONDAY_9 + timedelta(minutes=1), targets=["prod"])
    fake.errors["chat.postMessage"] = "not_in_channel"
    assert send_digests(readiness, client_for(fake)) == []
    del fake.errors["chat.postMessage"]
    assert send_digests(readiness, client_for(fake)) == ["prod"]


def test_an_unfinished_post_of_the_slot_schedules_one_retry(tmp_path, fake):
    now = [MONDAY_9 + timedelta(minutes=2)]
    readiness = readiness_at(tmp_path, None, targets=["prod"])
    readiness = Readiness(readiness.config, readiness.catalog, readiness.db, lambda: now[0])
    readiness.digests.claim("prod", MONDAY_9)  # claimed two minutes ago by a pod that then died
    scheduler = build_scheduler(readiness, client_for(fake))
    assert send_digests(readiness, client_for(fake), scheduler) == []
    retry = scheduler.get_job("digest-retry")
    assert retry is not None and retry.trigger.run_date == MONDAY_9 + timedelta(minutes=12, seconds=5)
    now[0] = retry.trigger.run_date
    assert retry.func(*retry.args) == ["prod"]
    assert len(fake.requests("chat.postMessage")) == 1


def test_start_up_near_a_slot_catches_up_the_missed_digest(tmp_path, fake):
    readiness = readiness_at(tmp_path, MONDAY_9 + timedelta(minutes=10), targets=["prod"])
    scheduler = start_scheduler(readiness, client_for(fake))
    try:
        fake.wait_for("chat.postMessage", timeout=20)
    finally:
        scheduler.shutdown(wait=True)
    assert readiness.digests.last_sent("prod") is not None


def test_reminders_dm_slack_users_once_and_tell_the_channel_about_others(tmp_path, fake):
    now = datetime.now(UTC)
    readiness = Readiness.open(
        make_config({"prod": {}}, digest={"channel": DIGEST_CHANNEL}, acks={"remind_days_before": 7}),
        tmp_path / "x.db",
    )
    readiness.acknowledge("prod", "diag.har_capture", "U0SLACK001", note="drill", expires="3d")
    readiness.acknowledge("prod", "diag.log_collection", "alice", note="from the CLI", expires="2d")
    readiness.acknowledge("prod", "keda.rollback_plan", "U0SLACK002", note="later", expires="60d")
    client = client_for(fake)
    assert send_reminders(readiness, client) == 2
    assert send_reminders(readiness, client) == 0  # each acknowledgement is reminded once
    assert fake.requests("conversations.open") == [{"users": "U0SLACK001"}]
    posts = {p["channel"]: p for p in fake.requests("chat.postMessage")}
    assert set(posts) == {"D0SLACK001", DIGEST_CHANNEL}
    assert "diag.har_capture" in str(posts["D0SLACK001"]["blocks"])
    assert "alice" in str(posts[DIGEST_CHANNEL]["blocks"])
    reminded = [e for e in readiness.audit.since(now - timedelta(minutes=1)) if e.action == "remind"]
    assert len(reminded) == 2


def test_a_reminder_slack_could_not_take_is_sent_on_a_later_run_and_a_refused_one_is_not(tmp_path, fake):
    readiness = Readiness.open(
        make_config({"prod": {}}, digest={"channel": DIGEST_CHANNEL}, acks={"remind_days_before": 7}),
        tmp_path / "x.db",
    )
    readiness.acknowledge("prod", "diag.har_capture", "alice", note="drill", expires="3d")
    client = client_for(fake)
    fake.errors["chat.postMessage"] = "ratelimited"  # Slack's trouble: tried again next hour
    assert send_reminders(readiness, client) == 0
    del fake.errors["chat.postMessage"]
    assert send_reminders(readiness, client) == 1
    readiness.acknowledge("prod", "diag.log_collection", "bob", note="x", expires="2d")
    fake.errors["chat.postMessage"] = "channel_not_found"  # a refusal: an answer, not retried
    assert send_reminders(readiness, client) == 0
    del fake.errors["chat.postMessage"]
    assert send_reminders(readiness, client) == 0


def test_digest_post_from_the_cli_uses_the_bot_token_and_api_url(tmp_path, fake, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"targets: {{prod: {{}}}}\ndigest: {{channel: {DIGEST_CHANNEL}}}\n"
        f"storage: {{path: '{tmp_path / 'x.db'}'}}\n"
    )
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake.api_url)
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--post"], obj={})
    assert result.exit_code == 0, result.output
    channel, ts = fake.posted[0]
    assert result.output.strip() == f"posted to {channel} ({ts})" and channel == DIGEST_CHANNEL
    assert fake.requests("chat.postMessage")[0]["metadata"]["event_payload"] == {
        "target": "prod",
        "kind": "digest",
    }
    # Audited, and the next digest compares with the run this one showed.
    readiness = Readiness.open(load_config(str(path)))
    entry = next(e for e in readiness.audit.since() if e.action == "digest")
    assert entry.actor.startswith("cli") and (entry.place, entry.detail) == (DIGEST_CHANNEL, "posted by hand")
    sent = readiness.digests.last_sent("prod")
    assert sent["message_ts"] == ts and sent["run_id"] == readiness.history.latest("prod").id
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--post"], obj={})
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN is not set" in result.output


def test_scheduler_shutdown_is_prompt(tmp_path, fake):
    readiness = Readiness.open(make_config({"prod": {}}), tmp_path / "x.db")
    scheduler = start_scheduler(readiness, client_for(fake))
    t0 = time.monotonic()
    scheduler.shutdown(wait=True)
    assert time.monotonic() - t0 < 5
