"""Redis probes against a real redis-server, run as the least-privilege ACL user of deploy/grants."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_py

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.probes import redis as probes
from checks.probes.common import classify_host
from checks.registry import load_catalog
from checks.runner import run_checks

ROOT = Path(__file__).resolve().parent.parent
ACL_FILE = ROOT / "deploy" / "grants" / "redis-acl.conf"
CATALOG = load_catalog()
HOUR = 3600.0


def acl_rules(drop: Sequence[str] = (), add: Sequence[str] = ()) -> list[str]:
    """The rules of the `user lsready` line, without its placeholder password."""
    line = next(ln for ln in ACL_FILE.read_text().splitlines() if ln.startswith("user lsready "))
    rules = [t for t in line.split()[2:] if not t.startswith(">") and t not in drop]
    return [*rules, *add]


@contextmanager
def lsready_redis_url(
    admin: Any, redis_url: str, drop: Sequence[str] = (), add: Sequence[str] = ()
) -> Iterator[str]:
    """A URL for a fresh ACL user with the grants file's rules; the user is deleted afterwards."""
    name, password = f"lsready_t{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", name, "reset", *acl_rules(drop, add), f">{password}")
    parts = urlsplit(redis_url)
    netloc = f"{name}:{password}@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    finally:
        admin.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def lsr_url(redis_client: Any, redis_url: str) -> Iterator[str]:
    with lsready_redis_url(redis_client, redis_url) as url:
        yield url


def clients_for(url: str) -> Clients:
    return Clients("t", TargetConfig.model_validate({"redis": {"url": url}}), timeout_s=5)


def run(probe: str, url: str, **overrides: Any) -> Any:
    item_id = next(i.id for i in CATALOG.items if i.probe == probe)
    params = {**CATALOG.get(item_id).thresholds, **overrides}
    clients = clients_for(url)
    try:
        return CATALOG.probes[probe](clients, params)
    finally:
        clients.close()


def push_saq_job(r: Any, queue: str, queued_s: float, key: str | None = None) -> str:
    """Enqueue the way saq does: the job JSON under saq:job:<queue>:<key>, its id RPUSHed to queued."""
    key = key or uuid.uuid4().hex
    job_id = f"saq:job:{queue}:{key}"
    r.set(
        job_id,
        json.dumps({"function": "process_run", "key": key, "queue": queue, "queued": int(queued_s * 1000)}),
    )
    r.rpush(f"saq:{queue}:queued", job_id)
    return job_id


def push_asynq_task(r: Any, queue: str, pending_since_s: float) -> str:
    """Enqueue the way asynq does: the task hash, its id LPUSHed to pending, the queue registered."""
    task_id = uuid.uuid4().hex
    r.sadd("asynq:queues", queue)
    r.hset(
        f"asynq:{{{queue}}}:t:{task_id}",
        mapping={"state": "pending", "pending_since": int(pending_since_s * 1e9)},
    )
    r.lpush(f"asynq:{{{queue}}}:pending", task_id)
    return task_id


# --- redis.eviction --------------------------------------------------------------------------


