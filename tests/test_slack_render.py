"""Every Slack payload stays within Slack's limits and shows user text literally, whatever the input."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render.limits import LimitError, clip, fit_lines, problems, validate
from bot.render.slack_ack import ModalTooLarge, render_ack_confirmation, render_ack_modal, render_reminder
from bot.render.slack_digest import render_digest
from bot.render.slack_help import render_help
from bot.render.slack_home import Board, render_home
from bot.render.slack_report import render_report, render_status
from bot.render.slack_triage import render_progress, render_result, render_stopped
from checks.model import Result, Status
from checks.registry import load_catalog
from checks.runner import Report
from checks.score import score
from checks.secrets import Redactor
from runbooks.digest import Change, Digest
from runbooks.model import Diagnosis, DiagnosisKind, Runbook, Step, StepResult, TriageResult
from runbooks.triage import RUNBOOKS
from storage.acks import Ack
from storage.history import StoredRun

CATALOG = load_catalog()
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "hunter2-very-secret"
REDACTOR = Redactor([SECRET])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Odd text: mrkdwn specials, mentions, entities, secrets, newlines, long runs, anything unicode.
SPECIAL = st.sampled_from(
    [
        "<!channel>",
        "<!here>",
        "<@U123>",
        "*bold*",
        "_it_",
        "~s~",
        "`code`",
        "&amp;",
        "&",
        "<",
        ">",
        "\n",
        "xoxb-1234567890-abcdef",
        f"password={SECRET}",
        ":x:",
        "🔥",
        "|",
        "```",
    ]
)
# Long text by repetition: as long as Slack's limits, without generating thousands of random characters.
LONG = st.tuples(st.one_of(st.text(min_size=1, max_size=12), SPECIAL), st.integers(50, 800)).map(
    lambda t: t[0] * t[1]
)
ODD = st.lists(st.one_of(st.text(max_size=40), SPECIAL, LONG), max_size=5).map("".join)
# Target names are config keys, never secrets, but may be long or full of mrkdwn.
NAME_PART = st.one_of(
    st.text(min_size=1, max_size=12), st.sampled_from(["<!channel>", "*", "&", "<", ">", "`", "🔥"])
)
NAME = st.one_of(
    st.sampled_from(["prod", "staging"]),
    st.text(min_size=1, max_size=30),
    st.tuples(NAME_PART, st.integers(50, 800)).map(lambda t: t[0] * t[1]),
)
STATUSES = st.sampled_from(list(Status))


def mrkdwn_texts(payload):
    """Every string Slack parses as mrkdwn: mrkdwn text objects and a message's fallback text."""
    if isinstance(payload, dict):
        if payload.get("type") == "mrkdwn":
            yield payload["text"]
        for key, value in payload.items():
            if key == "text" and isinstance(value, str) and "type" not in payload:
                yield value
            yield from mrkdwn_texts(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from mrkdwn_texts(value)


def assert_literal(payload):
    """User text never becomes a mention or a broadcast, and no secret leaks anywhere."""
    for text in mrkdwn_texts(payload):
        assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    flat = str(payload)
    assert SECRET not in flat and "xoxb-1234567890" not in flat


def report_of(target, statuses, summaries, evidence):
    results = tuple(
        Result(item, statuses[i % len(statuses)], summaries[i % len(summaries)], {"value": evidence})
        for i, item in enumerate(CATALOG.items)
    )
    return Report(target, results, score(results), NOW, 1.5)


@FAST
@given(NAME, st.lists(STATUSES, min_size=1, max_size=8), st.lists(ODD, min_size=1, max_size=5), ODD)
def test_check_report_and_status_fit_slack_for_any_summaries(target, statuses, summaries, evidence):
    report = report_of(target, statuses, summaries, evidence)
    for message in (
        render_report(report, REDACTOR, snapshot="abc"),
        render_status(report, REDACTOR, snapshot="a"),
    ):
        assert problems(message.chat_args(), "message") == []
        assert message.metadata["event_payload"]["target"] == target
        assert_literal(message.chat_args())


def runbook_of(n_steps):
    steps = tuple(Step(f"s{i}", f"Step {i}", "snapshot") for i in range(n_steps))
    fallback = RUNBOOKS["trace-visibility"].fallback
    return Runbook("trace-visibility", "Traces created but not visible", steps, (), fallback)


@FAST
@given(
    NAME,
    st.lists(st.tuples(ODD, ODD, STATUSES), max_size=30),
    st.integers(0, 30),
    ODD,
    st.sampled_from(DiagnosisKind),
)
def test_triage_progress_and_result_fit_slack_for_any_steps(target, steps, total, headline, kind):
    book = runbook_of(total)
    done = [
        StepResult(f"s{i}", title, status, summary, {"x": summary}, NOW, 0.3)
        for i, (title, summary, status) in enumerate(steps)
    ]
    diagnosis = Diagnosis(kind, headline, (headline,) * 5, (headline,) * 40, (headline,))
    result = TriageResult(book.name, target, diagnosis, tuple(done), NOW, 4.2)
    messages = [
        render_progress(book, target, done, NOW, REDACTOR),
        render_stopped(book, target, done, REDACTOR),
        render_result(result, book, REDACTOR, snapshot="k", others=["queue-depth", "merge-pressure"]),
    ]
    for message in messages:
        assert problems(message.chat_args(), "message") == []
        assert_literal(message.chat_args())


def test_triage_checklist_marks_done_running_and_waiting_steps():
    book = RUNBOOKS["queue-depth"]
    first = book.steps[0]
    done = [StepResult(first.id, first.title, Status.PASS, "queues are shallow", {}, NOW, 0.2)]
    text = str(render_progress(book, "prod", done, NOW, REDACTOR).blocks)
    assert f":white_check_mark: *{first.title}*" in text
    assert f":hourglass_flowing_sand: *{book.steps[1].title}*" in text
    assert f":white_circle: {book.steps[2].title}" in text


def test_finished_triage_leads_with_the_diagnosis_and_marks_steps_off_the_path():
    book = RUNBOOKS["queue-depth"]
    first = book.steps[0]
    done = (StepResult(first.id, first.title, Status.UNKNOWN, "redis unreachable", {}, NOW, 1.0),)
    diagnosis = Diagnosis(
        DiagnosisKind.INCONCLUSIVE, "Inconclusive", ("no queue data",), ("fix access",), ("queues",)
    )
    message = render_result(
        TriageResult(book.name, "prod", diagnosis, done, NOW, 1.0),
        book,
        REDACTOR,
        snapshot="k",
        others=["merge-pressure"],
    )
    text = str(message.blocks)
    assert message.blocks[1]["text"]["text"].startswith(":grey_question: *Inconclusive*")
    assert f":heavy_minus_sign: {book.steps[1].title}: _not needed_" in text
    assert "*What to do*" in text and "• fix access" in text and "Run merge-pressure" in text


@FAST
@given(NAME, st.lists(st.tuples(ODD, ODD), max_size=40), st.lists(ODD, max_size=30))
def test_digest_fits_slack_for_any_changes(target, changes, notes):
    report = report_of(target, [Status.FAIL, Status.MANUAL], ["x"], "y")
    made = [Change(f"i{i}", title, "pass", "fail", summary) for i, (title, summary) in enumerate(changes)]
    acks = [
        Ack(i, target, f"item{i}", "U0000001", note, NOW, NOW + timedelta(days=3))
        for i, note in enumerate(notes)
    ]
    digest = Digest(target, report, NOW - timedelta(days=7), made, made, made, made, made, made, acks)
    message = render_digest(digest, REDACTOR, snapshot="s")
    assert problems(message.chat_args(), "message") == []
    assert message.metadata == {
        "event_type": "lsready_report",
        "event_payload": {"target": target, "kind": "digest"},
    }
    assert_literal(message.chat_args())


@FAST
@given(
    st.lists(NAME, min_size=1, max_size=12, unique=True),
    ODD,
    st.sampled_from([set(), {"status"}, {"status", "ack", "check"}]),
)
def test_home_fits_100_blocks_for_any_number_of_targets_and_waiting_items(targets, summary, allowed):
    manual = [i.id for i in CATALOG.items if i.attestable]
    boards = []
    for n, target in enumerate(targets):
        run = (
            None
            if n % 4 == 3
            else StoredRun(
                n,
                target,
                NOW,
                1.0,
                {
                    "percent": 50.0,
                    "passing": 1,
                    "applicable": 2,
                    "buckets": {"fail": 1, "manual": len(manual)},
                    "required_failing": ["redis.memory_sized", "clickhouse.migrations"],
                },
                {i: "manual" for i in manual} | {"redis.memory_sized": "fail"},
                {i: summary for i in [*manual, "redis.memory_sized"]},
            )
        )
        expiring = [Ack(1, target, manual[0], "alice", summary, NOW, NOW + timedelta(days=2))]
        boards.append(Board(target, run, expiring))
    view = render_home(boards, CATALOG, allowed, REDACTOR, notice=summary)
    assert problems(view, "home") == []
    assert len(view["blocks"]) <= 100
    assert_literal(view)
    if "ack" not in allowed:
        assert "Acknowledge" not in str(view)
    if "prod" in targets and "ack" in allowed and boards[targets.index("prod")].run:
        assert "Acknowledge" in str(view)


def test_home_offers_acknowledge_for_waiting_items_and_hides_acknowledged_ones():
    waiting = ["diag.har_capture", "diag.log_collection"]
    run = StoredRun(
        1,
        "prod",
        NOW,
        1.0,
        {"percent": 0, "passing": 0, "applicable": 2, "buckets": {"manual": 2}, "required_failing": []},
        dict.fromkeys(waiting, "manual"),
        dict.fromkeys(waiting, "needs a person"),
    )
    view = render_home(
        [Board("prod", run, (), {"diag.log_collection"})], CATALOG, {"status", "ack"}, REDACTOR
    )
    text = str(view)
    assert "diag.har_capture" in text and "diag.log_collection" not in text
    assert "lsready.ack.open" in text


@FAST
@given(st.one_of(st.none(), ODD), st.sets(st.sampled_from(["triage", "check", "status", "ack", "digest"])))
def test_help_fits_slack_and_lists_only_allowed_commands(problem, allowed):
    message = render_help(allowed, REDACTOR, problem=problem, targets=["prod"], runbooks=["queue-depth"])
    assert problems(message.chat_args(), "message") == []
    text = str(message.blocks)
    for name in ("triage", "check", "status", "ack", "digest"):
        assert (f"/langsmith {name}" in text) == (name in allowed)


@FAST
@given(NAME, ODD, ODD)
def test_ack_modal_confirmation_and_reminder_fit_slack(target, note, link):
    items = [i for i in CATALOG.items if i.attestable]
    context = {"c": "C1", "ts": "1.2"}
    # The modal carries its target and context in private_metadata (3000 characters at most).
    if len(json.dumps({"t": target, **context}, separators=(",", ":"))) > 3000:
        with pytest.raises(ModalTooLarge):
            render_ack_modal(target, items, REDACTOR, preselected=items[0].id, context=context)
    else:
        view = render_ack_modal(target, items, REDACTOR, preselected=items[0].id, context=context)
        assert problems(view, "modal") == []
    ack = Ack(7, target, items[0].id, "U0000001", note, NOW, NOW + timedelta(days=90), evidence_link=link)
    for message in (
        render_ack_confirmation(ack, items[0].title, REDACTOR),
        render_reminder(ack, "t", REDACTOR),
    ):
        assert problems(message.chat_args(), "message") == []
        assert_literal(message.chat_args())


def test_ack_confirmation_quotes_every_line_of_the_note_and_puts_the_evidence_on_its_own_line():
    note = "restore drill <done>\n40 min, no data lost"
    ack = Ack(
        7,
        "prod",
        "diag.har_capture",
        "U0000001",
        note,
        NOW,
        NOW + timedelta(days=90),
        evidence_link="https://wiki/x",
    )
    text = render_ack_confirmation(ack, "HAR capture", REDACTOR).chat_args()["blocks"][0]["text"]["text"]
    until = (NOW + timedelta(days=90)).strftime("%Y-%m-%d")
    assert text == (
        f":memo: <@U0000001> acknowledged `diag.har_capture` (HAR capture) on *prod* until {until}.\n"
        "> restore drill &lt;done&gt;\n"
        "> 40 min, no data lost\n"
        "Evidence: https://wiki/x"
    )
    bare = Ack(8, "prod", "diag.har_capture", "U0000001", "", NOW, NOW + timedelta(days=90))
    text = render_ack_confirmation(bare, "HAR capture", REDACTOR).chat_args()["blocks"][0]["text"]["text"]
    assert text.endswith(f"until {until}.")


def test_ack_confirmation_says_which_acknowledgement_it_supersedes():
    old = Ack(
        6,
        "prod",
        "diag.har_capture",
        "U0000002",
        "first drill",
        NOW - timedelta(days=80),
        NOW + timedelta(days=10),
    )
    ack = Ack(7, "prod", "diag.har_capture", "U0000001", "", NOW, NOW + timedelta(days=90), supersedes=old)
    text = render_ack_confirmation(ack, "HAR capture", REDACTOR).chat_args()["blocks"][0]["text"]["text"]
    then, until = (
        (NOW - timedelta(days=80)).strftime("%Y-%m-%d"),
        (NOW + timedelta(days=10)).strftime("%Y-%m-%d"),
    )
    assert text.endswith(f"\nIt supersedes <@U0000002>'s acknowledgement of {then}, which ran until {until}.")


def test_validator_names_every_limit_slack_enforces():
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "b" * 76},
        "action_id": "a",
        "value": "v" * 2001,
    }
    found = problems({"text": "t", "blocks": [section, header, {"type": "actions", "elements": [button]}]})
    assert any("3001 > 3000" in p for p in found)
    assert any("151 > 150" in p for p in found)
    assert any("76 > 75" in p for p in found)
    assert any("value: > 2000" in p for p in found)
    many = {"text": "t", "blocks": [{"type": "divider"}] * 51}
    assert any("51 > 50" in p for p in problems(many))
    assert problems({"type": "home", "blocks": [{"type": "divider"}] * 100}, "home") == []
    empty = {"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": " "}}]}
    assert any("empty text" in p for p in problems(empty))
    dup = {
        "text": "t",
        "blocks": [{"type": "divider", "block_id": "x"}, {"type": "divider", "block_id": "x"}],
    }
    assert any("duplicate" in p for p in problems(dup))
    with pytest.raises(LimitError):
        validate(many)


def test_clip_never_leaves_half_an_entity_and_fit_lines_says_how_many_more():
    assert clip("a &amp; b", 6) == "a …"
    text = fit_lines([f"line {i} " + "x" * 100 for i in range(100)], 3000)
    assert len(text) <= 3000 and text.endswith("more_")
    assert fit_lines(["short"], 3000) == "short"


def test_outgoing_text_is_redacted_including_slack_and_langsmith_tokens():
    report = report_of(
        "prod", [Status.FAIL], [f"conn redis://u:{SECRET}@h/0 lsv2_pt_abcdefgh12345678 xoxb-99-abc123"], "e"
    )
    message = render_report(report, REDACTOR)
    flat = str(message.blocks)
    assert SECRET not in flat and "lsv2_pt_abcdefgh12345678" not in flat and "xoxb-99-abc123" not in flat
    assert "***" in flat
