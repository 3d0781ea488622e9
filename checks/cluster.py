"""Kubernetes objects of one LangSmith release, from the live API or from a snapshot directory.

Probes see plain dicts shaped like `kubectl get <plural> -o json` items, whatever the source:
- live: the official client's ApiClient (kubeconfig file/context, or the in-cluster service account),
  raw JSON lists so CRDs need no generated models and nothing is renamed to snake_case;
- snapshot: a support bundle with one `<plural>.json` per kind, made by `snapshot_commands()`.
Each kind is fetched once per run and shared by the probes, which run on threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from checks.config import KubernetesConfig
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
PAGE_SIZE = 500


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


# -- live API -------------------------------------------------------------------------------------


class _ApiSource:
    """Lists kinds through the official client's ApiClient as raw JSON, each call time-bounded."""

    def __init__(self, api_client: Any, timeout_s: float, description: str, in_cluster: bool | None) -> None:
        self.api = api_client
        self.timeout_s = timeout_s
        self.description = description
        self.in_cluster = in_cluster

    def close(self) -> None:
        self.api.close()

    def list(self, kind: KindInfo, namespace: str) -> tuple[list[dict[str, Any]], str | None]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)] + ([("continue", token)] if token else [])
            page = self._get(kind, namespace, query)
            if page is None:
                return [], f"{kind.resource} is not installed in the cluster (the API answered 404)"
            items.extend(_with_kind(page))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, None

    def log(
        self, namespace: str, pod: str, container: str, since_s: int, tail_lines: int, previous: bool
    ) -> str:
        import urllib3

        query: list[tuple[str, Any]] = [("container", container), ("tailLines", tail_lines)]
        query.append(("previous", "true") if previous else ("sinceSeconds", max(1, since_s)))
        which = "previous log" if previous else "log"
        method, url, headers, _, _ = self.api.param_serialize(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, _request_timeout=self.timeout_s)
            body = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(
                f"Kubernetes API {self.api.configuration.host} did not send the {which} of {pod}/{container} "
                f"within {self.timeout_s:g} s ({exc.__class__.__name__})"
            ) from None
        if response.status == 403:
            raise ClusterError(
                f"Kubernetes API denied verb 'get' on pods/log in namespace '{namespace}' (403 Forbidden); "
                "grant it with deploy/rbac.yaml"
            )
        if response.status != 200:
            try:
                message = json.loads(body).get("message") or ""
            except (ValueError, AttributeError):
                message = ""
            raise ClusterError(
                f"Kubernetes API answered {response.status} to the {which} of {pod}/{container}"
                + (f": {message[:200]}" if message else "")
            )
        return body.decode("utf-8", errors="replace")

    def _get(self, kind: KindInfo, namespace: str, query: list[tuple[str, Any]]) -> dict[str, Any] | None:
        import urllib3

        where = f" in namespace '{namespace}'" if kind.scope == "namespaced" else ""
        method, url, headers, _, _ = self.api.param_serialize(
            "GET",
            kind.path(namespace),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, _request_timeout=self.timeout_s)
            body = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(
                f"Kubernetes API {self.api.configuration.host} did not answer list {kind.resource}{where} "
                f"within {self.timeout_s:g} s ({exc.__class__.__name__})"
            ) from None
        status = response.status
        if status == 404 and kind.crd:
            return None
        if status == 403:
            raise ClusterError(
                f"Kubernetes API denied verb 'list' on {kind.resource}{where} (403 Forbidden); "
                "grant it to lsready's service account with deploy/rbac.yaml"
            )
        if status == 401:
            raise ClusterError("Kubernetes API rejected lsready's credentials (401); refresh the kubeconfig")
        if status != 200:
            raise ClusterError(f"Kubernetes API answered {status} to list {kind.resource}{where}")
        try:
            return json.loads(body)
        except ValueError:
            raise ClusterError(f"Kubernetes API sent a list of {kind.resource} that is not JSON") from None


def _with_kind(page: dict[str, Any]) -> list[dict[str, Any]]:
    """Items as kubectl prints them: each carries its own kind and apiVersion."""
    kind = str(page.get("kind", "")).removesuffix("List")
    items = page.get("items") or []
    for item in items:
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", page.get("apiVersion"))
    return items


# Credentials come from a kubeconfig exec plugin (`aws eks get-token`, `gke-gcloud-auth-plugin`) more
# often than not. The official client runs it with Popen().communicate() and no timeout, so an SSO or
# MFA prompt, or a metadata endpoint that never answers, would hang the probe forever. Plugins run
# bounded here: a plugin still running at its limit is killed (with its children) and the loading
# fails with a reason that names it.
CREDENTIALS_TIMEOUT_FACTOR = 2.0  # times the probe timeout
EXEC_PLUGIN_DEFAULT_LIMIT_S = 20.0  # for a token refresh during a probe, outside any loading


class _ExecRun(threading.local):
    limit_s: float | None = None
    spawned: list[subprocess.Popen[str]] | None = None


_EXEC_RUN = _ExecRun()


