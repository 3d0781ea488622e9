"""Opening a cluster: the live Kubernetes API (paged reads, bounded exec-plugin credentials) or a snapshot."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from checks.cluster import Cluster, ClusterError, KindInfo, SnapshotSource
from checks.config import KubernetesConfig

PAGE_SIZE = 500
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
        query: list[tuple[str, Any]] = [("container", container), ("tailLines", tail_lines)]
        query.append(("previous", "true") if previous else ("sinceSeconds", max(1, since_s)))
        which = "previous log" if previous else "log"
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        response, body = self._request(path, query, "text/plain", f"send the {which} of {pod}/{container}")
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

    def _request(self, path: str, query: list[tuple[str, Any]], accept: str, what: str) -> tuple[Any, bytes]:
        """One GET under the client's timeout: the response and its body; no answer is a ClusterError."""
        import urllib3

        method, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": accept}, auth_settings=["BearerToken"]
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, _request_timeout=self.timeout_s)
            return response, response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(
                f"Kubernetes API {self.api.configuration.host} did not {what} "
                f"within {self.timeout_s:g} s ({exc.__class__.__name__})"
            ) from None

    def _get(self, kind: KindInfo, namespace: str, query: list[tuple[str, Any]]) -> dict[str, Any] | None:
        where = f" in namespace '{namespace}'" if kind.scope == "namespaced" else ""
        what = f"answer list {kind.resource}{where}"
        response, body = self._request(kind.path(namespace), query, "application/json", what)
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


# -- entry point ----------------------------------------------------------------------------------


def open_cluster(cfg: KubernetesConfig, timeout_s: float) -> Cluster:
    """A Cluster over the configured source: snapshot_dir, in_cluster, or a kubeconfig."""
    if cfg.snapshot_dir:
        directory = Path(cfg.snapshot_dir).expanduser()
        if not directory.is_dir():
            raise ClusterError(f"snapshot directory {directory} does not exist; set kubernetes.snapshot_dir")
        return Cluster(SnapshotSource(directory), cfg.namespace, cfg.release)
    return Cluster(_api_source(cfg, timeout_s), cfg.namespace, cfg.release)
