"""Blob storage probes: LangSmith's own setting, the bucket's reachability, lifecycle and throughput.

`blob.enabled` reads LangSmith's environment in the cluster (the chart renders
`config.blobStorage.*` into env on backend, platform-backend and queue); the others talk to the
bucket configured for lsready in `blob`, with lsready's credentials.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from checks.clients import Clients
from checks.cluster import ClusterError
from checks.errors import LsreadyError
from checks.model import Evidence, Status
from checks.objectstore import PROBE_PREFIX, ObjectStore
from checks.probes.k8s.objects import deployments, env_on, workload_env

BLOB_COMPONENTS = ("backend", "platform-backend", "queue")
BLOB_VARS = ("FF_BLOB_STORAGE_ENABLED", "BLOB_STORAGE_ENGINE", "S3_BUCKET_NAME", "S3_API_URL")
TTL_MAP_VAR = "TRACE_TIER_TTL_DURATION_SEC_MAP"
TIERS = (("shortlived", "ttl_s/"), ("longlived", "ttl_l/"))
THROUGHPUT_OBJECTS = 24
THROUGHPUT_OBJECT_BYTES = 128 * 1024
THROUGHPUT_WORKERS = 8
THROTTLED = {"SlowDown", "503", "429", "TooManyRequests", "RequestLimitExceeded"}
MIB = 1024 * 1024


class BlobUnreachable(LsreadyError):
    """The bucket's endpoint did not answer: the probe cannot tell anything about the bucket."""


class Throttled(LsreadyError):
    """The bucket pushed back (503 SlowDown, 429) on the throughput probe's few requests."""


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _call(store: ObjectStore, what: str, fn: Callable[[], Any]) -> Any:
    """Run one S3 call; an endpoint that does not answer becomes BlobUnreachable."""
    from botocore.exceptions import ConnectionError, HTTPClientError, NoCredentialsError

    try:
        return fn()
    except (ConnectionError, HTTPClientError) as exc:
        raise BlobUnreachable(
            f"{what} on bucket {store.bucket} at {store.endpoint_url} got no answer "
            f"({exc.__class__.__name__})"
        ) from None
    except NoCredentialsError:
        raise LsreadyError(
            "lsready has no credentials for the bucket; set blob.access_key_id and blob.secret_access_key "
            "or run it with an IAM role"
        ) from None


# -- LangSmith's setting ----------------------------------------------------------------------------


