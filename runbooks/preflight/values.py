"""What new Helm values would change, as findings: pure functions over plain dicts.

`helm upgrade -f NEW.yaml` (without `--reuse-values`) renders the chart's defaults under NEW.yaml,
so a key that NEW.yaml leaves out takes the chart's default, not the running value: `effective`
does the same for the keys lsready judges. `diff` compares them with what runs now (read from the
deployed objects, or from a `helm get values` file) and names each destructive or risky change.
Keys that are not the chart's are reported, never guessed at.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checks.probes.common import human_bytes, human_duration, quantity
from checks.probes.network.ingress import nginx_size
from runbooks.preflight.model import Finding, Level

# Top-level keys of charts/langsmith/values.yaml (chart 0.17).
_TOP = (
    "nameOverride fullnameOverride namespace preInstallManifests commonAnnotations commonPodAnnotations "
    "commonLabels commonEnv commonVolumes commonVolumeMounts commonInitContainers commonPodSecurityContext "
    "commonDnsConfig clusterDomain images ingress gateway istioGateway sandboxes fleet engine insights "
    "engineInsightsAgent polly config aceBackend smithdb backend clickhouse frontend hostBackend listener "
    "platformBackend operator playground postgres queue ingestQueue redis fleetToolServer "
    "fleetTriggerServer agentGateway presidioAnalyzer"
)
CHART_KEYS = frozenset(_TOP.split())
# Keys known below the parents lsready judges, so a misspelt one is reported, not ignored.
_CH_EXTERNAL = (
    "enabled hybrid host hostSecretKey port portSecretKey nativePort nativePortSecretKey user userSecretKey "
    "password passwordSecretKey database databaseSecretKey tls tlsSecretKey cluster "
    "existingSecretName clientCert"
)
_PG_EXTERNAL = (
    "enabled host port user password database schema connectionUrl connectionUrlSecretKey existingSecretName "
    "iamAuthProvider customTls clientCert"
)
_REDIS_EXTERNAL = (
    "enabled connectionUrl connectionUrlSecretKey existingSecretName iamAuthProvider clientCert "
    "clusterSafeMode "
    "cluster"
)
_BLOB = (
    "enabled engine chSearchEnabled minBlobStorageSizeKb accessKey accessKeySecret bucketName apiURL "
    "s3UsePathStyle kmsEncryptionEnabled kmsKeyArn azureStorageAccountName azureStorageAccountKey "
    "azureStorageContainerName azureStorageConnectionString azureStorageServiceUrlOverride"
)
KNOWN_CHILDREN = {
    "clickhouse.external": frozenset(_CH_EXTERNAL.split()),
    "postgres.external": frozenset(_PG_EXTERNAL.split()),
    "redis.external": frozenset(_REDIS_EXTERNAL.split()),
    "config.blobStorage": frozenset(_BLOB.split()),
    "config.ttl": frozenset({"enabled", "ttl_period_seconds"}),
    "config.ttl.ttl_period_seconds": frozenset({"longlived", "shortlived"}),
}

# LangSmith's Deployments: object component -> values key (facts §1).
SERVICES = {
    "backend": "backend",
    "platform-backend": "platformBackend",
    "queue": "queue",
    "ingest-queue": "ingestQueue",
    "frontend": "frontend",
    "playground": "playground",
    "ace-backend": "aceBackend",
}
DATASTORES = ("clickhouse", "postgres", "redis")
NAMES = {"clickhouse": "ClickHouse", "postgres": "PostgreSQL", "redis": "Redis"}
TIERS = ("shortlived", "longlived")

# The chart's defaults for the judged keys (charts/langsmith/values.yaml, chart 0.17).
CHART_DEFAULTS: dict[str, Any] = {
    "clickhouse.enabled": True,
    **{f"{s}.external.enabled": False for s in DATASTORES},
    "config.blobStorage.enabled": False,
    "config.ttl.enabled": True,
    "config.ttl.ttl_period_seconds.longlived": 34560000,
    "config.ttl.ttl_period_seconds.shortlived": 1209600,
    "frontend.maxBodySize": "25M",
    **{
        f"{key}.deployment.replicas": {"backend": 2, "platformBackend": 3, "ingestQueue": 3}.get(key, 1)
        for key in SERVICES.values()
    },
    **{f"{key}.autoscaling.{kind}.enabled": False for key in SERVICES.values() for kind in ("hpa", "keda")},
    **{
        f"{key}.deployment.resources.requests.{res}": value
        for key, (cpu, mem) in {
            "backend": ("1000m", "2Gi"),
            "platformBackend": ("1000m", "2Gi"),
            "queue": ("1000m", "2Gi"),
            "ingestQueue": ("1000m", "2Gi"),
            "frontend": ("500m", "1Gi"),
            "playground": ("500m", "1Gi"),
            "aceBackend": ("1000m", "2000Mi"),
        }.items()
        for res, value in (("cpu", cpu), ("memory", mem))
    },
    "clickhouse.statefulSet.resources.requests.cpu": "3500m",
    "clickhouse.statefulSet.resources.requests.memory": "12Gi",
}
JUDGED = tuple(CHART_DEFAULTS)
_MISSING = object()


def lookup(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of nested mappings, or _MISSING."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


@dataclass(frozen=True)
class Settings:
    """The judged keys' values, flat ("frontend.maxBodySize" -> "25M"); `explicit`: set in the file."""

    values: dict[str, Any]
    explicit: frozenset[str] = frozenset()
    source: str = "the new values"

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def known(self, key: str) -> bool:
        return key in self.values and self.values[key] is not None


