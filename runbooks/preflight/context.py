"""What a preflight step may read: the target's clients, thresholds, and what the upgrade is to be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checks.clients import Clients
from checks.cluster import Cluster
from checks.config import TargetConfig

PROBE_TAG = "preflight"  # ClickHouse queries start with `-- lsready:preflight`


@dataclass
class Context:
    """Everything a step may read: clients, resolved thresholds, and what the upgrade is to be."""

    target: str
    config: TargetConfig
    clients: Clients
    params: Mapping[str, Any]
    new_values: Mapping[str, Any] | None = None
    values_name: str | None = None
    current_values: Mapping[str, Any] | None = None
    to_version: str | None = None
    remediation: Mapping[str, str] = field(default_factory=dict)  # catalog item id -> remediation

    @property
    def cluster(self) -> Cluster:
        return self.clients.cluster  # raises NotConfigured when the target has no kubernetes

    @property
    def fullname(self) -> str:
        try:
            return self.cluster.fullname
        except Exception:
            kube = self.config.kubernetes
            release = (kube.release if kube else None) or "langsmith"
            return release if "langsmith" in release else f"{release}-langsmith"

    @property
    def namespace(self) -> str:
        kube = self.config.kubernetes
        return kube.namespace if kube else "langsmith"
