"""Configuration: one YAML file, several named targets, every value overridable from the environment.

Precedence: `--config PATH`, else `$LSREADY_CONFIG`, else `./lsready.yaml`. Any key can be set or
overridden with an environment variable named `LSREADY_` + the key path joined by `__`, e.g.
`LSREADY_TARGETS__PROD__REDIS__URL` or `LSREADY_TIMEOUTS__PROBE_S`. Values are read as YAML
scalars, so `true` and `5` keep their types.
"""

from __future__ import annotations

import difflib
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
    """Read, merge environment overrides, validate. Raises ConfigError naming each bad key.

    A problem with a value set from the environment names the variable, not the file; with no
    file at all nothing is blamed on one.
    """
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
    origins = _apply_env(raw, env)
    return validate(raw, str(path) if path.exists() else None, origins)


def validate(
    raw: dict[str, Any], source: str | None = "config", origins: Mapping[tuple[str, ...], str] | None = None
) -> Config:
    """The one validation of a configuration: its shape, then thresholds, severities and ack ids
    against the catalog. `origins` maps key paths set from the environment to their variable."""
    origins = origins or {}
    problems: list[tuple[tuple[str, ...], str]] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + _suggest(loc)
            elif err["type"] == "missing":
                msg = "missing"
            problems.append((loc, msg))
    problems.extend(_catalog_problems(raw))
    if problems:
        lines = [f"{'.'.join(loc) or '(top level)'}: {msg}" for loc, msg in problems]
        raise ConfigError(lines, source, [_origin(loc, origins) or source for loc, _ in problems])
    assert config is not None
    return config


def _catalog_problems(raw: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Thresholds against the catalog's schema; severity and acks.items ids against its items.

    Read from the raw mapping, so they are reported beside any other problem of the file.
    """
    from checks.thresholds import catalog_schema, check_overrides

    def mapping(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, dict) else {}

    schema = catalog_schema()
    thresholds = {k: v for k, v in mapping(raw.get("thresholds")).items() if isinstance(v, dict)}
    out = [(("thresholds", *path), msg) for path, msg in check_overrides(thresholds, schema.thresholds)]
    for item_id in mapping(raw.get("severity")):
        if item_id not in schema.items:
            out.append((("severity", item_id), "no such item" + _close(item_id, schema.items)))
    for item_id in mapping(mapping(raw.get("acks")).get("items")):
        if item_id not in schema.items:
            out.append((("acks", "items", item_id), "no such item" + _close(item_id, schema.items)))
        elif item_id not in schema.attestable:
            out.append(
                (("acks", "items", item_id), "its status comes from evidence: it is never acknowledged")
            )
    return out


def _close(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _suggest(loc: tuple[str, ...]) -> str:
    """'; did you mean ...?' for a misspelt key, from the fields of the model it sits in."""
    model: Any = Config
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = _model_of(field.annotation)
        if model is None:
            return ""
    return _close(loc[-1], getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _origin(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str]) -> str | None:
    """The variable that set `loc`, one of its parents, or (for a missing key) its section."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    below = sorted(var for path, var in origins.items() if path[: len(loc) - 1] == loc[:-1] and loc[:-1])
    return below[0] if below else None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Merge `LSREADY_*` variables into `raw`; returns each key path set, with its variable's name."""
    origins: dict[tuple[str, ...], str] = {}
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
        origins[tuple(path)] = name
    return origins