def effective(values: Mapping[str, Any], source: str = "the new values") -> Settings:
    """What the chart renders from `values`: each judged key from the file, else the chart default."""
    out, explicit = {}, set()
    for key in JUDGED:
        found = lookup(values, key)
        if found is _MISSING or found is None:
            out[key] = CHART_DEFAULTS[key]
        else:
            out[key], _ = found, explicit.add(key)
    return Settings(out, frozenset(explicit), source)


def unknown_keys(values: Mapping[str, Any]) -> list[Finding]:
    """Keys that are not the chart's: Helm ignores them, so whatever they were meant to do will not happen."""
    findings = []
    for key in sorted(str(k) for k in values):
        if key not in CHART_KEYS:
            findings.append(_unknown(key, key, CHART_KEYS))
    for parent, children in KNOWN_CHILDREN.items():
        node = lookup(values, parent)
        if isinstance(node, Mapping):
            for key in sorted(str(k) for k in node):
                if key not in children:
                    findings.append(_unknown(f"{parent}.{key}", key, children))
    return findings


def _unknown(path: str, key: str, choices: frozenset[str]) -> Finding:
    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.75)
    hint = f" (closest chart key: `{close[0]}`)" if close else ""
    return Finding(
        "values.unknown_key",
        Level.WARNING,
        f"`{path}` is not a key of the LangSmith chart{hint}; Helm ignores it, and lsready does not guess "
        "what it was meant to change.",
        "Fix or remove the key, then run the preflight again.",
    )


@dataclass(frozen=True)
class StoreData:
    """A chart-managed datastore as it runs now: its StatefulSet, PVCs and (when read) data size."""

    statefulset: str
    pvcs: tuple[tuple[str, str, str], ...] = ()  # (name, phase, requested size)
    data_bytes: int | None = None  # bytes in its tables, when the store itself answered
    data_what: str = ""  # what data_bytes counts, e.g. "parts of database default"

    @property
    def bound(self) -> list[tuple[str, str, str]]:
        return [p for p in self.pvcs if p[1] == "Bound"]


@dataclass(frozen=True)
class TtlEstimate:
    """Runs in partitions older than a TTL, from system.parts of the runs table."""

    rows: int
    bytes: int
    undated_parts: int = 0  # parts without a date range (partition key not a date): not counted
    table: str = "runs"


