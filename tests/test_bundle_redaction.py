"""No planted secret leaves in a support bundle: byte for byte, base64- or URL-encoded.

Secrets are planted in every source a bundle reads: pod env, ConfigMap data, current and previous
log lines, events, ClickHouse query text (system.processes and query_log rows), Redis client names,
PostgreSQL application names and lsready's own config values. The engines are slow to plant in, so
markers are planted once on the real engines and collected once; each generated case then puts its
secrets where the markers are and runs the redaction pipeline (scrub, cap, manifest) over that
collection. A few end-to-end bundles plant real secrets on the real engines and unpack the archive.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import string
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bundle import cluster_logs, cluster_objects, read_archive

from checks.scrub import Scrubber
from conftest import make_config
from runbooks.bundle import BundleOptions, Collection, Part, build_bundle, collect_bundle, render

ROOT = Path(__file__).resolve().parent.parent

TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~+/="
URL_PASSWORD_CHARS = string.ascii_letters + string.digits + "-_.~!*$@/"


def _mixed(s: str) -> bool:
    return any(c.isalpha() for c in s) and any(c.isdigit() for c in s)


tokens = st.text(TOKEN_CHARS, min_size=16, max_size=40).filter(_mixed)
hexes = st.text("0123456789abcdef", min_size=40, max_size=40)


@st.composite
def secret_phrase(draw: Any, named_slot: bool) -> tuple[str, list[str]]:
    """(text to plant, the secrets in it) of one kind; a bare value only where the slot's name is secret."""
    kinds = ["named", "url", "bearer", "langsmith", "slack", "aws", "gcp", "email", "jwt"]
    kind = draw(st.sampled_from(kinds + (["raw", "raw"] if named_slot else [])))
    s = draw(tokens)
    if kind == "raw":
        return s, [s]
    if kind == "named":
        name = draw(st.sampled_from(["password", "API_KEY", "client_secret", "X-Auth-Token", "db_passwd"]))
        form = draw(st.sampled_from(["{n}={s}", "{n}: {s}", '"{n}": "{s}"', "{n} = '{s}'"]))
        return "connecting with " + form.format(n=name, s=s), [s]
    if kind == "url":
        pw = draw(st.text(URL_PASSWORD_CHARS, min_size=12, max_size=32).filter(_mixed))
        scheme = draw(st.sampled_from(["postgres", "redis", "https", "clickhouse"]))
        return f"dial {scheme}://app:{pw}@db.internal:5432/langsmith failed", [pw]
    if kind == "bearer":
        return f"Authorization: Bearer {s}", [s]
    if kind == "langsmith":
        key = "lsv2_" + draw(st.sampled_from(["pt", "sk"])) + "_" + draw(hexes)[:32] + "_" + draw(hexes)[:10]
        return f"client used {key} for the request", [key]
    if kind == "slack":
        tok = draw(st.sampled_from(["xoxb", "xoxp", "xapp"])) + "-1234567890-" + draw(hexes)[:24]
        return f"slack token {tok}", [tok]
    if kind == "aws":
        key = "AKIA" + draw(st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16))
        return f"using access key {key} in us-west-2", [key]
    if kind == "gcp":
        body, key_id = (
            draw(st.text(string.ascii_letters + string.digits + "+/", min_size=64, max_size=64)),
            draw(hexes),
        )
        doc = {
            "type": "service_account",
            "project_id": "acme",
            "private_key_id": key_id,
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{body}\n{body[::-1]}\n-----END PRIVATE KEY-----\n",
            "client_email": "ls@acme.iam.gserviceaccount.com",
        }
        return json.dumps(doc), [body, body[::-1], key_id]
    if kind == "email":
        user = draw(st.text(string.ascii_lowercase + string.digits, min_size=8, max_size=16).filter(_mixed))
        return f"invited {user}@customer-corp.com", [f"{user}@customer-corp.com"]
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    jwt = f"{header}.{base64.urlsafe_b64encode(s.encode()).decode().rstrip('=')}.{draw(hexes)}"
    return f"session {jwt}", [jwt, s]


def encodings(secret: str) -> set[bytes]:
    raw = secret.encode()
    forms = {raw, quote(secret, safe="").encode(), quote_plus(secret).encode()}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(enc(raw).rstrip(b"="))
    return {f for f in forms if len(f) >= 8}


