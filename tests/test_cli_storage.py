import csv
import getpass
import io
import json

from click.testing import CliRunner

from bot.cli import cli


def _run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={})


def _config(tmp_path):
    path = tmp_path / "lsready.yaml"
    path.write_text(f"targets: {{prod: {{}}}}\nstorage: {{path: '{tmp_path / 'store.db'}'}}\n")
    return path


def test_ack_then_check_shows_attested_then_revoke(tmp_path):
    config = _config(tmp_path)
    out = _run(
        config, "ack", "diag.har_capture", "--by", "alice", "--note", "HAR how-to in wiki", "--expires", "30d"
    )
    assert out.exit_code == 0, out.output
    assert "diag.har_capture attested by alice for prod until" in out.output
    check = json.loads(_run(config, "check", "--section", "diag.har_capture", "--format", "json").output)
    assert check["results"][0]["status"] == "attested"
    assert check["results"][0]["attestation"]["by"] == "alice"
    listed = json.loads(_run(config, "acks", "--format", "json").output)
    assert [(a["item_id"], a["by"], a["note"]) for a in listed] == [
        ("diag.har_capture", "alice", "HAR how-to in wiki")
    ]
    assert "revoked 1" in _run(config, "revoke", "diag.har_capture", "--by", "bob").output
    check = json.loads(_run(config, "check", "--section", "diag.har_capture", "--format", "json").output)
    assert check["results"][0]["status"] == "manual"
    rows = list(csv.DictReader(io.StringIO(_run(config, "audit", "--format", "csv").output)))
    me = f"cli:{getpass.getuser()}"  # checks from the terminal are audited under the OS user
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("alice", "ack"),
        (me, "check"),
        ("bob", "revoke"),
        (me, "check"),
    ]
    assert rows[1]["detail"].startswith("diag.har_capture: ") and rows[1]["detail"].endswith("%")


def test_ack_of_automated_item_exits_2_with_reason(tmp_path):
    out = _run(_config(tmp_path), "ack", "clickhouse.migrations", "--by", "alice")
    assert out.exit_code == 2
    assert "checked automatically" in out.output and "Traceback" not in out.output


def test_ack_with_bad_expiry_exits_2(tmp_path):
    out = _run(_config(tmp_path), "ack", "diag.har_capture", "--by", "a", "--expires", "someday")
    assert out.exit_code == 2 and "is not a duration" in out.output


def _post_digest(config):
    """What `lsready digest --post` records once Slack took the message: the next digest's baseline."""
    from checks.config import load_config
    from runbooks.digest import build_digest, record_hand_post
    from runbooks.readiness import Readiness

    readiness = Readiness.open(load_config(str(config)))
    record_hand_post(readiness, build_digest(readiness, "prod"), "C1", "1.1", "cli:test")


def test_digest_compares_with_the_posted_digest_and_lists_the_new_attestation(tmp_path):
    config = _config(tmp_path)
    first = json.loads(_run(config, "digest", "--format", "json").output)
    assert first["previous_at"] is None and first["target"] == "prod"
    _run(config, "ack", "diag.har_capture", "--by", "alice")
    preview = json.loads(_run(config, "digest", "--format", "json").output)
    assert preview["previous_at"] is None, "a preview is not a baseline"
    _post_digest(config)
    # An ack, a full check, then the digest: it once compared with that check and saw nothing.
    assert _run(config, "ack", "diag.log_collection", "--by", "bob", "--note", "runbook v2").exit_code == 0
    _run(config, "check")
    digest = json.loads(_run(config, "digest", "--format", "json").output)
    assert digest["previous_at"] is not None
    assert [c["id"] for c in digest["changes"]["fixed"]] == ["diag.log_collection"]
    assert [a["item_id"] for a in digest["attestations"]["added"]] == ["diag.log_collection"]
    text = _run(config, "digest").output
    assert "nothing changed" not in text and "Attested:\n  - diag.log_collection by bob" in text


def test_an_ack_needs_a_named_person_and_a_web_link(tmp_path):
    config = _config(tmp_path)
    nobody = _run(config, "ack", "diag.har_capture", "--by", "")
    assert nobody.exit_code == 2 and "names who attests it" in nobody.output
    assert _run(config, "ack", "diag.har_capture", "--by", "  ").exit_code == 2
    for link in ("notaurl", "ftp://files.example/x", "https://"):
        out = _run(config, "ack", "diag.har_capture", "--by", "alice", "--link", link)
        assert out.exit_code == 2 and "must be an http(s) URL" in out.output, link
    assert json.loads(_run(config, "acks", "--format", "json").output) == []
    good = _run(config, "ack", "diag.har_capture", "--by", "alice", "--link", "https://wiki.example.com/har")
    assert good.exit_code == 0, good.output
    assert _run(config, "revoke", "diag.har_capture", "--by", "").exit_code == 2


def test_a_second_ack_says_what_it_supersedes_and_acks_all_marks_it(tmp_path):
    config = _config(tmp_path)
    _run(config, "ack", "diag.har_capture", "--by", "alice", "--note", "HAR how-to in wiki")
    second = _run(config, "ack", "diag.har_capture", "--by", "bob", "--note", "updated for SSO")
    assert second.exit_code == 0
    assert "supersedes #1 by alice of " in second.output and "HAR how-to in wiki" in second.output
    live = json.loads(_run(config, "acks", "--format", "json").output)
    assert [(a["by"], a["state"]) for a in live] == [("bob", "active")]
    every = json.loads(_run(config, "acks", "--all", "--format", "json").output)
    assert [(a["by"], a["state"]) for a in every] == [("alice", "superseded"), ("bob", "active")]
    text = _run(config, "acks", "--all").output.splitlines()
    assert "(superseded)" in text[0] and "alice" in text[0] and "(superseded)" not in text[1]
    _run(config, "revoke", "diag.har_capture", "--by", "carol")
    every = json.loads(_run(config, "acks", "--all", "--format", "json").output)
    assert [a["state"] for a in every] == ["revoked", "revoked"]
