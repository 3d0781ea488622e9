"""Kubernetes objects of one LangSmith release, from the live API or from a snapshot directory.

Probes see plain dicts shaped like `kubectl get <plural> -o json` items, whatever the source:
- live: the official client's ApiClient (kubeconfig file/context, or the in-cluster service account),
  raw JSON lists so CRDs need no generated models and nothing is renamed to snake_case;
- snapshot: a support bundle with one `<plural>.json` per kind, made by `snapshot_commands()`.
Each kind is fetched once per run and shared by the probes, which run on threads.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from checks.errors import LsreadyError

Scope = Literal["namespaced", "cluster", "all"]


@dataclass(frozen=True)
class KindInfo:
    """One kind lsready reads: where the API serves it and how widely it is listed."""

    plural: str
    group: str  # "" is the core group
    version: str
    # "all": listed in every namespace, because monitoring objects usually live with Prometheus.
    scope: Scope
    crd: bool = False

    @property
    def resource(self) -> str:
        """The name kubectl and RBAC messages use: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.scope == "namespaced":
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


# Exactly the kinds the probes read, and nothing else: deploy/rbac.yaml grants these.
READ_KINDS: tuple[KindInfo, ...] = (
    KindInfo("nodes", "", "v1", "cluster"),
    KindInfo("pods", "", "v1", "namespaced"),
    KindInfo("services", "", "v1", "namespaced"),
    KindInfo("configmaps", "", "v1", "namespaced"),
    KindInfo("persistentvolumeclaims", "", "v1", "namespaced"),
    KindInfo("deployments", "apps", "v1", "namespaced"),
    KindInfo("statefulsets", "apps", "v1", "namespaced"),
    KindInfo("jobs", "batch", "v1", "namespaced"),
    KindInfo("horizontalpodautoscalers", "autoscaling", "v2", "namespaced"),
    KindInfo("storageclasses", "storage.k8s.io", "v1", "cluster"),
    KindInfo("csidrivers", "storage.k8s.io", "v1", "cluster"),
    KindInfo("ingresses", "networking.k8s.io", "v1", "namespaced"),
    KindInfo("ingressclasses", "networking.k8s.io", "v1", "cluster"),
    KindInfo("scaledobjects", "keda.sh", "v1alpha1", "namespaced", crd=True),
    KindInfo("servicemonitors", "monitoring.coreos.com", "v1", "all", crd=True),
    KindInfo("podmonitors", "monitoring.coreos.com", "v1", "all", crd=True),
    KindInfo("prometheusrules", "monitoring.coreos.com", "v1", "all", crd=True),
)
KINDS: dict[str, KindInfo] = {k.plural: k for k in READ_KINDS}
# Read only for a support bundle (deploy/rbac.yaml grants them too): events, and pod logs by name.
EVENTS = KindInfo("events", "", "v1", "namespaced")

NOT_INSTALLED_NOTE = "lsreadyNote"  # key of the marker a snapshot writes for a CRD that is not installed
CHART_NAME = "langsmith"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"


class ClusterError(LsreadyError):
    """The cluster could not be read: access denied, unreachable, or a bad snapshot."""


class _Source(Protocol):
    description: str
    in_cluster: bool | None  # True: cluster DNS resolves here; False: it cannot; None: unknown

    def list(self, kind: KindInfo, namespace: str) -> tuple[list[dict[str, Any]], str | None]: ...


