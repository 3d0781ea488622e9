"""Redis monitoring item: memory, connections and queue depth read together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import ResponseError

from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.common import grade_above, human_duration, pct, worst
from checks.probes.redis.queues import QueueDepth, queue_depths


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