class _BoundedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """An exec plugin's process: communicate() gives up at the limit and kills the plugin."""

    limit_s: float = EXEC_PLUGIN_DEFAULT_LIMIT_S
    own_group = False
    timed_out = False

    def communicate(self, input: Any = None, timeout: float | None = None) -> Any:
        try:
            return super().communicate(input, timeout if timeout is not None else self.limit_s)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            _kill_plugin(self)
            # Its children may hold the pipes open: do not read them to the end.
            for pipe in (self.stdout, self.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(1)
            from kubernetes.config.config_exception import ConfigException

            raise ConfigException(
                f"exec: plugin {_plugin_name(self)} did not answer within {self.limit_s:g} s"
            ) from None


def _kill_plugin(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(OSError):
        if getattr(proc, "own_group", False):
            os.killpg(proc.pid, signal.SIGKILL)  # the plugin and whatever it started
        elif proc.poll() is None:
            proc.kill()


def _plugin_name(proc: subprocess.Popen[Any]) -> str:
    args = proc.args if isinstance(proc.args, list | tuple) else [proc.args]
    return os.path.basename(str(args[0])) if args else "?"


class _ExecSubprocess:
    """Stands in for `subprocess` inside kubernetes.config.exec_provider; everything else passes through."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Popen(self, args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        # Non-interactive (no terminal to prompt on): its own session, so a kill reaches its children.
        own_group = os.name == "posix" and kwargs.get("stdin") is None
        if own_group:
            kwargs.setdefault("start_new_session", True)
        proc = _BoundedPopen(args, **kwargs)
        proc.own_group = own_group
        proc.limit_s = _EXEC_RUN.limit_s or EXEC_PLUGIN_DEFAULT_LIMIT_S
        if _EXEC_RUN.spawned is not None:
            _EXEC_RUN.spawned.append(proc)
        return proc


_SHIM_LOCK = threading.Lock()


def _bound_exec_plugins() -> None:
    from kubernetes.config import exec_provider

    with _SHIM_LOCK:
        if not isinstance(exec_provider.subprocess, _ExecSubprocess):
            exec_provider.subprocess = _ExecSubprocess(subprocess)  # type: ignore[assignment]


def _load_credentials(cfg: KubernetesConfig, configuration: Any, limit_s: float) -> None:
    """Load kubeconfig or in-cluster credentials into `configuration` on a worker thread, bounded."""
    from kubernetes import config

    _bound_exec_plugins()
    spawned: list[subprocess.Popen[str]] = []
    failure: list[BaseException] = []

    def load() -> None:
        _EXEC_RUN.limit_s, _EXEC_RUN.spawned = limit_s, spawned
        try:
            if cfg.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=cfg.kubeconfig,
                    context=cfg.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except BaseException as exc:
            failure.append(exc)
        finally:
            _EXEC_RUN.limit_s, _EXEC_RUN.spawned = None, None

    worker = threading.Thread(target=load, name="kube-credentials", daemon=True)
    worker.start()
    worker.join(limit_s)
    hung = worker.is_alive()
    if hung:
        for proc in list(spawned):
            _kill_plugin(proc)  # the worker's communicate() then returns and the thread ends
    timed_out = [p for p in spawned if getattr(p, "timed_out", False)]
    if hung or timed_out:
        plugins = ", ".join(sorted({_plugin_name(p) for p in spawned})) if spawned else None
        cause = f"exec plugin {plugins} hung?" if plugins else "an exec plugin or auth provider hung?"
        raise ClusterError(
            f"kubernetes credentials did not load within {limit_s:g} s ({cause}); log in again "
            "(e.g. `aws sso login`), or set kubernetes.in_cluster or kubernetes.snapshot_dir"
        )
    if failure:
        raise failure[0]


def _api_source(cfg: KubernetesConfig, timeout_s: float) -> _ApiSource:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        _load_credentials(cfg, configuration, CREDENTIALS_TIMEOUT_FACTOR * timeout_s)
    except (ConfigException, OSError) as exc:
        raise ClusterError(
            f"cannot load Kubernetes credentials ({exc}); set kubernetes.kubeconfig/context, "
            "kubernetes.in_cluster or kubernetes.snapshot_dir"
        ) from None
    if cfg.in_cluster:
        description, in_cluster = "in-cluster service account", True
    else:
        where = cfg.kubeconfig or "the default kubeconfig"
        description = f"kubeconfig {where}" + (f" context {cfg.context}" if cfg.context else "")
        in_cluster = None
    # One attempt per call: the probe's timeout is the budget, not a multiple of it.
    configuration.retries = False
    return _ApiSource(client.ApiClient(configuration), timeout_s, description, in_cluster)


# -- snapshot -------------------------------------------------------------------------------------


class _SnapshotSource:
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


# -- entry point ----------------------------------------------------------------------------------


def open_cluster(cfg: KubernetesConfig, timeout_s: float) -> Cluster:
    """A Cluster over the configured source: snapshot_dir, in_cluster, or a kubeconfig."""
    if cfg.snapshot_dir:
        directory = Path(cfg.snapshot_dir).expanduser()
        if not directory.is_dir():
            raise ClusterError(f"snapshot directory {directory} does not exist; set kubernetes.snapshot_dir")
        return Cluster(_SnapshotSource(directory), cfg.namespace, cfg.release)
    return Cluster(_api_source(cfg, timeout_s), cfg.namespace, cfg.release)
