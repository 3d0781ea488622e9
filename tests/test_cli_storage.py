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


def test_digest_json_compares_with_previous_run(tmp_path):
    config = _config(tmp_path)
    first = json.loads(_run(config, "digest", "--format", "json").output)
    assert first["previous_at"] is None and first["target"] == "prod"
    _run(config, "ack", "diag.har_capture", "--by", "alice")
    second = json.loads(_run(config, "digest", "--format", "json").output)
    assert second["previous_at"] is not None
    assert [c["id"] for c in second["changes"]["fixed"]] == ["diag.har_capture"]
    text = _run(config, "digest").output
    assert "Weekly LangSmith readiness: prod" in text and "Fixed:" not in text