def enabled(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """backend, platform-backend and queue run with FF_BLOB_STORAGE_ENABLED=true and a bucket."""
    if not clients.has("kubernetes") and clients.has("blob"):
        bucket = clients.target.blob.bucket  # type: ignore[union-attr]
        return Evidence(
            Status.MANUAL,
            f"Only lsready's own config names bucket {bucket}, which is weak evidence: configure kubernetes "
            "to read LangSmith's FF_BLOB_STORAGE_ENABLED, or attest config.blobStorage.enabled.",
            {"lsready_bucket": bucket, "source": "lsready config"},
        )
    cluster = clients.cluster
    deps = deployments(cluster, BLOB_COMPONENTS)
    if not deps:
        names = ", ".join(cluster.name(c) for c in BLOB_COMPONENTS)
        raise ClusterError(f"none of the Deployments {names} is in namespace {cluster.namespace}")
    settings = {}
    for name, obj in deps.items():
        env = workload_env(cluster, obj)
        settings[name] = {var: env[var] for var in BLOB_VARS if var in env}
    on = [n for n, s in settings.items() if str(s.get("FF_BLOB_STORAGE_ENABLED")).lower() == "true"]
    off = [n for n in settings if n not in on]
    observed: dict[str, Any] = {"deployments": settings}
    if off and not on:
        return Evidence(
            Status.FAIL,
            f'Blob storage is off on {", ".join(off)} (FF_BLOB_STORAGE_ENABLED is not "true"; the chart '
            "default is config.blobStorage.enabled: false); required: on.",
            observed,
        )
    if off:
        return Evidence(
            Status.FAIL,
            f"Blob storage is on for {', '.join(on)} but off on {', '.join(off)} (FF_BLOB_STORAGE_ENABLED is "
            'not "true" there); required: on for all of them.',
            observed,
        )
    first = settings[on[0]]
    engine = first.get("BLOB_STORAGE_ENGINE") or "S3"
    bucket = first.get("S3_BUCKET_NAME")
    if engine.lower() in ("s3", "gcs") and not bucket:
        return Evidence(
            Status.FAIL,
            f"Blob storage is on with engine {engine} but S3_BUCKET_NAME is empty on {on[0]}.",
            observed,
        )
    where = f"bucket {bucket} at {first.get('S3_API_URL') or 'the default endpoint'}" if bucket else engine
    lsready_bucket = clients.target.blob.bucket if clients.has("blob") else None  # type: ignore[union-attr]
    if bucket and lsready_bucket and lsready_bucket != bucket:
        observed["lsready_bucket"] = lsready_bucket
        return Evidence(
            Status.WARN,
            f"Blob storage is on ({where}), but lsready's blob.bucket is {lsready_bucket}; point it at "
            f"{bucket} so the other blob checks test the bucket LangSmith uses.",
            observed,
        )
    return Evidence(
        Status.PASS, f"Blob storage is on for {', '.join(on)} (engine {engine}, {where}).", observed
    )


# -- the bucket ------------------------------------------------------------------------------------


def connectivity(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """HEAD on the bucket answers 200 with lsready's credentials."""
    from botocore.exceptions import ClientError

    store: ObjectStore = clients.blob
    observed = {"bucket": store.bucket, "endpoint": store.endpoint_url}
    started = time.perf_counter()
    try:
        _call(store, "HEAD", store.head_bucket)
    except ClientError as exc:
        code = _error_code(exc)
        observed["error"] = code
        reasons = {
            "403": "403 Forbidden: the credentials are wrong or lack s3:ListBucket on it",
            "404": "404 Not Found: no bucket of that name exists",
            "301": "301: the bucket is in another region; set blob.region",
        }
        reason = reasons.get(code, f"error {code}")
        return Evidence(
            Status.FAIL,
            f"Bucket {store.bucket} at {store.endpoint_url} answered {reason}; required: 200.",
            observed,
        )
    observed["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return Evidence(
        Status.PASS,
        f"Bucket {store.bucket} at {store.endpoint_url} answered HEAD with 200 in "
        f"{observed['latency_ms']} ms from where lsready runs.",
        observed,
    )


def _expected_days(clients: Clients, params: Mapping[str, Any]) -> tuple[dict[str, float], str]:
    """Trace TTLs in days: LangSmith's TRACE_TIER_TTL_DURATION_SEC_MAP when readable, else the thresholds."""
    defaults = {"shortlived": float(params["shortlived_days"]), "longlived": float(params["longlived_days"])}
    if not clients.has("kubernetes"):
        return defaults, "thresholds"
    try:
        cluster = clients.cluster
        found = env_on(cluster, deployments(cluster, BLOB_COMPONENTS), TTL_MAP_VAR)
    except LsreadyError as exc:
        # The bucket can still be checked against the documented defaults.
        return defaults, f"thresholds (cluster unreadable: {exc})"
    for name, raw in found.items():
        try:
            ttl = json.loads(raw or "")
            days = {tier: float(ttl[tier]) / 86400 for tier, _ in TIERS}
        except (ValueError, KeyError, TypeError):
            continue
        return days, f"{TTL_MAP_VAR} on {name}"
    return defaults, "thresholds"


def _rule_prefix(rule: Mapping[str, Any]) -> str | None:
    """The prefix a rule covers for every object under it; None when tags narrow it."""
    flt = rule.get("Filter")
    if flt is None:
        return rule.get("Prefix", "")
    if "Tag" in flt or (flt.get("And") or {}).get("Tags"):
        return None
    if "And" in flt:
        return flt["And"].get("Prefix", "")
    return flt.get("Prefix", "")


def _expiry(rules: list[dict[str, Any]], prefix: str) -> tuple[float | None, list[str]]:
    """Days after which objects under the prefix expire (earliest applicable rule), and the rule ids."""
    applicable = []
    for rule in rules:
        covered = _rule_prefix(rule)
        days = (rule.get("Expiration") or {}).get("Days")
        if rule.get("Status") == "Enabled" and covered is not None and days and prefix.startswith(covered):
            applicable.append((float(days), str(rule.get("ID", "?"))))
    if not applicable:
        return None, []
    return min(d for d, _ in applicable), [i for _, i in applicable]


def lifecycle(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Lifecycle rules expire ttl_s/ and ttl_l/ after the shortlived and longlived trace TTLs."""
    from botocore.exceptions import ClientError

    expected, source = _expected_days(clients, params)
    store: ObjectStore = clients.blob
    try:
        rules = _call(store, "GetBucketLifecycleConfiguration", store.lifecycle_rules)
    except ClientError as exc:
        raise LsreadyError(
            f"cannot read the lifecycle of bucket {store.bucket} ({_error_code(exc)}); lsready needs "
            "s3:GetLifecycleConfiguration"
        ) from None
    threshold = {f"{tier}_days": expected[tier] for tier, _ in TIERS}
    observed: dict[str, Any] = {"bucket": store.bucket, "rules": len(rules), "expected_from": source}
    missing, mismatched, shown = [], [], []
    for tier, prefix in TIERS:
        days, ids = _expiry(rules, prefix)
        observed[prefix] = {"expiration_days": days, "rules": ids}
        if days is None:
            missing.append(prefix)
            shown.append(f"{prefix} never")
            continue
        shown.append(f"{prefix} after {days:g} d")
        if days != expected[tier]:
            mismatched.append(f"{prefix} {days:g} d vs {expected[tier]:g} d")
    want = f"{expected['shortlived']:g} d / {expected['longlived']:g} d from {source}"
    if missing:
        return Evidence(
            Status.FAIL,
            f"Bucket {store.bucket} has no expiration rule for {', '.join(missing)} ({', '.join(shown)}); "
            f"required: {want}.",
            observed,
            threshold,
        )
    if mismatched:
        return Evidence(
            Status.WARN,
            f"Bucket {store.bucket} lifecycle differs from the trace TTLs ({', '.join(mismatched)}); "
            f"required: {want}.",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"Bucket {store.bucket} expires {' and '.join(shown)}, matching the trace TTLs ({want}).",
        observed,
        threshold,
    )


# -- throughput (opt-in) ---------------------------------------------------------------------------


def throughput(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Opt-in: write, read back and delete small objects under lsready's own prefix; report rates."""
    store: ObjectStore = clients.blob
    if not store.throughput_probe:
        return Evidence(
            Status.MANUAL,
            f"Throughput of bucket {store.bucket} was not measured: enable blob.throughput_probe to measure, "
            "or attest the request limits (S3: 3,500 writes / 5,500 reads per second per prefix).",
            {"throughput_probe": False},
        )
    prefix = store.new_probe_prefix()
    keys = [f"{prefix}{i:03d}" for i in range(THROUGHPUT_OBJECTS)]
    body = os.urandom(THROUGHPUT_OBJECT_BYTES)
    throttled: Throttled | None = None
    try:
        write_s = _timed(store, "PutObject", lambda k: store.put(k, body), keys)
        read_s = _timed(store, "GetObject", lambda k: _same(store.get(k), body, k), keys)
    except Throttled as exc:
        throttled = exc
    finally:
        leftovers = _delete_all(store, keys)
    if throttled is not None:
        return Evidence(
            Status.WARN,
            f"Bucket {store.bucket} {throttled} with only {THROUGHPUT_OBJECTS} objects; check its request "
            "limits and spread keys over prefixes.",
            {"bucket": store.bucket, "prefix": prefix, "left_behind": leftovers},
        )
    mib = THROUGHPUT_OBJECTS * THROUGHPUT_OBJECT_BYTES / MIB
    observed = {
        "bucket": store.bucket,
        "prefix": prefix,
        "objects": THROUGHPUT_OBJECTS,
        "object_kib": THROUGHPUT_OBJECT_BYTES // 1024,
        "writes_per_s": round(THROUGHPUT_OBJECTS / write_s, 1),
        "reads_per_s": round(THROUGHPUT_OBJECTS / read_s, 1),
        "write_mib_per_s": round(mib / write_s, 2),
        "read_mib_per_s": round(mib / read_s, 2),
        "left_behind": leftovers,
    }
    rates = (
        f"{observed['writes_per_s']} writes/s ({observed['write_mib_per_s']} MiB/s) and "
        f"{observed['reads_per_s']} reads/s ({observed['read_mib_per_s']} MiB/s)"
    )
    if leftovers:
        return Evidence(
            Status.WARN,
            f"Bucket {store.bucket} took {rates}, but {len(leftovers)} probe objects under {prefix} "
            "could not be deleted; remove them by hand.",
            observed,
        )
    return Evidence(
        Status.PASS,
        f"Bucket {store.bucket} took {rates} with {THROUGHPUT_WORKERS} parallel clients from where lsready "
        f"runs, with no throttling; compare with peak ingest.",
        observed,
    )


def _timed(store: ObjectStore, what: str, op: Callable[[str], Any], keys: list[str]) -> float:
    """Seconds to run op on every key in parallel; throttling or refusal ends the probe with the reason."""
    from botocore.exceptions import ClientError

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(THROUGHPUT_WORKERS) as pool:
            list(pool.map(lambda k: _call(store, what, lambda: op(k)), keys))
    except ClientError as exc:
        code = _error_code(exc)
        if code in THROTTLED:
            raise Throttled(f"throttled lsready's {what} ({code})") from None
        raise LsreadyError(
            f"lsready's credentials cannot {what} under {PROBE_PREFIX} in bucket {store.bucket} ({code})"
        ) from None
    return max(time.perf_counter() - started, 1e-6)


def _same(got: bytes, sent: bytes, key: str) -> None:
    if got != sent:
        raise LsreadyError(f"object {key} read back differs from what was written")


def _delete_all(store: ObjectStore, keys: list[str]) -> list[str]:
    """Delete every probe object; return the keys still there afterwards."""
    from botocore.exceptions import BotoCoreError, ClientError

    failed = []
    for key in keys:
        try:
            store.delete(key)
        except (ClientError, BotoCoreError):
            failed.append(key)
    return failed


PROBES = {
    "blob.enabled": enabled,
    "blob.connectivity": connectivity,
    "blob.lifecycle": lifecycle,
    "blob.throughput": throughput,
}
