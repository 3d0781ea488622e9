"""Redis probes: the write-path buffer between platform-backend and the queue workers.

Read-only by construction: INFO, SCAN (bounded, never KEYS), LLEN, LRANGE of one element, GET,
HGET, SMEMBERS and CLIENT LIST; deploy/grants/redis-acl.conf allows exactly these.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError, ResponseError

from checks import endpoints
from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import (
    Placement,
    classify_host,
    cluster_lookup,
    grade_above,
    grade_high,
    human_bytes,
    human_duration,
    pct,
    worst,
)

# DNS suffixes of managed Redis endpoints. Memorystore has none: it hands out private IPs.
MANAGED_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".cache.amazonaws.com", "AWS ElastiCache"),
    (".cache.amazonaws.com.cn", "AWS ElastiCache"),
    (".memorydb.amazonaws.com", "AWS MemoryDB"),
    (".redis.cache.windows.net", "Azure Cache for Redis"),
    (".redisenterprise.cache.azure.net", "Azure Cache for Redis Enterprise"),
    (".redis.azure.net", "Azure Managed Redis"),
    (".redis-cloud.com", "Redis Cloud"),
    (".redislabs.com", "Redis Cloud"),
    (".upstash.io", "Upstash"),
)
SAQ_QUEUES = ("default", "host")  # LangSmith's saq queues (queue and listener workers)
MAX_QUEUES = 50  # queues read per system; more than this is itself worth a look
EVICTING_PREFIXES = ("allkeys-", "volatile-")


# --- Queues: reused by the triage runbooks --------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    """One LangSmith queue in Redis; `oldest_age_s` is None when no waiting job could be dated."""

    system: str  # "saq" (queue, listener) or "asynq" (ingest-queue)
    queue: str
    waiting: int
    active: int
    oldest_age_s: float | None

    @property
    def label(self) -> str:
        return f"{self.system}:{self.queue}"

    def to_dict(self) -> dict[str, Any]:
        age = None if self.oldest_age_s is None else round(self.oldest_age_s, 1)
        return {"waiting": self.waiting, "active": self.active, "oldest_age_s": age}


def queue_depths(r: Any, sample_limit: int = 1000, now: float | None = None) -> list[QueueDepth]:
    """Depth and oldest waiting age of every saq and asynq queue found; reads only."""
    now = time.time() if now is None else now
    return [*_saq_depths(r, sample_limit, now), *_asynq_depths(r, now)]


def scan_sample(r: Any, limit: int, match: str | None = None, count: int = 250) -> tuple[list[str], bool]:
    """Up to `limit` keys via SCAN, examining about `limit` keys at most; True if SCAN finished."""
    keys: list[str] = []
    cursor, examined = 0, 0
    while True:
        step = min(count, max(1, limit))
        cursor, batch = r.scan(cursor=cursor, match=match, count=step)
        keys.extend(batch)
        examined += step
        if cursor == 0:
            return keys[:limit], len(keys) <= limit
        if len(keys) >= limit or examined >= limit:
            return keys[:limit], False


def _saq_depths(r: Any, sample_limit: int, now: float) -> list[QueueDepth]:
    names = set(SAQ_QUEUES)
    found, _ = scan_sample(r, sample_limit, match="saq:*:queued")
    for key in found:
        # Job ids are saq:job:<queue>:<key>; only saq:<queue>:queued is a queue list.
        if not key.startswith("saq:job:"):
            names.add(key[len("saq:") : -len(":queued")])
    depths = []
    for name in sorted(names)[:MAX_QUEUES]:
        waiting = int(r.llen(f"saq:{name}:queued"))
        active = int(r.llen(f"saq:{name}:active"))
        oldest = _saq_oldest_age(r, name, now) if waiting else None
        depths.append(QueueDepth("saq", name, waiting, active, oldest))
    return depths


def _saq_oldest_age(r: Any, queue: str, now: float) -> float | None:
    # saq RPUSHes and dequeues from the left, so the oldest waiting job is at index 0.
    head = r.lrange(f"saq:{queue}:queued", 0, 0)
    queued_ms = _saq_queued_ms(r, head[0]) if head else None
    return None if queued_ms is None else max(0.0, now - queued_ms / 1000)


def _saq_queued_ms(r: Any, job_id: str) -> float | None:
    """The job's `queued` timestamp (ms), from its JSON string or hash field; None if unreadable."""
    try:
        raw = r.get(job_id)
    except NoPermissionError:
        raise
    except ResponseError:  # WRONGTYPE: a job stored as a hash
        return _saq_hash_queued_ms(r, job_id)
    except UnicodeDecodeError:  # a binary serializer: depth only
        return None
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return _number(doc.get("queued")) if isinstance(doc, dict) else None