def test_noeviction_with_maxmemory_and_no_evictions_passes(redis_client, lsr_url):
    redis_client.config_resetstat()
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", "1gb")
    ev = run("redis.eviction", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    assert ev.observed["evicted_keys"] == 0 and ev.observed["mem_fragmentation_ratio"] is not None


def test_evicting_policy_with_evictions_fails(redis_client, lsr_url):
    redis_client.config_resetstat()
    used = redis_client.info("memory")["used_memory"]
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    redis_client.config_set("maxmemory", used + 2_000_000)
    try:
        for n in range(200):
            redis_client.set(f"payload:{n}", "x" * 100_000)
            if redis_client.info("stats")["evicted_keys"]:
                break
        ev = run("redis.eviction", lsr_url)
    finally:
        redis_client.config_set("maxmemory", "1gb")
        redis_client.config_resetstat()
    assert ev.status is Status.FAIL, ev.summary
    assert ev.observed["evicted_keys"] > 0 and "allkeys-lru" in ev.summary


def test_evicting_policy_without_evictions_warns(redis_client, lsr_url):
    redis_client.config_resetstat()
    redis_client.config_set("maxmemory-policy", "volatile-lru")
    redis_client.config_set("maxmemory", "1gb")
    ev = run("redis.eviction", lsr_url)
    assert ev.status is Status.WARN and "volatile-lru" in ev.summary


def test_writes_refused_for_memory_under_noeviction_warn(redis_client, lsr_url):
    redis_client.config_resetstat()
    used = redis_client.info("memory")["used_memory"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", used + 1_000_000)
    refused = 0
    try:
        for n in range(100):
            try:
                redis_client.set(f"payload:{n}", "x" * 100_000)
            except redis_py.exceptions.OutOfMemoryError:
                refused += 1
                break
        ev = run("redis.eviction", lsr_url)
    finally:
        redis_client.config_set("maxmemory", "1gb")
        redis_client.config_resetstat()
    assert refused and ev.status is Status.WARN, ev.summary
    assert ev.observed["oom_rejected_commands"] >= 1 and "OOM" in ev.summary


def test_unbounded_maxmemory_warns_even_without_evictions(redis_client, lsr_url):
    redis_client.config_resetstat()
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 0)
    ev = run("redis.eviction", lsr_url)
    assert ev.status is Status.WARN and "maxmemory is 0" in ev.summary


# --- redis.monitored and queue_depths ---------------------------------------------------------


def test_quiet_saq_and_asynq_queues_pass(redis_client, lsr_url):
    now = time.time()
    for _ in range(3):
        push_saq_job(redis_client, "default", now - 5)
    push_asynq_task(redis_client, "ingest", now - 2)
    ev = run("redis.monitored", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    queues = ev.observed["queues"]
    assert queues["saq:default"]["waiting"] == 3 and 4 <= queues["saq:default"]["oldest_age_s"] < 60
    assert queues["saq:host"] == {"waiting": 0, "active": 0, "oldest_age_s": None}
    assert queues["asynq:ingest"]["waiting"] == 1 and queues["asynq:ingest"]["oldest_age_s"] < 60


def test_queue_deeper_than_warn_warns_and_deeper_than_fail_fails(redis_client, lsr_url):
    now = time.time()
    for _ in range(51):
        push_saq_job(redis_client, "default", now)
    warn = run("redis.monitored", lsr_url)
    assert warn.status is Status.WARN and "saq:default is too deep at 51" in warn.summary
    for _ in range(150):
        push_saq_job(redis_client, "default", now)
    assert run("redis.monitored", lsr_url).status is Status.FAIL


def test_saq_job_older_than_run_expiry_fails(redis_client, lsr_url):
    push_saq_job(redis_client, "default", time.time() - 7 * HOUR)
    push_saq_job(redis_client, "default", time.time())
    ev = run("redis.monitored", lsr_url)
    assert ev.status is Status.FAIL and "runs are being lost" in ev.summary
    assert ev.observed["queues"]["saq:default"]["oldest_age_s"] > 6 * HOUR


def test_asynq_task_older_than_run_expiry_fails(redis_client, lsr_url):
    # The oldest is pushed first; asynq reads pending from the right.
    push_asynq_task(redis_client, "ingest", time.time() - 7 * HOUR)
    push_asynq_task(redis_client, "ingest", time.time())
    ev = run("redis.monitored", lsr_url)
    assert ev.status is Status.FAIL and "asynq:ingest" in ev.summary


def test_unparseable_saq_job_reports_depth_only(redis_client, lsr_url):
    redis_client.set("saq:job:default:bin", "not json at all")
    redis_client.rpush("saq:default:queued", "saq:job:default:bin", "saq:job:default:missing")
    ev = run("redis.monitored", lsr_url)
    assert ev.status is Status.PASS
    assert ev.observed["queues"]["saq:default"] == {"waiting": 2, "active": 0, "oldest_age_s": None}


def test_queue_depths_discovers_other_saq_queues_and_dates_oldest_job(redis_client):
    now = 1_700_000_000.0
    push_saq_job(redis_client, "custom", now - 90)
    push_saq_job(redis_client, "custom", now - 10)
    redis_client.rpush("saq:custom:active", "saq:job:custom:running")
    depths = {d.label: d for d in probes.queue_depths(redis_client, sample_limit=1000, now=now)}
    assert set(depths) == {"saq:custom", "saq:default", "saq:host"}
    assert depths["saq:custom"] == probes.QueueDepth("saq", "custom", 2, 1, 90.0)


def test_connections_near_maxclients_warn(redis_client, redis_url, lsr_url):
    connected = redis_client.info("clients")["connected_clients"]
    redis_client.config_set("maxclients", connected + 12)
    held = [redis_py.Redis.from_url(redis_url) for _ in range(10)]
    try:
        for conn in held:
            conn.ping()
        ev = run("redis.monitored", lsr_url)
    finally:
        for conn in held:
            conn.close()
    assert ev.status is Status.WARN, ev.summary
    assert ev.observed["connections_ratio"] >= 0.8 and "maxclients" in ev.summary


def test_missing_acl_command_is_unknown_naming_it(redis_client, redis_url):
    with lsready_redis_url(redis_client, redis_url, drop=["+smembers"]) as url:
        clients = clients_for(url)
        report = run_checks(CATALOG, clients, items=[CATALOG.get("redis.monitored")])
        clients.close()
    result = report.results[0]
    assert result.status is Status.UNKNOWN and "smembers" in result.summary


# --- redis.not_shared ------------------------------------------------------------------------


def test_only_langsmith_keys_pass(redis_client, lsr_url):
    push_saq_job(redis_client, "default", time.time())
    push_asynq_task(redis_client, "ingest", time.time())
    ev = run("redis.not_shared", lsr_url)
    assert ev.status is Status.PASS, ev.summary
    # The job string, saq:default:queued, asynq:queues, the task hash and the pending list.
    assert ev.observed["sampled_keys"] == 5 and ev.observed["sample_complete"]


def test_foreign_keys_warn_with_top_prefixes(redis_client, lsr_url):
    push_saq_job(redis_client, "default", time.time())
    for n in range(20):
        redis_client.set(f"sess:{uuid.uuid4().hex}", n)
    redis_client.set("celery-task-meta-1234", "{}")
    ev = run("redis.not_shared", lsr_url)
    assert ev.status is Status.WARN and "sess:* (20)" in ev.summary
    assert ev.observed["top_foreign_prefixes"] == {"sess:": 20, "celery-task-meta-": 1}


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("sess:abc", "sess:"),
        ("celery-task-meta-42", "celery-task-meta-"),
        ("9f86d081884c7d659a2feaa0c55ad015:payload", "(opaque)"),  # an id first: never echoed
        ("12345678", "(other)"),
    ],
)
def test_key_prefixes_name_namespaces_not_ids(key, prefix):
    assert probes.key_prefix(key) == prefix


