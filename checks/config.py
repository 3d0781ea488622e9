"""Configuration: one YAML file, several named targets, every value overridable from the environment.

Precedence: `--config PATH`, else `$LSREADY_CONFIG`, else `./lsready.yaml`. Any key can be set or
overridden with an environment variable named `LSREADY_` + the key path joined by `__`, e.g.
`LSREADY_TARGETS__PROD__REDIS__URL` or `LSREADY_TIMEOUTS__PROBE_S`. Values are read as YAML
scalars, so `true` and `5` keep their types.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from checks import endpoints
from checks.errors import ConfigError, UnknownTarget
from checks.secrets import Redactor, url_password

ENV_PREFIX = "LSREADY_"
# Variables with the prefix that are not config keys.
ENV_RESERVED = {"LSREADY_CONFIG", "LSREADY_DATA_DIR", "LSREADY_ALERTMANAGER_TOKEN"}
ENV_RESERVED_PREFIXES = ("LSREADY_TEST_",)
DEFAULT_PATH = "lsready.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if scheme not in schemes:
        expected = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{what} URL must start with {expected} (got '{scheme or 'no scheme'}')")
    return url


class RedisConfig(_Strict):
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("redis", "rediss", "unix"), "Redis")


class PostgresConfig(_Strict):
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("postgresql", "postgres"), "PostgreSQL")


class ClickHouseConfig(_Strict):
    url: str
    cluster: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https", "chdb"), "ClickHouse")

    @property
    def database(self) -> str:
        return endpoints.clickhouse(self.url).database


class KubernetesConfig(_Strict):
    namespace: str = "langsmith"
    release: str | None = None  # discovered from the chart's labels when absent
    context: str | None = None
    kubeconfig: str | None = None
    in_cluster: bool = False
    snapshot_dir: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesConfig:
        sources = [bool(self.context or self.kubeconfig), self.in_cluster, bool(self.snapshot_dir)]
        if sum(sources) > 1:
            raise ValueError("choose one of context/kubeconfig, in_cluster or snapshot_dir")
        return self


class BlobConfig(_Strict):
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    throughput_probe: bool = False  # writes small objects under its own prefix, then deletes them


class LangSmithConfig(_Strict):
    base_url: str
    api_key: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"), "LangSmith")


class QueueEndpointsConfig(_Strict):
    """LangSmith's published queue depths; by default derived from kubernetes.release and namespace."""

    enabled: bool = True
    backend_url: str | None = None  # e.g. http://langsmith-backend.langsmith:1984
    platform_backend_url: str | None = None  # e.g. http://langsmith-platform-backend.langsmith:1986

    @field_validator("backend_url", "platform_backend_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v, ("http", "https"), "queue endpoint")


class PreflightConfig(_Strict):
    values: str | None = None  # the values file the next `helm upgrade -f` will use
    current_values: str | None = None  # `helm get values` output; unset: read the deployed objects


class TargetConfig(_Strict):
    redis: RedisConfig | None = None
    postgres: PostgresConfig | None = None
    clickhouse: ClickHouseConfig | None = None
    kubernetes: KubernetesConfig | None = None
    blob: BlobConfig | None = None
    langsmith: LangSmithConfig | None = None
    queue_endpoints: QueueEndpointsConfig | None = None
    preflight: PreflightConfig | None = None


class Timeouts(_Strict):
    probe_s: float = Field(5.0, gt=0, le=300)
    run_s: float = Field(30.0, gt=0, le=3600)


class StorageConfig(_Strict):
    path: str | None = None  # default: $LSREADY_DATA_DIR/lsready.db, else ./lsready.db


class AckPolicy(_Strict):
    default_days: int = Field(90, gt=0, le=3650)
    items: dict[str, int] = Field(default_factory=dict)  # per-item validity in days
    remind_days_before: int = Field(7, ge=0, le=365)


class DigestConfig(_Strict):
    channel: str | None = None  # Slack channel id; no channel, no scheduled digest
    cron: str = "0 9 * * mon"  # minute hour day month day-of-week
    timezone: str = "UTC"
    targets: list[str] | None = None  # default: every target
    expiring_within_days: int = Field(14, ge=0, le=365)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{v}' (use an IANA name like Europe/Berlin)") from None
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month day-of-week")
        return v


class AccessRule(_Strict):
    """Who may do an action in Slack; a user matching any list is allowed."""

    users: list[str] = Field(default_factory=list)  # Slack user ids (U...)
    usergroups: list[str] = Field(default_factory=list)  # Slack user group ids (S...)
    channels: list[str] = Field(default_factory=list)  # channel ids (C...) where anyone may do it


SlackAction = Literal["triage", "check", "status", "ack", "digest", "bundle", "silence"]


class SlackConfig(_Strict):
    # An action without a rule is open to everyone in the workspace.
    access: dict[SlackAction, AccessRule] = Field(default_factory=dict)


class AlertRoute(_Strict):
    """Alerts whose labels (alertname too) equal every `match` pair go to this runbook, target, channel."""

    match: dict[str, str] = Field(default_factory=dict)
    runbook: str | None = None
    target: str | None = None
    channel: str | None = None


class AlertsConfig(_Strict):
    routes: list[AlertRoute] = Field(default_factory=list)  # first match wins
    channel: str | None = None  # Slack channel id for alerts no route sends elsewhere
    retriage_after: str = "15m"  # a repeat notification triages again once the last triage is this old
    alertmanager_url: str | None = None  # set: Silence buttons create silences through its v2 API

    @field_validator("retriage_after", mode="before")
    @classmethod
    def _duration(cls, v: object) -> str:
        if not re.fullmatch(r"\d+[smh]", str(v).strip()):
            raise ValueError(f"'{v}' is not a duration; use seconds, minutes or hours like 90s, 15m, 1h")
        return str(v).strip()

    @field_validator("alertmanager_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v, ("http", "https"), "Alertmanager")

    @property
    def retriage_after_s(self) -> int:
        return int(self.retriage_after[:-1]) * {"s": 1, "m": 60, "h": 3600}[self.retriage_after[-1]]


class ExporterConfig(_Strict):
    interval: float = Field(60.0, ge=1, le=3600)  # seconds between refreshes of each target


class Config(_Strict):
    default_target: str | None = None
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    severity: dict[str, Literal["critical", "high", "medium", "low"]] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    acks: AckPolicy = Field(default_factory=AckPolicy)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _default_exists(self) -> Config:
        if self.default_target and self.default_target not in self.targets:
            raise ValueError(f"default_target '{self.default_target}' is not one of targets")
        for n, route in enumerate(self.alerts.routes):
            if route.target is not None and route.target not in self.targets:
                raise ValueError(f"alerts.routes[{n}].target '{route.target}' is not one of targets")
        return self

    def target(self, name: str | None) -> tuple[str, TargetConfig]:
        """The named target, or the default one; a single target is the default."""
        chosen = name or self.default_target
        if chosen is None and len(self.targets) == 1:
            chosen = next(iter(self.targets))
        if chosen is None:
            raise UnknownTarget(None, sorted(self.targets))
        if chosen not in self.targets:
            raise UnknownTarget(chosen, sorted(self.targets))
        return chosen, self.targets[chosen]

    def redactor(self) -> Redactor:
        """A redactor that knows every secret in this configuration."""
        redactor = Redactor()
        for target in self.targets.values():
            for section in (target.redis, target.postgres, target.clickhouse, target.langsmith):
                if section is not None:
                    redactor.add(url_password(getattr(section, "url", None) or section.base_url))
            if target.langsmith is not None:
                redactor.add(target.langsmith.api_key)
            if target.queue_endpoints is not None:
                redactor.add(url_password(target.queue_endpoints.backend_url))
                redactor.add(url_password(target.queue_endpoints.platform_backend_url))
            if target.blob is not None:
                redactor.add(target.blob.secret_access_key)
                redactor.add(url_password(target.blob.endpoint_url))
        redactor.add(url_password(self.alerts.alertmanager_url))
        return redactor


def config_path(explicit: str | None, env: Mapping[str, str]) -> Path:
    if explicit:
        return Path(explicit)
    if env.get("LSREADY_CONFIG"):
        return Path(env["LSREADY_CONFIG"])
    return Path(DEFAULT_PATH)


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, merge environment overrides, validate. Raises ConfigError naming each bad key."""
    env = os.environ if env is None else env
    path = config_path(explicit, env)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError([f"not valid YAML{where}"], str(path)) from None
        except OSError as exc:
            raise ConfigError([f"cannot be read ({exc.strerror})"], str(path)) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(["the top level must be a mapping"], str(path))
        raw = loaded or {}
    elif explicit or env.get("LSREADY_CONFIG"):
        raise ConfigError(["file not found"], str(path))
    _apply_env(raw, env)
    return validate(raw, str(path))


def validate(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "missing"
            problems.append(f"{key}: {msg}")
        raise ConfigError(problems, source) from None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        if name.startswith(ENV_RESERVED_PREFIXES):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = raw
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        try:
            node[path[-1]] = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            node[path[-1]] = value