def _saq_hash_queued_ms(r: Any, job_id: str) -> float | None:
    try:
        return _number(r.hget(job_id, "queued"))
    except NoPermissionError:
        raise
    except (ResponseError, UnicodeDecodeError):
        return None


def _asynq_depths(r: Any, now: float) -> list[QueueDepth]:
    depths = []
    for name in sorted(r.smembers("asynq:queues"))[:MAX_QUEUES]:
        base = f"asynq:{{{name}}}"
        waiting = int(r.llen(f"{base}:pending"))
        active = int(r.llen(f"{base}:active"))
        oldest = _asynq_oldest_age(r, base, now) if waiting else None
        depths.append(QueueDepth("asynq", name, waiting, active, oldest))
    return depths


def _asynq_oldest_age(r: Any, base: str, now: float) -> float | None:
    # asynq LPUSHes and dequeues from the right, so the oldest pending task is the last element.
    tail = r.lrange(f"{base}:pending", -1, -1)
    if not tail:
        return None
    since_ns = _number(r.hget(f"{base}:t:{tail[0]}", "pending_since"))
    return None if since_ns is None else max(0.0, now - since_ns / 1e9)


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --- Item: memory sized -----------------------------------------------------------------------


def memory(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """maxmemory is set and used memory stays under it with headroom."""
    info = clients.redis.info("memory")
    used = int(info.get("used_memory", 0))
    maxmemory = int(info.get("maxmemory", 0))
    observed = {
        "used_memory": used,
        "used_memory_peak": int(info.get("used_memory_peak", 0)),
        "maxmemory": maxmemory,
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
    threshold = {"warn_ratio": params["warn_ratio"], "fail_ratio": params["fail_ratio"]}
    if maxmemory == 0:
        return Evidence(
            Status.WARN,
            f"Redis maxmemory is 0 (unbounded, now using {human_bytes(used)}); "
            "set it to fit the write volume so memory pressure is visible before the node runs out.",
            observed,
            threshold,
        )
    ratio = used / maxmemory
    observed["used_ratio"] = round(ratio, 4)
    # The peak shows how close a past burst came, which a quiet moment hides.
    observed["peak_ratio"] = round(observed["used_memory_peak"] / maxmemory, 4)
    status = grade_high(ratio, params["warn_ratio"], params["fail_ratio"])
    shown = pct(ratio, params["warn_ratio"], params["fail_ratio"])
    return Evidence(
        status,
        f"Redis uses {human_bytes(used)} of maxmemory {human_bytes(maxmemory)} ({shown}); "
        f"warn at {pct(params['warn_ratio'])}, fail at {pct(params['fail_ratio'])}.",
        observed,
        threshold,
    )


# --- Item: external Redis ---------------------------------------------------------------------


def server_hints(server: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """A provider named by `INFO server`, and the facts worth showing, from one INFO reply."""
    os_name = str(server.get("os", ""))
    executable = str(server.get("executable", ""))
    keys = ("redis_version", "redis_mode", "os", "executable", "config_file")
    facts = [f"{k}={server[k]}" for k in keys if k in server]
    if "elasticache" in os_name.lower():
        return "AWS ElastiCache", facts
    # Managed services mask the binary path; a self-run redis-server reports a real path or nothing.
    if executable == "-":
        facts.append("executable path hidden, as managed services do")
    return None, facts


def placement_verdict(place: Placement, bundled: str | None, hint: str | None) -> Status:
    """pass for managed, warn for bundled/in-cluster/local, manual when the address cannot tell."""
    if bundled or place.kind in ("in-cluster", "local"):
        return Status.WARN
    if place.kind == "managed" or hint:
        return Status.PASS
    return Status.MANUAL


def external(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """LangSmith's Redis is a managed or external instance, not the bundled StatefulSet."""
    server = clients.redis.info("server")  # first, so an unconfigured target fails as NotConfigured
    endpoint = endpoints.redis(clients.target.redis.url)
    place = classify_host(endpoint.host, MANAGED_SUFFIXES, ("redis",))
    hint, facts = server_hints(server)
    bundled = cluster_lookup(clients, bundled_redis)
    status = placement_verdict(place, bundled, hint)
    provider = place.provider or hint
    observed = {
        "endpoint": endpoint.display(),
        "placement": place.kind,
        "reason": place.reason,
        "provider": provider,
        "server": facts,
        "bundled_statefulset": bundled,
    }
    where = f"Redis at {endpoint.display()}"
    if status is Status.PASS:
        summary = (
            f"{where} is {provider} ({place.reason if place.provider else 'INFO server'}), a managed service."
        )
    elif bundled:
        summary = (
            f"{where} is served by the bundled StatefulSet {bundled}, a single in-cluster pod; "
            "use a managed Redis for significant write volume."
        )
    elif status is Status.WARN:
        summary = (
            f"{where} is {place.reason}, so it runs in-cluster or locally rather than as a managed "
            "service; use a managed Redis for significant write volume."
        )
    else:
        summary = (
            f"{where} is {place.reason}; confirm it is a managed or dedicated external Redis "
            "(Memorystore, for one, only has private IPs) and attest it."
        )
    return Evidence(status, summary, observed, {"expected": "managed or external Redis"})


def bundled_redis(cluster: Any) -> str | None:
    name = cluster.name("redis")
    return name if cluster.get("statefulsets", name) is not None else None


# --- Item: not shared -------------------------------------------------------------------------


_PREFIX = re.compile(r"^[^:]*:|^[A-Za-z._-]+")
_OPAQUE = re.compile(r"[0-9a-fA-F]{12,}|[0-9]{6,}")


def key_prefix(key: str) -> str:
    """The namespace-like start of a key: up to the first ':', else its leading letters."""
    match = _PREFIX.match(key)
    if not match:
        return "(other)"
    # An id or token in first position is data, not a namespace: never echo it.
    prefix = match.group(0)
    return "(opaque)" if len(prefix) > 32 or _OPAQUE.search(prefix) else prefix


def foreign_prefixes(keys: Sequence[str], langsmith_prefixes: Sequence[str]) -> Counter[str]:
    """Counts of key prefixes that are not LangSmith's."""
    return Counter(key_prefix(k) for k in keys if not k.startswith(tuple(langsmith_prefixes)))


def not_shared(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Keys, keyspaces and clients show no other application using this Redis."""
    r = clients.redis
    db = endpoints.redis(clients.target.redis.url).db
    limit = int(params["sample_keys"])
    keys, complete = scan_sample(r, limit)
    foreign = foreign_prefixes(keys, params["langsmith_prefixes"])
    other_dbs = {k: v.get("keys", 0) for k, v in r.info("keyspace").items() if k != f"db{db}"}
    observed: dict[str, Any] = {
        "db": db,
        "sampled_keys": len(keys),
        "sample_complete": complete,
        "foreign_keys": sum(foreign.values()),
        "top_foreign_prefixes": dict(foreign.most_common(5)),
        "other_keyspaces": other_dbs,
        **_client_names(r),
    }
    threshold = {
        "foreign_keys": 0,
        "other_keyspaces": 0,
        "langsmith_prefixes": list(params["langsmith_prefixes"]),
    }
    findings = []
    if foreign:
        shown = ", ".join(f"{p}* ({n})" for p, n in foreign.most_common(3))
        findings.append(f"{sum(foreign.values())} of {len(keys)} sampled keys are not LangSmith's ({shown})")
    if other_dbs:
        shown = ", ".join(f"{k} ({n} keys)" for k, n in sorted(other_dbs.items()))
        findings.append(f"other databases hold keys: {shown}")
    if findings:
        return Evidence(
            Status.WARN,
            f"Redis db{db} looks shared: {'; '.join(findings)}; give LangSmith its own instance "
            "(or add LangSmith's own prefixes to langsmith_prefixes).",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"Redis db{db} holds only LangSmith keys in a sample of {len(keys)} and no other database has keys.",
        observed,
        threshold,
    )


def _client_names(r: Any) -> dict[str, Any]:
    """Connected client names by count (ours excluded); CLIENT LIST is optional evidence."""
    try:
        clients = r.client_list()
    except ResponseError as exc:  # NOPERM, or a managed service that disables it
        return {"client_names": None, "client_list_error": str(exc).split("\n")[0][:120]}
    names = Counter(c.get("name") or "(unnamed)" for c in clients if c.get("name") != "lsready")
    return {"client_names": dict(names.most_common(10))}


# --- Item: memory, connections and queues ---------------------------------------------------


def monitored(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Connections stay under maxclients and no queue is deep or old enough to lose runs."""
    r = clients.redis
    info = r.info("clients")
    connected = int(info.get("connected_clients", 0))
    maxclients = _maxclients(r, info)
    queues = queue_depths(r, int(params["sample_keys"]))
    expiry = float(params["runs_expiry_seconds"])
    observed: dict[str, Any] = {
        "connected_clients": connected,
        "maxclients": maxclients,
        "blocked_clients": int(info.get("blocked_clients", 0)),
        "used_memory": int(r.info("memory").get("used_memory", 0)),
        "queues": {q.label: q.to_dict() for q in queues},
    }
    threshold = {
        k: params[k] for k in ("queue_warn", "queue_fail", "connections_warn_ratio", "runs_expiry_seconds")
    }
    conn_status = Status.PASS
    if maxclients:
        observed["connections_ratio"] = round(connected / maxclients, 4)
        if connected / maxclients >= params["connections_warn_ratio"]:
            conn_status = Status.WARN
    deepest = max(queues, key=lambda q: q.waiting, default=None)
    oldest = max(queues, key=lambda q: q.oldest_age_s or 0.0, default=None)
    depth_status = grade_above(deepest.waiting if deepest else 0, params["queue_warn"], params["queue_fail"])
    age_status = Status.FAIL if oldest and (oldest.oldest_age_s or 0.0) > expiry else Status.PASS
    status = worst(conn_status, depth_status, age_status)
    summary = _monitored_summary(
        connected, maxclients, deepest, oldest, params, (conn_status, depth_status, age_status)
    )
    return Evidence(status, summary, observed, threshold)


def _monitored_summary(
    connected: int,
    maxclients: int | None,
    deepest: QueueDepth | None,
    oldest: QueueDepth | None,
    params: Mapping[str, Any],
    statuses: tuple[Status, Status, Status],
) -> str:
    _, depth_status, age_status = statuses
    expiry = float(params["runs_expiry_seconds"])
    limits = f"warn above {params['queue_warn']} waiting jobs, fail above {params['queue_fail']}"
    if age_status is Status.FAIL and oldest is not None:
        return (
            f"Redis queue {oldest.label} has a job waiting {human_duration(oldest.oldest_age_s, expiry)}, "
            "longer than the "
            f"{human_duration(expiry)} run expiry (REDIS_RUNS_EXPIRY_SECONDS), so runs are being lost; "
            f"its depth is {oldest.waiting} ({limits})."
        )
    conns = f"{connected} clients" + (
        f" of maxclients {maxclients} "
        f"({pct(connected / maxclients, params['connections_warn_ratio'])}, warn at "
        f"{pct(params['connections_warn_ratio'])})"
        if maxclients
        else " (maxclients not visible: Redis < 6.2 and no CONFIG GET)"
    )
    if deepest is None:
        return f"Redis has {conns} and no saq or asynq queue was found; {limits}."
    age = f", oldest {human_duration(deepest.oldest_age_s)}" if deepest.oldest_age_s is not None else ""
    lead = "is too deep" if depth_status is not Status.PASS else "is the deepest"
    return (
        f"Redis queue {deepest.label} {lead} at {deepest.waiting} waiting jobs{age} ({limits}); "
        f"Redis has {conns}."
    )


def _maxclients(r: Any, clients_info: Mapping[str, Any]) -> int | None:
    """maxclients from INFO (Redis >= 6.2), else CONFIG GET when this user may run it."""
    if "maxclients" in clients_info:
        return int(clients_info["maxclients"])
    try:
        value = r.config_get("maxclients").get("maxclients")
    except ResponseError:  # not granted (see deploy/grants/redis-acl.conf) or disabled by the provider
        return None
    return int(value) if value else None


# --- Item: eviction and memory pressure -------------------------------------------------------


def eviction(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """No keys were evicted, the policy never evicts, and writes are not being refused for memory."""
    r = clients.redis
    mem = r.info("memory")
    evicted = int(r.info("stats").get("evicted_keys", 0))
    oom = _oom_errors(r)
    policy = str(mem.get("maxmemory_policy", "unknown"))
    maxmemory = int(mem.get("maxmemory", 0))
    observed = {
        "evicted_keys": evicted,
        "maxmemory_policy": policy,
        "maxmemory": maxmemory,
        "oom_rejected_commands": oom,
        "mem_fragmentation_ratio": mem.get("mem_fragmentation_ratio"),
    }
    threshold = {"evicted_keys": params["evicted_keys_fail"], "maxmemory_policy": "noeviction"}
    status, summary = _eviction_verdict(evicted, policy, maxmemory, oom, params)
    return Evidence(status, summary, observed, threshold)


def _eviction_verdict(
    evicted: int, policy: str, maxmemory: int, oom: int, params: Mapping[str, Any]
) -> tuple[Status, str]:
    if evicted > params["evicted_keys_fail"]:
        return Status.FAIL, (
            f"Redis evicted {evicted} keys since its last restart or stats reset (maxmemory-policy "
            f"{policy}), so queued runs can have been dropped; set noeviction and size maxmemory for the "
            "write volume."
        )
    if policy.startswith(EVICTING_PREFIXES):
        return Status.WARN, (
            f"Redis maxmemory-policy is {policy}, which silently drops keys (queued runs included) under "
            "memory pressure; set it to noeviction."
        )
    if oom:
        return Status.WARN, (
            f"Redis refused {oom} commands with OOM at maxmemory {human_bytes(maxmemory)} (policy {policy}), "
            "so ingest writes are failing under memory pressure; raise maxmemory or scale the workers."
        )
    if maxmemory == 0:
        return Status.WARN, (
            f"Redis maxmemory is 0 (unbounded) with policy {policy}, so memory pressure ends in an "
            "out-of-memory kill instead of refused writes; set maxmemory below the container limit."
        )
    return Status.PASS, (
        f"Redis has evicted no keys and uses maxmemory-policy {policy} with maxmemory "
        f"{human_bytes(maxmemory)}."
    )


def _oom_errors(r: Any) -> int:
    # INFO errorstats exists from Redis 6.2; an older server simply reports nothing.
    stats = r.info("errorstats")
    entry = stats.get("errorstat_OOM")
    return int(entry.get("count", 0)) if isinstance(entry, Mapping) else 0


PROBES = {
    "redis.memory": memory,
    "redis.external": external,
    "redis.not_shared": not_shared,
    "redis.monitored": monitored,
    "redis.eviction": eviction,
}