def leaks(files: dict[str, bytes], secrets: list[str]) -> list[str]:
    found = []
    for secret in secrets:
        for form in encodings(secret):
            found += [f"{secret!r} as {form[:30]!r} in {p}" for p, data in files.items() if form in data]
    return found


# -- where the markers go ---------------------------------------------------------------------------

# slot -> whether its name alone marks it secret (then a bare value must be masked too)
SLOTS = {
    "ENVNAMED": True,
    "ENVFREE": False,
    "CMNAMED": True,
    "CMFREE": False,
    "LOG": False,
    "PREVLOG": False,
    "EVENT": False,
    "REDIS": False,
    "PG": False,
    "CHPROC": False,
    "CHLOG": False,
    "CHEXC": False,
    "CONFIG": True,
}


def marker(slot: str) -> str:
    return f"PLANTx{slot}x"


def planted_cluster() -> tuple[dict[str, Any], dict[Any, Any]]:
    objects = cluster_objects(
        env={"LANGSMITH_API_KEY": marker("ENVNAMED"), "EXTRA_ARGS": marker("ENVFREE")},
        config_data={"OAUTH_CLIENT_SECRET": marker("CMNAMED"), "NOTES": marker("CMFREE")},
    )
    objects["events"][0]["message"] = f"Failed to pull: {marker('EVENT')}"
    logs = cluster_logs([f"request failed: {marker('LOG')}"], [f"fatal: {marker('PREVLOG')}"])
    return objects, logs


@pytest.fixture(scope="module")
def collected(tmp_path_factory, redis_url, postgres_url, clickhouse_base) -> Collection:
    """One collection from the real engines and the API fake, with a marker in every slot."""
    from k8s_fake import Servers

    servers = Servers(tmp_path_factory.mktemp("k8s"))
    objects, logs = planted_cluster()
    _, k8s = servers.live_section(objects, logs=logs)
    rc = redis.Redis.from_url(redis_url, client_name=marker("REDIS"))
    rc.ping()
    pg = psycopg.connect(postgres_url, application_name=marker("PG"))
    try:
        base_url = clickhouse_base[0]
        target = {"redis": {"url": redis_url}, "postgres": {"url": postgres_url},
                  "clickhouse": {"url": base_url}, "kubernetes": k8s,
                  "langsmith": {"base_url": "http://127.0.0.1:9", "api_key": marker("CONFIG")}}  # fmt: skip
        config = make_config({"prod": target}, timeouts={"probe_s": 2, "run_s": 8})
        opts = BundleOptions(deadline_s=30, triage_sample_s=0.1)
        coll = collect_bundle(config, "prod", opts, evidence={"triage": {"note": "from the message"}})
    finally:
        rc.close()
        pg.close()
        servers.close()
    # ClickHouse as a server with query_log reads it, in place of the session engine's rows.
    planted = {
        f"clickhouse/{n}.json": rows
        for n, rows in clickhouse_query_text(tmp_path_factory.mktemp("chq")).items()
    }
    ch = coll.sources["clickhouse"]
    ch.parts = [p for p in ch.parts if p.path not in planted] + [Part(p, rows) for p, rows in planted.items()]
    return coll


# -- ClickHouse query text, planted on an engine with query_log (a process of its own) ------------

CH_CONFIG = """<clickhouse><query_log><database>system</database><table>query_log</table>
  <flush_interval_milliseconds>100</flush_interval_milliseconds></query_log></clickhouse>"""
UNSHAPED = "Qm7vN2xR9kL4pT8w"  # a literal with no name and no shape: only normalization keeps it out


