"""The bundle's scrubber: what it masks, what it leaves readable, and how it counts."""

from __future__ import annotations

import pytest

from checks.scrub import Scrubber
from checks.secrets import Redactor


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("authorization=Basic dXNlcjpwYXNzd29yZDEy", "dXNlcjpwYXNzd29yZDEy"),
        ("GET /x?api_key=Zx81kq&user=1", "Zx81kq"),
        ('{"client_secret": "s3cr3t-v4lue"}', "s3cr3t-v4lue"),
        ("DB_PASSWORD = 'hunter2hunter2'", "hunter2hunter2"),
        ("postgresql://ls:pa55@w/rd@db:5432/ls", "pa55@w/rd"),
        ("key lsv2_pt_0123456789abcdef0123456789abcdef_0123456789", "lsv2_pt_0123456789abcdef"),
        ("id AKIAQWERTYUIOPASDFGH", "AKIAQWERTYUIOPASDFGH"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("gcp AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghij"),
        (
            '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n"}',
            "MIIEvQIBADANBg",
        ),
        ("invited jane@customer.example", "jane@customer.example"),
    ],
)
def test_secrets_in_text_are_masked(text, secret):
    assert secret not in Scrubber().text(text)


@pytest.mark.parametrize(
    "text", ["token expired for user 42", "Basic information about the node", "pod restarted"]
)
def test_ordinary_words_stay_readable(text):
    assert Scrubber().text(text) == text


def test_env_vars_and_keys_whose_names_look_secret_are_masked_whole_and_counted():
    s = Scrubber()
    data = {
        "env": [
            {"name": "LANGSMITH_LICENSE_KEY", "value": "plainvalue"},
            {"name": "LOG_LEVEL", "value": "info"},
        ],
        "data": {"OAUTH_CLIENT_SECRET": "plainvalue2", "NOTES": "fine"},
        "volumes": [{"secret": {"secretName": "langsmith-secrets"}}],
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "a": "b"}},
        "binaryData": {"blob": "cGxhaW52YWx1ZTM="},
    }
    out = s.value(data)
    assert out["env"] == [
        {"name": "LANGSMITH_LICENSE_KEY", "value": "***"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    assert out["data"] == {"OAUTH_CLIENT_SECRET": "***", "NOTES": "fine"}
    assert out["volumes"][0]["secret"]["secretName"] == "langsmith-secrets"  # names a Secret, holds none
    assert out["metadata"]["annotations"] == {"a": "b"}
    assert "cGxhaW52YWx1ZTM" not in str(out)
    assert s.counts == {"secret_named": 2, "annotation": 1, "binary_data": 1}


def test_run_payload_fields_in_log_lines_are_removed():
    s = Scrubber()
    line = '{"event": "run created", "inputs": {"question": "patient history"}, "outputs": "a diagnosis"}'
    out = s.log_line(line)
    assert "patient" not in out and "diagnosis" not in out and '"event": "run created"' in out
    assert s.counts["payload"] == 2


def test_configured_secrets_are_masked_and_emails_kept_when_asked():
    s = Scrubber(Redactor(["plain-configured-value"]), keep_emails=True)
    assert (
        s.text("uses plain-configured-value for jane@customer.example")
        == "uses *** for jane@customer.example"
    )
    assert s.counts == {"credential": 1}
