"""`/langsmith preflight` end to end: signed command in, the live checklist posted and updated in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_fake import BotHarness
from test_preflight import bundled_clickhouse, harmless_values
from test_slack_app import USER, audit_actions, valid

from bot import actions as ids
from bot.commands import Preflight, UsageError, parse
from conftest import make_config
from runbooks.demo.cluster import NS, RELEASE, write_snapshot
from runbooks.preflight import STEPS


@pytest.fixture
def bot(tmp_path: Path) -> Any:
    values = harmless_values()
    values["clickhouse"]["external"] = {"enabled": True, "host": "ch.example"}
    vfile = tmp_path / "next-upgrade.yaml"
    vfile.write_text(yaml.safe_dump(values))
    snapshot = write_snapshot(bundled_clickhouse(), tmp_path / "k8s")
    target = {
        "kubernetes": {"namespace": NS, "release": RELEASE, "snapshot_dir": str(snapshot)},
        "preflight": {"values": str(vfile)},
    }
    config = make_config(
        {"prod": target, "staging": {}}, default_target="prod", timeouts={"probe_s": 1, "run_s": 3}
    )
    with BotHarness(config, tmp_path / "lsready.db") as harness:
        yield harness


def test_preflight_posts_the_checklist_and_updates_it_in_place_to_the_verdict(bot: Any) -> None:
    reply = bot.command("preflight prod 0.17.3")
    assert reply.status == 200 and reply.elapsed < 2.5
    first = valid(bot.fake.wait_for("chat.postMessage")[0])
    assert "Running the upgrade preflight on prod" in first["text"]
    assert first["metadata"]["event_payload"] == {"target": "prod", "kind": "preflight"}
    assert all(step.title in json.dumps(first["blocks"]) for step in STEPS)  # every step, waiting
    final = bot.fake.wait_for("chat.update", lambda u: ids.EVIDENCE in json.dumps(u.get("blocks")))[0]
    valid(final)
    assert (final["channel"], final["ts"]) == bot.fake.posted[0]
    text = json.dumps(final["blocks"])
    assert "Not ready" in final["text"] and "Upgrade preflight: prod to chart 0.17.3" in text
    assert "data-langsmith-clickhouse-0 (Bound, 500Gi)" in text and "next-upgrade.yaml" in text
    assert (USER, "preflight", "ok") in audit_actions(bot, (USER, "preflight", "ok"))


def test_preflight_evidence_button_uploads_the_whole_result(bot: Any) -> None:
    bot.command("preflight")
    final = bot.fake.wait_for("chat.update", lambda u: ids.EVIDENCE in json.dumps(u.get("blocks")))[0]
    button = next(
        e for b in final["blocks"] for e in b.get("elements", []) if e.get("action_id") == ids.EVIDENCE
    )
    bot.click(button["action_id"], button["value"])
    upload = bot.fake.wait_for("upload")[0]
    data = json.loads(bot.fake.uploads[upload["file_id"]])["data"]
    assert data["verdict"] == "not_ready" and data["blocking"][0]["id"] == "values.clickhouse_external"


def test_preflight_rerun_button_runs_the_same_preflight_again_in_place(bot: Any) -> None:
    bot.command("preflight prod 0.17.3")
    final = bot.fake.wait_for("chat.update", lambda u: ids.EVIDENCE in json.dumps(u.get("blocks")))[0]
    button = next(
        e for b in final["blocks"] for e in b.get("elements", []) if e.get("action_id") == ids.PREFLIGHT_RERUN
    )
    assert json.loads(button["value"]) == {"t": "prod", "v": "0.17.3"}
    # The first run is over (not merely posted): a re-run of a preflight still running would be told so.
    bot.wait_idle()
    bot.click(button["action_id"], button["value"])
    again = bot.fake.wait_for("chat.postMessage", count=2)[1]
    assert "Running the upgrade preflight on prod" in again["text"]
    second = bot.fake.posted[1]
    rerun = bot.fake.wait_for(
        "chat.update",
        lambda u: (u["channel"], u["ts"]) == second and ids.EVIDENCE in json.dumps(u.get("blocks")),
    )[0]
    assert "Upgrade preflight: prod to chart 0.17.3" in json.dumps(valid(rerun)["blocks"])
    bot.wait_idle()
    assert len([e for e in bot.readiness.audit.since() if e.action == "preflight"]) == 2


def test_help_lists_preflight_for_those_who_may_check(bot: Any) -> None:
    bot.command("help")
    reply = valid(bot.fake.wait_for("respond")[0])
    assert "/langsmith preflight [target] [chart-version]" in json.dumps(reply["blocks"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preflight", Preflight()),
        ("preflight prod", Preflight("prod")),
        ("preflight 0.17.2", Preflight(None, "0.17.2")),
        ("preflight langsmith-0.17.0-rc.12 PROD", Preflight("prod", "0.17.0-rc.12")),
    ],
)
def test_preflight_command_text_is_parsed(text: str, expected: Preflight) -> None:
    assert parse(text, targets=["prod"]) == expected


def test_preflight_with_two_targets_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a chart version"):
        parse("preflight prod staging", targets=["prod", "staging"])


def test_a_configured_values_file_that_is_missing_is_said_before_anything_is_posted(tmp_path: Path) -> None:
    target = {"preflight": {"values": str(tmp_path / "gone.yaml")}}
    with BotHarness(make_config({"prod": target}), tmp_path / "lsready.db") as harness:
        harness.command("preflight")
        reply = harness.fake.wait_for("respond")[0]
        assert reply["response_type"] == "ephemeral" and "gone.yaml does not exist" in reply["text"]
        assert harness.fake.posted == []


def test_a_preflight_with_many_long_findings_still_fits_slack_limits() -> None:
    from datetime import UTC, datetime

    from bot.render.limits import problems
    from bot.render.slack_preflight import render_preflight_result
    from checks.model import Status
    from checks.secrets import Redactor
    from runbooks.preflight.model import Finding, Level, PreflightResult, PreflightStep, Verdict

    long = "x" * 700
    steps = tuple(
        PreflightStep(
            s.id,
            s.title,
            Status.FAIL,
            long,
            tuple(
                Finding(f"{s.id}.{n}", level, long, long) for n, level in enumerate(Level) for _ in range(5)
            ),
            {},
            datetime.now(UTC),
            0.1,
        )
        for s in STEPS
    )
    result = PreflightResult("prod", Verdict.NOT_READY, steps, datetime.now(UTC), 1.0, "0.17.2", "v.yaml")
    message = render_preflight_result(result, Redactor(), snapshot="k")
    payload = message.chat_args()
    assert problems({k: payload[k] for k in ("text", "blocks") if k in payload}, "message") == []
    assert "Blocking" in json.dumps(payload["blocks"]) and "Show evidence" in json.dumps(payload["blocks"])
