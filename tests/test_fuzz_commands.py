"""Fuzzing `/langsmith` text: the pure parser thousands of times, the signed-HTTP bot a few hundred.

Whatever is typed, the bot never raises, never answers with a traceback or an unexplained error,
and always answers with either the command's result or a usage message (help, with what went
wrong and, for a near miss, a "did you mean").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_fake import BotHarness
from waiting import wait_until

from bot.access import ACTIONS
from bot.actions import TRIAGE_RERUN
from bot.commands import USAGE, Ack, Check, Digest, Help, Preflight, Status, Triage, interpret, parse
from bot.render.limits import problems
from bot.render.slack_help import render_help
from checks.secrets import Redactor
from conftest import make_config

TARGETS = ["prod", "staging"]
RUNBOOKS = ["trace-visibility", "queue-depth", "merge-pressure", "ingestion-delay"]
COMMANDS = (Triage, Check, Status, Ack, Digest, Preflight, Help)

# Words a person (or Slack's wire format) puts in a command: real ones, near misses and noise.
WORDS = [*USAGE, *TARGETS, *RUNBOOKS, "redis", "clickhouse", "1", "11", "signoff", "diag.har_capture",
         "diag.log_collection", "redis.memory_sized", "for", "30d", "90d", "forever", "-1d", "PROD",
         "Triage", "stauts", "chek", "triag", "&lt;", "&amp;", "&gt;", "<@U0000002>", "<#C0000002|ops>",
         "<!channel>", "<https://wiki.example/x|wiki>", "<mailto:a@b.example>", "`x`", "*x*", "\u200b",
         "\u0000", "🙂", "ß", "İ", "-- lsready:x", "'; DROP TABLE acks; --"]  # fmt: skip
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000"])


@st.composite
def command_texts(draw: st.DrawFn) -> str:
    """Command-shaped text (words joined by odd whitespace) or arbitrary text, sometimes long."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text(max_size=300))
    words = draw(st.lists(st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=12)), max_size=8))
    text = ""
    for word in words:
        text += draw(SPACES) + word
    return text if draw(st.booleans()) else text.strip()


def _usage_is_helpful(cmd: Help) -> None:
    """A usage problem renders as help: the problem, then every command's usage, valid for Slack."""
    message = render_help(set(ACTIONS), Redactor(), problem=cmd.problem, targets=TARGETS, runbooks=RUNBOOKS)
    payload = message.respond_args()
    text = json.dumps(payload, ensure_ascii=False)
    assert problems(payload, "message") == []
    assert "/langsmith help" in text and "/langsmith triage" in text
    assert "Traceback" not in text


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=command_texts())
def test_any_text_is_a_command_or_a_helpful_usage_message(text):
    cmd = interpret(text, targets=TARGETS, runbooks=RUNBOOKS)
    assert isinstance(cmd, COMMANDS)
    if isinstance(cmd, Help) and cmd.problem:
        assert cmd.problem.strip() and "Traceback" not in cmd.problem
    if isinstance(cmd, Ack):
        assert cmd.item_id.strip() and cmd.item_id == cmd.item_id.strip()


@settings(max_examples=300, deadline=None)
@given(text=command_texts())
def test_a_usage_problem_renders_as_help_slack_accepts(text):
    cmd = interpret(text, targets=TARGETS, runbooks=RUNBOOKS)
    if isinstance(cmd, Help) and cmd.problem:
        _usage_is_helpful(cmd)


def _typo(name: str, position: int, kind: int) -> str:
    """One edit of `name`: a letter dropped, doubled or swapped with its neighbour."""
    i = position % len(name)
    if kind == 0:
        return name[:i] + name[i + 1 :]
    if kind == 1:
        return name[:i] + name[i] + name[i:]
    j = min(i + 1, len(name) - 1)
    return name[:i] + name[j] + name[i] + name[j + 1 :] if j != i else name + name[-1]


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(["triage", "check", "status", "digest"]), position=st.integers(0, 10),
       kind=st.integers(0, 2), rest=st.sampled_from(["", " prod", " staging redis"]))  # fmt: skip
def test_a_near_miss_subcommand_gets_did_you_mean(name, position, kind, rest):
    typo = _typo(name, position, kind)
    if typo in USAGE:
        return
    cmd = interpret(typo + rest, targets=TARGETS, runbooks=RUNBOOKS)
    assert isinstance(cmd, Help) and cmd.suggestion == name
    assert f"Did you mean `{name}`?" in cmd.problem


@settings(max_examples=300, deadline=None)
@given(text=command_texts())
def test_parse_raises_only_usage_errors(text):
    from bot.commands import UsageError

    try:
        assert isinstance(parse(text, targets=TARGETS, runbooks=RUNBOOKS), COMMANDS)
    except UsageError as exc:
        assert str(exc).strip()


# --- The whole path: signed HTTP into the real bot ----------------------------------------------


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    config = make_config(
        {"prod": {}, "staging": {}}, default_target="prod", timeouts={"probe_s": 1, "run_s": 2}
    )
    with BotHarness(config, tmp_path_factory.mktemp("fuzz") / "lsready.db") as harness:
        yield harness


def _terminal(method: str, args: dict[str, Any]) -> bool:
    """The last thing the bot sends for a command: its result, its help, or its error."""
    text = str(args.get("text") or "")
    if method == "respond":
        return "blocks" in args or text.startswith((":warning:", ":boom:"))
    if method == "chat.postMessage":
        kind = ((args.get("metadata") or {}).get("event_payload") or {}).get("kind")
        return kind not in (None, "triage")  # a triage's first post is its checklist, not its end
    if method == "chat.update":
        return TRIAGE_RERUN in json.dumps(args.get("blocks")) or "stopped" in text.lower()
    return False


def _finals(harness: BotHarness) -> list[tuple[str, dict[str, Any]]]:
    return [(c.method, c.args) for c in list(harness.fake.calls) if _terminal(c.method, c.args)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=command_texts())
def test_any_signed_command_is_acked_and_answered_without_an_unexplained_error(bot, text):
    before = len(_finals(bot))
    reply = bot.command(text)
    assert reply.status == 200
    wait_until(lambda: len(_finals(bot)) > before, what=f"an answer to {text!r}", interval=0.005)
    _, args = _finals(bot)[before]
    shown = json.dumps(args, ensure_ascii=False)
    assert "Traceback" not in shown
    assert not str(args.get("text") or "").startswith(":boom:"), shown[:500]