class Cluster:
    """The objects of one namespace (and the cluster-scoped ones), cached per kind for the run."""

    def __init__(self, source: _Source, namespace: str, release: str | None = None) -> None:
        self.namespace = namespace
        self._source = source
        self._release = release
        self._lock = threading.Lock()
        self._release_lock = threading.Lock()  # discovery lists kinds, which takes self._lock
        self._kind_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self.notes: dict[str, str] = {}  # plural -> why it is empty (e.g. a CRD not installed)

    @property
    def source(self) -> str:
        return self._source.description

    @property
    def in_cluster(self) -> bool | None:
        return self._source.in_cluster

    def objects(self, plural: str) -> list[dict[str, Any]]:
        """Items of one kind, like `kubectl get <plural> -o json`; namespaced kinds are filtered."""
        kind = KINDS.get(plural)
        if kind is None:
            raise ValueError(f"lsready does not read '{plural}'; add it to READ_KINDS and deploy/rbac.yaml")
        with self._lock:
            kind_lock = self._kind_locks.setdefault(plural, threading.Lock())
        with kind_lock:
            if plural not in self._cache:
                items, note = self._source.list(kind, self.namespace)
                if kind.scope == "namespaced":
                    items = [i for i in items if _meta(i).get("namespace", self.namespace) == self.namespace]
                if note:
                    self.notes[plural] = note
                self._cache[plural] = items
            return self._cache[plural]

    def events(self) -> list[dict[str, Any]]:
        """The namespace's events (core v1), uncached: a support bundle reads them once."""
        directory = getattr(self._source, "directory", None)
        if directory is not None and not (directory / "events.json").exists():
            raise ClusterError(
                f"snapshot {directory} has no events; add them with `kubectl get events -n {self.namespace} "
                f"-o json > {directory}/events.json`"
            )
        items, _ = self._source.list(EVENTS, self.namespace)
        return [i for i in items if _meta(i).get("namespace", self.namespace) == self.namespace]

    def log(self, pod: str, container: str, *, since_s: int, tail_lines: int, previous: bool = False) -> str:
        """A container's log (newest `tail_lines` of the last `since_s` seconds), or its previous one's."""
        read = getattr(self._source, "log", None)
        if read is None:
            raise ClusterError(f"{self.source} holds no container logs; only the live API serves them")
        return str(read(self.namespace, pod, container, since_s, tail_lines, previous))

    def close(self) -> None:
        """Release the source's connections (the live API client); a snapshot has none."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object of that kind and name, or None."""
        return next((o for o in self.objects(plural) if _meta(o).get("name") == name), None)

    @property
    def release(self) -> str:
        """The Helm release: configured, or the one the chart's labels name in the namespace."""
        with self._release_lock:
            if self._release is None:
                self._release = self._discover_release()
            return self._release

    @property
    def fullname(self) -> str:
        """Prefix of every object the chart creates: `<release>-langsmith`, or the release itself."""
        release = self.release
        return release if CHART_NAME in release else f"{release}-{CHART_NAME}"

    def name(self, component: str) -> str:
        """The chart's object name for a component, e.g. `langsmith-backend`."""
        return f"{self.fullname}-{component}"

    def _discover_release(self) -> str:
        found: Counter[str] = Counter()
        for plural in ("deployments", "statefulsets"):
            for obj in self.objects(plural):
                labels = _meta(obj).get("labels") or {}
                if labels.get(NAME_LABEL) == CHART_NAME and labels.get(INSTANCE_LABEL):
                    found[labels[INSTANCE_LABEL]] += 1
        if not found:
            raise ClusterError(
                f"no LangSmith release in namespace '{self.namespace}' (no Deployment or StatefulSet "
                f"labelled {NAME_LABEL}={CHART_NAME}); set kubernetes.namespace or kubernetes.release"
            )
        if len(found) > 1:
            names = ", ".join(sorted(found))
            raise ClusterError(
                f"several LangSmith releases in namespace '{self.namespace}' ({names}); "
                "set kubernetes.release to the one to check"
            )
        return next(iter(found))


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


# -- snapshot -------------------------------------------------------------------------------------


class SnapshotSource:
    """Reads `<plural>.json` files, each the output of `kubectl get <plural> -o json`."""

    in_cluster = False  # a bundle may come from anywhere: cluster DNS is not assumed to resolve

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"snapshot {directory}"

    def list(self, kind: KindInfo, namespace: str) -> tuple[list[dict[str, Any]], str | None]:
        path = self.directory / f"{kind.plural}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(
                f"snapshot file {path} is missing; make it with `lsready snapshot-commands`"
            ) from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
            raise ClusterError(f"snapshot file {path} cannot be read ({reason}); capture it again") from None
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ClusterError(
                f"snapshot file {path} is not a kubectl List (no 'items'); capture it again with -o json"
            )
        if data.get(NOT_INSTALLED_NOTE):
            return [], str(data[NOT_INSTALLED_NOTE])
        if not all(isinstance(i, dict) for i in data["items"]):
            raise ClusterError(f"snapshot file {path} has items that are not objects; capture it again")
        return data["items"], None


def snapshot_commands(namespace: str, directory: str = "lsready-snapshot") -> list[str]:
    """Shell lines that write a snapshot lsready can read (`kubernetes.snapshot_dir`)."""
    ns, out_dir = shlex.quote(namespace), shlex.quote(directory)
    lines = [f"mkdir -p {out_dir}"]
    for kind in READ_KINDS:
        scope = {"namespaced": f" -n {ns}", "all": " -A", "cluster": ""}[kind.scope]
        out = f"{out_dir}/{kind.plural}.json"
        get = f"kubectl get {kind.resource}{scope} -o json > {out}"
        if not kind.crd:
            lines.append(get)
            continue
        # A CRD that is absent is recorded as such; a failed get leaves an empty file, which lsready reports.
        marker = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [],
                NOT_INSTALLED_NOTE: f"{kind.resource} not installed",
            }
        )
        lines.append(
            f"if kubectl api-resources --api-group={kind.group} -o name | grep -qx {kind.resource}; "
            f"then {get}; else echo {shlex.quote(marker)} > {out}; fi"
        )
    return lines
