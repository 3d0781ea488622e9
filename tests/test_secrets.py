import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from checks.secrets import Redactor, mask_url

SECRETS = [
    "S3cr3t-redis-pw",
    "pg-P4ssw0rd!",
    "ch_pa55word",
    "lsv2_pt_0123456789abcdef0123",
    "aws-SECRET-key-xyz",
]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "junit"])
def test_no_configured_secret_appears_in_any_output(tmp_path, blackhole, fmt):
    # Every backend is unreachable or refuses, so error texts (which may echo a DSN) reach the report.
    config = tmp_path / "lsready.yaml"
    config.write_text(f"""
targets:
  prod:
    redis: {{url: "redis://default:{SECRETS[0]}@127.0.0.1:{blackhole.port}/0"}}
    postgres: {{url: "postgresql://langsmith:{SECRETS[1]}@127.0.0.1:1/postgres"}}
    clickhouse: {{url: "http://langsmith:{SECRETS[2]}@127.0.0.1:1/default"}}
    langsmith: {{base_url: "https://ls.example", api_key: "{SECRETS[3]}"}}
    blob: {{bucket: b, access_key_id: AKIAABCDEFGHIJKLMNOP, secret_access_key: "{SECRETS[4]}"}}
timeouts: {{probe_s: 0.5, run_s: 5}}
""")
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "--format", fmt], obj={})
    assert result.exit_code in (0, 1, 3), result.output
    for secret in SECRETS:
        assert secret not in result.output
    assert "AKIAABCDEFGHIJKLMNOP" not in result.output
    if fmt == "json":
        json.loads(result.output)


def test_redactor_masks_urls_tokens_and_known_values():
    r = Redactor(["hunter2-long"])
    text = (
        "failed: postgresql://u:pw123@h/db token xoxb-1234-5678-abcdef "
        "key lsv2_sk_abcdef0123456789 password=topsecret value hunter2-long"
    )
    out = r.text(text)
    for leaked in ("pw123", "xoxb-1234", "lsv2_sk_", "topsecret", "hunter2-long"):
        assert leaked not in out
    assert "postgresql://u:***@h/db" in out


def test_redactor_walks_nested_evidence():
    r = Redactor(["s3cret-value"])
    assert r.value({"a": ["x s3cret-value y", {"b": "s3cret-value"}], "n": 3}) == {
        "a": ["x *** y", {"b": "***"}],
        "n": 3,
    }


def test_mask_url_keeps_user_and_host():
    assert mask_url("redis://default:pw@redis:6379/0") == "redis://default:***@redis:6379/0"


def test_debug_logs_in_json_carry_no_secret(tmp_path, blackhole):
    import subprocess
    import sys

    config = tmp_path / "lsready.yaml"
    config.write_text(f"""
targets:
  prod:
    redis: {{url: "redis://default:{SECRETS[0]}@127.0.0.1:{blackhole.port}/0"}}
    postgres: {{url: "postgresql://langsmith:{SECRETS[1]}@127.0.0.1:1/postgres"}}
    clickhouse: {{url: "http://langsmith:{SECRETS[2]}@127.0.0.1:1/default"}}
timeouts: {{probe_s: 0.5, run_s: 5}}
""")
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(config), "-v", "--log-format", "json", "check"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode in (0, 1, 3), out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines, "debug logging produced nothing"
    for line in lines:
        json.loads(line)
    for secret in SECRETS[:3]:
        assert secret not in out.stderr and secret not in out.stdout


def test_redacting_filter_masks_arguments_and_tracebacks():
    import logging

    from bot.logs import RedactingFilter

    args = ("redis://:hunter22@h",)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connect %s failed", args, None)
    try:
        raise ValueError("postgresql://u:hunter22@h/db refused")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter(Redactor(["hunter22"])).filter(record)
    assert "hunter22" not in record.getMessage() and "hunter22" not in record.exc_text


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("postgresql://u:Pa55w@rd@db.example:5432/postgres", "rd@db"),
        ("redis://:p@ss/w0rd@redis:6379/0", "w0rd"),
        ("POSTGRES_DATABASE_URI=langsmith:s3cr3tpw@pg.example:5432/postgres", "s3cr3tpw"),
        ("{'password': 'hunter2x'}", "hunter2x"),
        ('password="hunter2y" user=x', "hunter2y"),
        ("S3_SECRET_ACCESS_KEY: topsecretvalue", "topsecretvalue"),
    ],
)
def test_redactor_masks_awkward_credentials(text, leak):
    assert leak not in Redactor().text(text)


def test_known_password_with_at_sign_is_masked_whole():
    url = "postgresql://u:Pa55w@rd@db.example:5432/postgres"
    from checks.secrets import url_password

    assert url_password(url) == "Pa55w@rd"
    out = Redactor([url_password(url)]).text(f"connect to {url} failed; password Pa55w@rd rejected")
    assert "Pa55w" not in out and "@rd" not in out
    assert "db.example:5432" in out


def test_ordinary_text_is_left_alone():
    text = "ClickHouse at ch.example:8123 has 3 replicas; time 12:30 @ UTC; ratio 1:2"
    assert Redactor().text(text) == text
