"""Redis sharing item: LangSmith's Redis holds no other application's keys."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import ResponseError

from checks import endpoints
from checks.clients import Clients
from checks.model import Evidence, Status
from checks.probes.redis.queues import scan_sample

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
