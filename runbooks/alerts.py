"""Alertmanager's webhook notifications, and which runbook, target and channel answer each.

`parse` turns a webhook body (payload version 4) into a Notification or raises BadNotification;
`route` is pure: labels and config in, a Route or the reason the notification is ignored out.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from checks.config import Config
from checks.errors import LsreadyError

RUNBOOK_LABEL = "runbook"
TARGET_LABEL = "lsready_target"
MAX_ALERTS = 1000


class BadNotification(LsreadyError):
    """Not an Alertmanager webhook notification lsready understands; the message says why."""


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # Alertmanager's field names
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class Notification(BaseModel):
    """One webhook delivery: a group's alerts, firing or resolved."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4096)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS)
    truncatedAlerts: int = 0

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def lead(self) -> Alert:
        """The alert that speaks for the group: the earliest firing one, else the earliest."""
        return min(self.firing or self.alerts, key=lambda a: a.startsAt)

    @property
    def labels(self) -> dict[str, str]:
        """The group's common labels, completed by its lead alert's."""
        return {**self.lead.labels, **self.commonLabels}

    @property
    def started_at(self) -> datetime:
        return min(a.startsAt for a in self.alerts).astimezone(UTC)

    @property
    def ended_at(self) -> datetime | None:
        ends = [a.endsAt for a in self.alerts if a.endsAt is not None and a.endsAt.year > 1]
        return max(ends).astimezone(UTC) if ends else None

    def annotation(self, name: str) -> str:
        return self.commonAnnotations.get(name) or self.lead.annotations.get(name, "")


def parse(body: bytes) -> Notification:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadNotification("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadNotification("the body is not a JSON object")
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        expected = "expected an Alertmanager webhook, version 4"
        raise BadNotification(f"{where}: {first['msg']} ({expected})") from None


@dataclass(frozen=True)
class Route:
    runbook: str
    target: str
    channel: str


@dataclass(frozen=True)
class Ignored:
    reason: Literal["unrouted", "no_channel", "unknown_target", "unknown_runbook"]
    detail: str


def route(notification: Notification, config: Config, runbooks: Collection[str]) -> Route | Ignored:
    """The runbook from the `runbook` label, else the first matching `alerts.routes` entry; the target
    from `lsready_target`, else the route's, else the default; the channel from the route, else
    `alerts.channel`."""
    labels = notification.labels
    matched = next(
        (r for r in config.alerts.routes if all(labels.get(k) == v for k, v in r.match.items())), None
    )
    runbook = labels.get(RUNBOOK_LABEL) or (matched.runbook if matched else None)
    if not runbook:
        return Ignored("unrouted", f"no runbook label and no alerts.routes entry matches {_name(labels)}")
    if runbook not in runbooks:
        return Ignored("unknown_runbook", f"{_name(labels)} names runbook '{runbook}'")
    target = labels.get(TARGET_LABEL) or (matched.target if matched else None)
    try:
        target = config.target(target)[0]
    except LsreadyError as exc:
        return Ignored("unknown_target", f"{_name(labels)}: {exc}")
    channel = (matched.channel if matched else None) or config.alerts.channel
    if not channel:
        return Ignored("no_channel", f"{_name(labels)}: set alerts.channel or a route's channel")
    return Route(runbook, target, channel)


def _name(labels: dict[str, str]) -> str:
    return f"alert '{labels.get('alertname', '(no alertname)')}'"