def test_sample_stops_at_sample_keys(redis_client, lsr_url):
    redis_client.mset({f"cache:{n}": n for n in range(300)})
    ev = run("redis.not_shared", lsr_url, sample_keys=100)
    assert ev.observed["sampled_keys"] == 100 and not ev.observed["sample_complete"]


def test_keys_in_another_database_warn(redis_client, redis_url, lsr_url):
    other = redis_py.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/7", decode_responses=True)
    other.set("lsready-test:other-app", "1")
    try:
        ev = run("redis.not_shared", lsr_url)
    finally:
        other.delete("lsready-test:other-app")
        other.close()
    assert ev.status is Status.WARN and "db7 (1 keys)" in ev.summary


def test_client_names_are_evidence_of_other_applications(redis_client, lsr_url):
    redis_client.client_setname("billing-worker")
    ev = run("redis.not_shared", lsr_url)
    assert ev.observed["client_names"].get("billing-worker") == 1
    assert "lsready" not in ev.observed["client_names"]


# --- redis.external --------------------------------------------------------------------------


def test_loopback_redis_warns_with_server_evidence_and_no_password(lsr_url):
    ev = run("redis.external", lsr_url)
    assert ev.status is Status.WARN and "loopback" in ev.summary
    assert any(f.startswith("redis_version=") for f in ev.observed["server"])
    password = urlsplit(lsr_url).password
    assert password not in ev.summary and password not in json.dumps(ev.observed)


@pytest.mark.parametrize(
    ("host", "hint", "status"),
    [
        ("master.ls-redis.abc123.use1.cache.amazonaws.com", None, Status.PASS),
        ("ls.redis.cache.windows.net", None, Status.PASS),
        ("10.20.0.5", "AWS ElastiCache", Status.PASS),  # INFO server says os:Amazon ElastiCache
        ("langsmith-redis", None, Status.WARN),
        ("langsmith-redis.langsmith", None, Status.WARN),
        ("langsmith-redis.langsmith.svc.cluster.local", None, Status.WARN),
        ("127.0.0.1", None, Status.WARN),
        (None, None, Status.WARN),  # unix socket
        ("10.20.0.5", None, Status.MANUAL),  # Memorystore or a VM: only a person can tell
        ("redis.internal.example.com", None, Status.MANUAL),
    ],
)
def test_redis_placement_from_host_and_server_hint(host, hint, status):
    place = classify_host(host, probes.MANAGED_SUFFIXES, ("redis",))
    assert probes.placement_verdict(place, None, hint) is status


def test_bundled_statefulset_warns_even_for_an_unrecognised_host():
    place = classify_host("10.0.0.9", probes.MANAGED_SUFFIXES, ("redis",))
    assert probes.placement_verdict(place, "langsmith-redis", None) is Status.WARN


def test_elasticache_info_server_is_recognised():
    hint, facts = probes.server_hints(
        {"redis_version": "7.1.0", "os": "Amazon ElastiCache", "executable": "-"}
    )
    assert hint == "AWS ElastiCache" and "os=Amazon ElastiCache" in facts
