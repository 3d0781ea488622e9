"""Redis queue depths: saq and asynq lists, their depth and oldest job; the triage runbooks reuse them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError, ResponseError

SAQ_QUEUES = ("default", "host")  # LangSmith's saq queues (queue and listener workers)
MAX_QUEUES = 50  # queues read per system; more than this is itself worth a look
WAITING_LIST = {"saq": "queued", "asynq": "pending"}  # beside `active`, under each queue's key


def queue_base(system: str, queue: str) -> str:
    """The prefix of a queue's lists: `<base>:active` and its waiting list."""
    return f"saq:{queue}" if system == "saq" else f"asynq:{{{queue}}}"


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

    @property
    def waiting_key(self) -> str:
        return f"{queue_base(self.system, self.queue)}:{WAITING_LIST[self.system]}"

    @property
    def pushed_right(self) -> bool:
        """saq RPUSHes and dequeues from the left; asynq LPUSHes and dequeues from the right."""
        return self.system == "saq"

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
    return [
        _depth(r, "saq", name, lambda base: _saq_oldest_age(r, base, now))
        for name in sorted(names)[:MAX_QUEUES]
    ]


def _depth(r: Any, system: str, name: str, oldest: Callable[[str], float | None]) -> QueueDepth:
    """One queue from its waiting and active lists; `oldest(base)` is read only when jobs wait."""
    base = queue_base(system, name)
    waiting = int(r.llen(f"{base}:{WAITING_LIST[system]}"))
    active = int(r.llen(f"{base}:active"))
    return QueueDepth(system, name, waiting, active, oldest(base) if waiting else None)


def _saq_oldest_age(r: Any, base: str, now: float) -> float | None:
    # saq RPUSHes and dequeues from the left, so the oldest waiting job is at index 0.
    head = r.lrange(f"{base}:queued", 0, 0)
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
    names = sorted(r.smembers("asynq:queues"))[:MAX_QUEUES]
    return [_depth(r, "asynq", name, lambda base: _asynq_oldest_age(r, base, now)) for name in names]


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