@dataclass(frozen=True)
class Limits:
    """Thresholds from the catalog the new values are held against."""

    min_cpus: float
    min_memory_gib: float
    expected_payload_mb: float


@dataclass
class Facts:
    """What only the running system can say: datastores' data, TTL estimates, names."""

    stores: dict[str, StoreData] = field(default_factory=dict)
    ttl: dict[str, TtlEstimate | None] = field(default_factory=dict)
    fullname: str = "langsmith"


def _why_default(new: Settings, key: str) -> str:
    return "" if key in new.explicit else f" (not set in {new.source}, so the chart default applies)"


def _switched_external(current: Settings, new: Settings, store: str) -> bool:
    key = f"{store}.external.enabled"
    if not current.known(key) or current.get(key):
        return False
    off = store == "clickhouse" and current.get("clickhouse.enabled") and not new.get("clickhouse.enabled")
    return bool(new.get(key)) or bool(off)


def datastore_findings(current: Settings, new: Settings, facts: Facts) -> list[Finding]:
    findings = []
    for store in DATASTORES:
        key = f"{store}.external.enabled"
        data = facts.stores.get(store)
        if _switched_external(current, new, store):
            changed = key if new.get(key) else "clickhouse.enabled"
            to = "true" if new.get(key) else "false"
            if data is not None:
                findings.append(_external_finding(store, changed, to, data, new))
            else:  # compared with a values file, the cluster not read: the volumes are not known
                findings.append(
                    Finding(
                        f"values.{store}_external",
                        Level.WARNING,
                        f"`{changed}` becomes {to}{_why_default(new, changed)}: the chart deletes the "
                        f"chart-managed {NAMES[store]} workload on upgrade; its volumes could not be read, "
                        "so whether they hold data is not known.",
                        f"Check `kubectl get pvc data-{facts.fullname}-{store}-0`; if it holds data, copy it "
                        f"into the external {NAMES[store]} before upgrading.",
                    )
                )
        elif current.known(key) and current.get(key) and not new.get(key):
            findings.append(
                Finding(
                    f"values.{store}_bundled",
                    Level.WARNING,
                    f"`{key}` becomes false{_why_default(new, key)}: the chart creates a new, empty bundled "
                    f"{NAMES[store]} StatefulSet and LangSmith stops using the external one and its data.",
                    f"Keep `{key}: true` and its connection settings in the new values.",
                )
            )
    return findings


def _external_finding(store: str, key: str, to: str, data: StoreData, new: Settings) -> Finding:
    where = f"StatefulSet {data.statefulset}"
    if data.bound:
        vols = ", ".join(f"{n} ({phase}, {size})" for n, phase, size in data.bound)
        size = f", {human_bytes(data.data_bytes)} in {data.data_what}" if data.data_bytes else ""
        held = f"{where} holds {vols}{size}"
    else:
        held = f"{where} has no bound PVC"
    text = (
        f"`{key}` becomes {to}{_why_default(new, key)} while {held}: the chart deletes the chart-managed "
        f"workload on upgrade, and LangSmith starts on the external {NAMES[store]} without that data."
    )
    if store == "redis":
        # Redis holds only the write path's buffer: what is lost is what has not reached ClickHouse yet.
        return Finding(
            "values.redis_external",
            Level.WARNING,
            text + " Runs still queued in the bundled Redis are lost.",
            "Let the queues drain (`lsready triage --runbook queue-depth`) just before the upgrade.",
        )
    level = Level.BLOCKING if data.bound else Level.WARNING
    move = (
        "`BACKUP DATABASE default TO S3(...)` then `RESTORE` on the external cluster"
        if store == "clickhouse"
        else "`pg_dump` / `pg_restore` into the external server"
    )
    return Finding(
        f"values.{store}_external",
        level,
        text,
        f"Copy the data into the external {NAMES[store]} first ({move}) and verify it there; keep the "
        f"PVCs until then (the chart may delete or orphan them). Or leave `{key}` as it is for this upgrade.",
    )


