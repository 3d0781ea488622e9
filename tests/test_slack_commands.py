"""`/langsmith` text parsing: one pure function, every spelling."""

import pytest

from bot.commands import Ack, Check, Digest, Help, Status, Triage, UsageError, interpret, parse

TARGETS = ["prod", "staging"]
RUNBOOKS = ["trace-visibility", "queue-depth", "merge-pressure", "ingestion-delay"]


def p(text):
    return parse(text, targets=TARGETS, runbooks=RUNBOOKS)


def test_empty_text_and_help_are_help():
    assert p("") == Help()
    assert p("  help  ") == Help()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("triage", Triage(None, None)),
        ("triage prod", Triage("prod", None)),
        ("triage queue-depth", Triage(None, "queue-depth")),
        ("triage prod merge-pressure", Triage("prod", "merge-pressure")),
        ("triage merge-pressure prod", Triage("prod", "merge-pressure")),
        ("TRIAGE Prod", Triage("prod", None)),
    ],
)
def test_triage_takes_target_and_runbook_in_either_order(text, expected):
    assert p(text) == expected


def test_triage_with_an_unknown_word_suggests_the_closest_target_or_runbook():
    with pytest.raises(UsageError) as exc:
        p("triage prdo")
    assert exc.value.suggestion == "prod"
    assert "Did you mean `prod`?" in str(exc.value)
    with pytest.raises(UsageError) as exc:
        p("triage prod queue-dept")
    assert exc.value.suggestion == "queue-depth"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check", Check(None, None)),
        ("check redis", Check("redis", None)),
        ("check prod", Check(None, "prod")),
        ("check redis.memory_sized staging", Check("redis.memory_sized", "staging")),
        ("check staging 3", Check("3", "staging")),
    ],
)
def test_check_takes_a_selector_and_a_target(text, expected):
    assert p(text) == expected


def test_status_and_digest_take_at_most_a_target():
    assert p("status") == Status(None)
    assert p("status staging") == Status("staging")
    assert p("digest prod") == Digest("prod")
    with pytest.raises(UsageError, match="at most a target"):
        p("status prod staging")


def test_status_me_is_private_with_or_without_a_target():
    assert p("status me") == Status(None, private=True)
    assert p("status staging me") == Status("staging", private=True)
    assert p("status ME staging") == Status("staging", private=True)


def test_a_word_too_long_to_be_a_name_is_a_usage_error_that_does_not_echo_it_whole():
    with pytest.raises(UsageError, match="8000 characters") as err:
        p("check " + "x" * 8000)
    assert len(str(err.value)) < 200
    assert p("ack diag.har_capture " + "y" * 500).note == "y" * 500  # a note may be long


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ack diag.har_capture", Ack("diag.har_capture", "", None)),
        ("ack diag.har_capture HAR drill done", Ack("diag.har_capture", "HAR drill done", None)),
        ("ack diag.har_capture HAR drill done for 30d", Ack("diag.har_capture", "HAR drill done", "30d")),
        ("ack diag.har_capture for 2 weeks", Ack("diag.har_capture", "", "2weeks")),
        ("ack diag.har_capture done for the team", Ack("diag.har_capture", "done for the team", None)),
        ("ack staging diag.har_capture ok", Ack("diag.har_capture", "ok", None, "staging")),
    ],
)
def test_ack_takes_item_note_and_optional_validity(text, expected):
    assert p(text) == expected


def test_ack_without_an_item_is_a_usage_error():
    with pytest.raises(UsageError, match="needs an item id"):
        p("ack")


def test_slack_escaping_and_links_are_undone_in_notes():
    cmd = p("ack diag.har_capture drill &amp; review &lt;ok&gt; see <https://wiki.example/drill|the wiki>")
    assert cmd == Ack("diag.har_capture", "drill & review <ok> see https://wiki.example/drill", None)


def test_unknown_subcommand_suggests_the_closest_one():
    with pytest.raises(UsageError) as exc:
        p("stauts prod")
    assert exc.value.suggestion == "status"
    with pytest.raises(UsageError) as exc:
        p("frobnicate")
    assert exc.value.suggestion is None
    assert "Did you mean" not in str(exc.value)


def test_interpret_turns_a_usage_error_into_help_naming_it():
    cmd = interpret("chekc prod", targets=TARGETS, runbooks=RUNBOOKS)
    assert isinstance(cmd, Help)
    assert cmd.suggestion == "check" and "`chekc` is not a command" in cmd.problem


def test_without_configured_targets_any_word_is_taken_as_the_target():
    assert parse("triage anything", runbooks=RUNBOOKS) == Triage("anything", None)