def _clickhouse_phase(data: str) -> None:
    """In a subprocess: plant markers in query text (running, logged, failed); print what a bundle reads."""
    import threading

    import chdb
    import clickhouse_connect
    from waiting import wait_until

    from checks.collect import run_support_queries
    from checks.config import ClickHouseConfig
    from checks.sessions import ClickHouseSession
    from runbooks.demo.schema import build_clickhouse

    engine = chdb.connect(f"{data}?config-file={data}/config.xml")
    admin = clickhouse_connect.get_client(dsn=f"chdb://{data}")
    build_clickhouse(admin, "default", runs=50)
    admin.query(f"-- {marker('CHLOG')}\nSELECT count() FROM default.runs WHERE name = '{UNSHAPED}'")
    # It fails with the literal in its exception text, which query_log keeps.
    with contextlib.suppress(Exception):
        admin.query(f"-- fetch_runs\nSELECT toUInt64('{marker('CHEXC')}')")
    admin.command("SYSTEM FLUSH LOGS")
    running = clickhouse_connect.get_client(dsn=f"chdb://{data}")  # its own handle: runs beside the bundle
    slow = (
        f"-- {marker('CHPROC')}\nSELECT sleepEachRow(0.1), '{UNSHAPED}' FROM numbers(900) "
        "SETTINGS max_block_size=1"
    )
    # Still running when the bundle reads system.processes, however slow this machine; os._exit ends it.
    worker = threading.Thread(target=running.query, args=(slow,), daemon=True)
    worker.start()
    # The marker split in two: this query is not counted.
    seen = "SELECT count() FROM system.processes WHERE position(query, concat('PLANTx', 'CHPROCx')) > 0"
    wait_until(
        lambda: admin.query(seen).result_rows[0][0], timeout=10, what="the slow query in system.processes"
    )
    session = ClickHouseSession(ClickHouseConfig(url=f"chdb://{data}?database=default"), 5)
    out: dict[str, Any] = {}
    run_support_queries(session, 86400, out.__setitem__, lambda n, why: out.__setitem__(n, {"failed": why}))
    print("RESULT " + json.dumps(out, default=str))
    sys.stdout.flush()
    del engine
    os._exit(0)


def clickhouse_query_text(data: Path) -> dict[str, Any]:
    (data / "config.xml").write_text(CH_CONFIG)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from test_bundle_redaction import _clickhouse_phase
        _clickhouse_phase({str(data)!r})
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=data, capture_output=True, text=True, timeout=90, check=False
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"the ClickHouse phase failed: {proc.stderr[-3000:]}"
    return json.loads(line[len("RESULT ") :])


def test_clickhouse_query_text_is_read_from_processes_and_query_log_without_its_literals(collected):
    parts = {p.path: p.data for p in collected.sources["clickhouse"].parts}
    processes = json.dumps(parts["clickhouse/processes.json"])
    assert marker("CHPROC") in processes and "sleepEachRow(?)" in processes  # the running query, normalized
    assert marker("CHLOG") in json.dumps(parts["clickhouse/query_stats_hourly.json"])
    assert marker("CHEXC") in json.dumps(parts["clickhouse/query_exceptions.json"])
    assert UNSHAPED not in json.dumps(parts)


def _has_marker(data: Any) -> bool:
    return "PLANTx" in json.dumps(data)


def _prune(data: Any) -> Any:
    """Only what leads to a marker, with the scalars beside it (an env var's name stays with its value)."""
    if isinstance(data, list):
        return [_prune(v) for v in data if _has_marker(v)]
    if isinstance(data, dict):
        return {k: _prune(v) for k, v in data.items() if not isinstance(v, dict | list) or _has_marker(v)}
    return data


def _with_markers(coll: Collection) -> Collection:
    """Only the parts holding a marker, pruned to the way there: the rest cannot leak a planted secret."""
    sources = {}
    for key, src in coll.sources.items():
        kept = [replace(p, data=_prune(p.data)) for p in src.parts if _has_marker(p.data)]
        sources[key] = replace(src, parts=kept, problems=list(src.problems))
    return replace(coll, sources=sources)


def test_every_slot_is_collected(collected):
    text = "".join(json.dumps(p.data) for s in collected.sources.values() for p in s.parts)
    assert {slot for slot in SLOTS if marker(slot) in text} == set(SLOTS)


def _plant(coll: Collection, phrases: dict[str, str]) -> Collection:
    sources = {}
    for key, src in coll.sources.items():
        parts = []
        for p in src.parts:
            text = json.dumps(p.data)
            for slot, phrase in phrases.items():
                # JSON-escaped as the value it replaces, without the quotes
                text = text.replace(marker(slot), json.dumps(phrase)[1:-1])
            parts.append(Part(p.path, json.loads(text), p.log))
        sources[key] = replace(src, parts=parts)
    return replace(coll, sources=sources)


