"""The "Prepare support bundle" button: built behind the ack, uploaded into the thread, audited."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from slack_fake import BotHarness
from test_bundle import cluster_logs, cluster_objects
from waiting import wait_until

from bot import actions as ids
from bot.render.limits import problems
from bot.render.slack_triage import render_result
from checks.secrets import Redactor
from conftest import make_config
from runbooks.triage import get_runbook, triage

USER, CHANNEL, THREAD = "U0000001", "C0000001", "1700000000.000888"


@pytest.fixture
def bot(servers, tmp_path):
    _, k8s = servers.live_section(cluster_objects(), logs=cluster_logs(["api started"]))
    config = make_config(
        {"prod": {"kubernetes": k8s}},
        timeouts={"probe_s": 1, "run_s": 3},
        slack={"access": {"bundle": {"users": [USER]}}},
    )
    with BotHarness(config, tmp_path / "lsready.db") as harness:
        yield harness


def _audit(bot, action, timeout=15.0):
    return wait_until(
        lambda: [e for e in bot.readiness.audit.since() if e.action == action],
        timeout=timeout,
        what=f"a {action} audit entry",
    )


def test_a_triage_message_offers_the_bundle_button_and_stays_within_slack_limits():
    config = make_config({"prod": {}}, timeouts={"probe_s": 1, "run_s": 2})
    result = triage(config, "prod", sample_interval_s=0)
    message = render_result(result, get_runbook(result.runbook), Redactor(), snapshot="abc123")
    payload = message.chat_args()
    assert problems({k: payload[k] for k in ("text", "blocks", "metadata") if k in payload}, "message") == []
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    bundle = next(b for b in buttons if b["action_id"] == ids.BUNDLE_PREPARE)
    assert bundle["text"]["text"] == "Prepare support bundle"
    assert json.loads(bundle["value"]) == {"t": "prod", "k": "abc123"}


def test_the_button_uploads_the_bundle_into_the_thread_with_a_one_line_summary(bot):
    key = bot.services.snapshots.put(
        "triage", "prod", {"runbook": "trace-visibility", "note": "on the message"}
    )
    reply = bot.click(ids.BUNDLE_PREPARE, json.dumps({"t": "prod", "k": key}), message_ts=THREAD)
    assert reply.status == 200 and reply.elapsed < 3  # acked before the bundle is built
    complete = bot.fake.wait_for("files.completeUploadExternal", timeout=30)[0]
    assert complete["channel_id"] == CHANNEL and complete["thread_ts"] == THREAD
    summary = complete["initial_comment"]
    assert summary.startswith("Support bundle of prod:") and "\n" not in summary
    start = bot.fake.requests("files.getUploadURLExternal")[0]
    assert start["filename"].startswith("lsready-bundle-prod-") and start["filename"].endswith(".tar.gz")
    upload = bot.fake.wait_for("upload")[0]
    data = bot.fake.uploads[upload["file_id"]]
    assert int(start["length"]) == len(data) <= 50_000_000
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
        manifest = json.loads(tar.extractfile(names["manifest.json"]).read())  # type: ignore[union-attr]
        triage_json = json.loads(tar.extractfile(names["lsready/triage.json"]).read())  # type: ignore[union-attr]
    assert manifest["target"] == "prod" and "kubernetes/pods.json" in names
    assert triage_json["note"] == "on the message"  # the triage the button sat under, not a new one
    entry = _audit(bot, "bundle")[0]
    assert (
        entry.actor == USER and entry.target == "prod" and entry.detail.startswith("Support bundle of prod")
    )
    ephemeral = bot.fake.wait_for("respond")[0]
    assert "Preparing a support bundle of prod" in ephemeral["text"]


def test_the_button_is_refused_without_the_bundle_access_rule(bot):
    bot.click(ids.BUNDLE_PREPARE, json.dumps({"t": "prod"}), user="U0STRANGER", message_ts=THREAD)
    reply = bot.fake.wait_for("respond")[0]
    assert reply["response_type"] == "ephemeral" and "bundle" in reply["text"]
    entry = _audit(bot, "bundle")[0]
    assert (entry.actor, entry.outcome) == ("U0STRANGER", "refused")
    bot.wait_idle()
    assert not bot.fake.requests("files.getUploadURLExternal")