def blob_findings(current: Settings, new: Settings) -> list[Finding]:
    key = "config.blobStorage.enabled"
    if not (current.known(key) and current.get(key)) or _truthy(new.get(key)):
        return []
    return [
        Finding(
            "values.blob_off",
            Level.WARNING,
            f"`{key}` becomes false{_why_default(new, key)}: new run inputs, outputs and errors go back into "
            "ClickHouse (its disk grows with them), and payloads already in the bucket are no longer where "
            "LangSmith looks for new ones.",
            f"Keep `{key}: true` with its bucket settings in the new values, unless moving payloads back "
            "into ClickHouse is the plan and its disk has room for them.",
        )
    ]


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes") if isinstance(value, str) else bool(value)


def _seconds(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def ttl_changes(current: Settings, new: Settings) -> dict[str, tuple[float | None, float]]:
    """Tiers whose TTL gets shorter: tier -> (current seconds or None when TTLs were off, new seconds)."""
    out: dict[str, tuple[float | None, float]] = {}
    was_on = current.known("config.ttl.enabled") and _truthy(current.get("config.ttl.enabled"))
    if not _truthy(new.get("config.ttl.enabled")):
        return out
    for tier in TIERS:
        key = f"config.ttl.ttl_period_seconds.{tier}"
        after = _seconds(new.get(key))
        before = _seconds(current.get(key)) if current.known(key) else None
        if after is None:
            continue
        if was_on and before is not None and after < before:
            out[tier] = (before, after)
        elif current.known("config.ttl.enabled") and not was_on:
            out[tier] = (None, after)
    return out


def ttl_findings(current: Settings, new: Settings, facts: Facts) -> list[Finding]:
    findings = []
    for tier, (before, after) in ttl_changes(current, new).items():
        key = f"config.ttl.ttl_period_seconds.{tier}"
        if before is None:
            change = f"`config.ttl.enabled` turns TTLs on, with `{key}` {human_duration(after)}"
        else:
            change = f"`{key}` drops from {human_duration(before)} to {human_duration(after)}" + _why_default(
                new, key
            )
        estimate = facts.ttl.get(tier)
        if estimate is None:
            amount = "how much data that deletes could not be estimated (ClickHouse was not read)"
        else:
            undated = (
                f"; {estimate.undated_parts} parts without a date range were not counted"
                if estimate.undated_parts
                else ""
            )
            amount = (
                f"about {estimate.rows:,} rows ({human_bytes(estimate.bytes)}) of {estimate.table} sit in "
                f"partitions older than {human_duration(after)} and become eligible for deletion{undated}"
                if estimate.rows
                else f"no partition of {estimate.table} is older than {human_duration(after)} yet{undated}"
            )
        findings.append(
            Finding(
                f"values.ttl_{tier}",
                Level.WARNING,
                f"{change}: {amount} (only {tier} traces are deleted; the estimate counts every run in "
                "those partitions).",
                "Export or back up traces you must keep, and shorten the bucket lifecycle rule for "
                f"ttl_{tier[0]}/ to match; or keep `{key}` as it is.",
            )
        )
    return findings


def body_size_findings(current: Settings, new: Settings, limits: Limits) -> list[Finding]:
    key = "frontend.maxBodySize"
    before = nginx_size(str(current.get(key))) if current.known(key) else None
    after = nginx_size(str(new.get(key)))
    if before is None or after is None or _unlimited(after) >= _unlimited(before):
        return []
    want = int(limits.expected_payload_mb * 1024 * 1024)
    below = (
        f", below the {limits.expected_payload_mb:g} MB payloads the checklist expects"
        if 0 < after < want
        else ""
    )
    return [
        Finding(
            "values.max_body_size",
            Level.WARNING,
            f"`{key}` drops from {current.get(key)} to {new.get(key)}{_why_default(new, key)}{below}: larger "
            "trace uploads will fail with HTTP 413.",
            f'Keep `{key}: "{current.get(key)}"` (and the matching ingress proxy-body-size).',
        )
    ]


def _unlimited(n: int) -> float:
    return float("inf") if n == 0 else n  # nginx: 0 turns the limit off


def _autoscaled(s: Settings, key: str) -> bool:
    return any(_truthy(s.get(f"{key}.autoscaling.{kind}.enabled")) for kind in ("hpa", "keda"))


def scaling_findings(current: Settings, new: Settings, limits: Limits) -> list[Finding]:
    findings = []
    unscaled = []
    for component, key in SERVICES.items():
        on_now = any(current.known(f"{key}.autoscaling.{k}.enabled") for k in ("hpa", "keda"))
        if on_now and _autoscaled(current, key) and not _autoscaled(new, key):
            unscaled.append(f"{component} (fixed at {new.get(f'{key}.deployment.replicas')})")
        rkey = f"{key}.deployment.replicas"
        before, after = _int(current.get(rkey)), _int(new.get(rkey))
        if before is not None and after is not None and after < before and not _autoscaled(new, key):
            findings.append(
                Finding(
                    f"values.replicas_{key}",
                    Level.WARNING,
                    f"`{rkey}` drops from {before} to {after}{_why_default(new, rkey)}: {component} loses "
                    f"{before - after} of its replicas.",
                    f"Keep `{rkey}: {before}` unless the lower capacity is intended.",
                )
            )
        findings += _resource_findings(current, new, f"{key}.deployment.resources.requests", component)
    if unscaled:
        findings.insert(
            0,
            Finding(
                "values.autoscaling_removed",
                Level.WARNING,
                f"Autoscaling is removed from {', '.join(unscaled)}: neither `<svc>.autoscaling.hpa.enabled` "
                f"nor `.keda.enabled` is true in {new.source}, so their replicas stop following load.",
                "Keep `<svc>.autoscaling.hpa.enabled: true` (or keda) with its bounds for each of them.",
            ),
        )
    findings += _resource_findings(
        current, new, "clickhouse.statefulSet.resources.requests", "ClickHouse", limits
    )
    return findings


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _resource_findings(
    current: Settings, new: Settings, prefix: str, what: str, limits: Limits | None = None
) -> list[Finding]:
    findings = []
    for res in ("cpu", "memory"):
        key = f"{prefix}.{res}"
        before = quantity(current.get(key)) if current.known(key) else None
        after = quantity(new.get(key))
        if before is None or after is None or after >= before:
            continue
        below = ""
        if limits is not None:
            floor = limits.min_cpus if res == "cpu" else limits.min_memory_gib * 1024**3
            shown = f"{limits.min_cpus:g} CPU" if res == "cpu" else f"{limits.min_memory_gib:g} GiB"
            if after < floor:
                below = f", below the checklist's {shown} per ClickHouse node"
        findings.append(
            Finding(
                f"values.resources_{prefix.split('.')[0]}_{res}",
                Level.WARNING,
                f"`{key}` drops from {current.get(key)} to {new.get(key)}{_why_default(new, key)}{below}: "
                f"{what} gets less {res} than it runs with now.",
                f"Keep `{key}: {current.get(key)}` unless the lower request is intended.",
            )
        )
    return findings


def diff(current: Settings, new: Settings, facts: Facts, limits: Limits) -> list[Finding]:
    """Every destructive or risky change from `current` to `new`, blocking ones first."""
    findings = [
        *datastore_findings(current, new, facts),
        *blob_findings(current, new),
        *ttl_findings(current, new, facts),
        *body_size_findings(current, new, limits),
        *scaling_findings(current, new, limits),
    ]
    order = {Level.BLOCKING: 0, Level.WARNING: 1, Level.NOTE: 2}
    return sorted(findings, key=lambda f: order[f.level])


def not_compared(current: Settings) -> list[str]:
    """Judged keys whose running value could not be read, so changes to them are not judged."""
    return [k for k in JUDGED if not current.known(k)]