@pytest.fixture(scope="module")
def marked(collected) -> Collection:
    return _with_markers(collected)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(data=st.data())
def test_no_planted_secret_reaches_the_bundle_in_any_form(marked, data):
    phrases, secrets = {}, []
    for slot, named in SLOTS.items():
        phrase, planted = data.draw(secret_phrase(named), label=slot)
        phrases[slot], secrets = phrase, secrets + planted
    config = make_config({"prod": {"langsmith": {"base_url": "http://x", "api_key": phrases["CONFIG"]}}})
    scrubber = Scrubber(config.redactor())
    files, manifest = render(_plant(marked, phrases), scrubber)
    out = dict(files) | {"manifest.json": json.dumps(manifest).encode()}
    assert not leaks(out, secrets)
    assert sum(manifest["redacted"].values()) >= len(SLOTS) - 1


# -- end to end on the real engines -------------------------------------------------------------------

REAL = {
    "env": "sk-live-9f8e7d6c5b4a3210ffee",
    "log": "lsv2_pt_0123456789abcdef0123456789abcdef_0123456789",
    "prev": "Zq9xW2vB7nM4kL1pR8tY",
    "cm": "AKIAQWERTYUIOPASDFGH",
    "redis": "xoxb-1234567890-abcdefghijklmnopqrstuvwx",
    "pg": "Hx7Kp2Lq9Wm4Rt6Yz1Bn",
    "config": "c0nfig-S3cret-Value-42",
    "email": "jane.doe42@customer-corp.com",
}


def test_a_real_bundle_carries_none_of_the_secrets_planted_in_the_engines(
    servers, clickhouse, redis_url, postgres_url, tmp_path
):
    objects = cluster_objects(
        env={"OPENAI_API_KEY": REAL["env"], "INVITE": f"mail {REAL['email']}"},
        config_data={"S3_ACCESS": f"aws_access_key_id={REAL['cm']}"},
    )
    logs = cluster_logs([f"sent with key {REAL['log']}"], [f"db password={REAL['prev']}"])
    _, k8s = servers.live_section(objects, logs=logs)
    rc = redis.Redis.from_url(redis_url, client_name=REAL["redis"])
    rc.ping()
    pg = psycopg.connect(postgres_url, application_name=f"worker token={REAL['pg']}")
    try:
        target = {"redis": {"url": redis_url}, "postgres": {"url": postgres_url},
                  "clickhouse": {"url": clickhouse[0]}, "kubernetes": k8s,
                  "langsmith": {"base_url": "http://127.0.0.1:9", "api_key": REAL["config"]}}  # fmt: skip
        config = make_config({"prod": target}, timeouts={"probe_s": 2, "run_s": 8})
        opts = BundleOptions(deadline_s=30, triage_sample_s=0.1)
        for out in (tmp_path / "b.tar.gz", tmp_path / "b.zip"):
            bundle = build_bundle(config, "prod", opts, out)
            files = read_archive(bundle.path)
            assert not leaks(files, list(REAL.values()))
            counts = bundle.manifest["redacted"]
            assert counts.get("email", 0) >= 1 and counts.get("secret_named", 0) >= 1
    finally:
        rc.close()
        pg.close()
    # the secrets were there to find: the pod's env reached the bundle, masked
    pods = json.loads(files["kubernetes/pods.json"])
    env = {e["name"]: e["value"] for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["OPENAI_API_KEY"] == "***" and env["INVITE"] == "mail [email]"


def test_keep_emails_keeps_them(servers, tmp_path):
    objects = cluster_objects(env={"INVITE": REAL["email"]})
    _, k8s = servers.live_section(objects, logs=cluster_logs())
    config = make_config({"prod": {"kubernetes": k8s}}, timeouts={"probe_s": 2, "run_s": 8})
    opts = BundleOptions(deadline_s=30, triage_sample_s=0.1, keep_emails=True)
    files = read_archive(build_bundle(config, "prod", opts, tmp_path / "b.tar.gz").path)
    assert REAL["email"].encode() in files["kubernetes/pods.json"]
