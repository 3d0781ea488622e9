"""A small Kubernetes API server for tests, and two clusters modelled on the LangSmith chart.

`FakeKubeAPI` serves list endpoints (core `/api/v1/...`, grouped `/apis/<g>/<v>/...`, namespaced,
all-namespaces and cluster-scoped) from an in-memory object set on a loopback port, pages with
`limit`/`continue`, answers 404 for kinds that are not installed and 403 for forbidden ones, and
records every request. Events are one more kind (`event()` builds one); container logs are served
from `logs` on `/api/v1/namespaces/<ns>/pods/<pod>/log` with `container`, `previous`,
`sinceSeconds`, `tailLines`, `limitBytes` and `timestamps`, answering as the API does for an unknown
pod (404), container or missing previous container (400). `chart_defaults()` (runbooks/demo/cluster.py)
and `production()` (cluster_objects.py) return the objects of a LangSmith release as `helm install`
with default values leaves it, and as a production install would be.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cluster_objects import (  # noqa: F401 (re-exported for the tests)
    BLOB_ENV,
    TTL_ENV,
    hpa,
    production,
    queue_trigger,
    scaledobject,
)

from runbooks.demo.cluster import (  # noqa: F401 (re-exported for the tests)
    CHART_LABELS,
    DEFAULT_REPLICAS,
    DEPLOYMENTS,
    FULLNAME,
    NS,
    PORTS,
    RELEASE,
    RESOURCES,
    Objects,
    chart_defaults,
    configmap,
    deployment,
    eks_node,
    nginx_conf,
    node,
    pod,
    pvc,
    service,
    statefulset,
    storageclass,
    write_snapshot,
)

TOKEN = "test-token"  # not a secret: the fake only checks that the client sends it


def write_kubeconfig(
    path: Path, server: str, user: dict[str, Any] | None = None, namespace: str = "langsmith"
) -> Path:
    """A kubeconfig with one context on `server`; the user authenticates with a token unless given."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "lsready", "user": user or {"token": TOKEN}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "lsready", "namespace": namespace}}
        ],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))
    return path


# -- the server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as RBAC sees it."""

    path: str
    group: str
    resource: str
    verb: str
    namespace: str | None


# (pod, container, previous) -> lines as (time written, text), oldest first
Logs = dict[tuple[str, str, bool], list[tuple[datetime, str]]]


class FakeKubeAPI:
    """Serves `objects` over HTTP on 127.0.0.1; plurals absent from `objects` are not installed (404)."""

    def __init__(
        self, objects: Objects, forbidden: frozenset[str] = frozenset(), logs: Logs | None = None
    ) -> None:
        self.objects = objects
        self.forbidden = forbidden  # plurals, or "pods/log"
        self.logs: Logs = logs or {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str = "langsmith") -> Path:
        """Write a kubeconfig pointing at this server and return its path."""
        return write_kubeconfig(path, self.url, namespace=namespace)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._serve(self)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _reply(h, 401, _status(401, "Unauthorized"))
        if url.path.endswith("/log"):
            return self._serve_log(h, url.path, parse_qs(url.query))
        parsed = _parse(url.path)
        if parsed is None:
            return _reply(h, 404, _status(404, "NotFound"))
        group, version, resource, namespace, name = parsed
        request = Request(url.path, group, resource, "get" if name else "list", namespace)
        with self._lock:
            self.requests.append(request)
        if resource in self.forbidden:
            message = f'{resource} is forbidden: User "lsready" cannot list resource "{resource}"'
            return _reply(h, 403, _status(403, "Forbidden", message))
        if resource not in self.objects:
            return _reply(h, 404, _status(404, "NotFound"))
        items = [
            _as_api_item(o)
            for o in self.objects[resource]
            if namespace is None or (o.get("metadata") or {}).get("namespace") == namespace
        ]
        query = parse_qs(url.query)
        start = int(query.get("continue", ["0"])[0])
        limit = int(query.get("limit", [len(items) or 1])[0])
        page, more = items[start : start + limit], start + limit < len(items)
        kind = (self.objects[resource][0].get("kind") if self.objects[resource] else None) or "Object"
        body = {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": {"resourceVersion": "1", **({"continue": str(start + limit)} if more else {})},
            "items": page,
        }
        _reply(h, 200, body)

    def _serve_log(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        parts = [p for p in path.split("/") if p]  # api v1 namespaces <ns> pods <pod> log
        if len(parts) != 7 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            return _reply(h, 404, _status(404, "NotFound"))
        namespace, name = parts[3], parts[5]
        with self._lock:
            self.requests.append(Request(path, "", "pods/log", "get", namespace))
        if "pods/log" in self.forbidden:
            message = f'pods "{name}" is forbidden: User "lsready" cannot get resource "pods/log"'
            return _reply(h, 403, _status(403, "Forbidden", message))
        found = next(
            (
                p
                for p in self.objects.get("pods", [])
                if p["metadata"]["name"] == name and p["metadata"].get("namespace") == namespace
            ),
            None,
        )
        if found is None:
            return _reply(h, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        containers = [c["name"] for c in (found.get("spec") or {}).get("containers", [])]
        container = query.get("container", [containers[0] if len(containers) == 1 else ""])[0]
        if container not in containers:
            message = f"container {container} is not valid for pod {name}"
            return _reply(h, 400, _status(400, "BadRequest", message))
        previous = query.get("previous", ["false"])[0] == "true"
        lines = self.logs.get((name, container, previous))
        if previous and lines is None:
            message = f'previous terminated container "{container}" in pod "{name}" not found'
            return _reply(h, 400, _status(400, "BadRequest", message))
        lines = list(lines or [])
        if "sinceSeconds" in query:
            cutoff = datetime.now(UTC) - timedelta(seconds=int(query["sinceSeconds"][0]))
            lines = [(t, text) for t, text in lines if t >= cutoff]
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"][0]) :] if int(query["tailLines"][0]) else []
        stamp = query.get("timestamps", ["false"])[0] == "true"
        data = "".join(
            (f"{t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} " if stamp else "") + text + "\n" for t, text in lines
        ).encode()
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"][0])]
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def _parse(path: str) -> tuple[str, str, str, str | None, str | None] | None:
    """(group, version, resource, namespace, name) of a resource path; None for anything else."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    return group, version, rest[0], namespace, rest[1] if len(rest) > 1 else None


def _as_api_item(obj: dict[str, Any]) -> dict[str, Any]:
    # The API leaves kind and apiVersion off list items; kubectl adds them back.
    return {k: v for k, v in copy.deepcopy(obj).items() if k not in ("kind", "apiVersion")}


def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
        "message": message or reason,
    }


def _reply(h: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


# -- events and pods with containers, as the API returns them ------------------------------------


def event(
    name: str,
    reason: str,
    message: str,
    involved: tuple[str, str],
    *,
    at: datetime,
    type_: str = "Warning",
    count: int = 1,
    namespace: str = NS,
) -> dict[str, Any]:
    """A core v1 Event about `involved` (kind, name), last seen `at`."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp},
        "involvedObject": {"kind": involved[0], "name": involved[1], "namespace": namespace},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "kubelet"},
    }


def running_pod(
    name: str,
    containers: dict[str, int],
    *,
    env: dict[str, str] | None = None,
    last_reason: str = "OOMKilled",
    namespace: str = NS,
) -> dict[str, Any]:
    """A Running pod of the chart whose containers restarted as many times as `containers` says."""
    statuses = []
    for container, restarts in containers.items():
        status: dict[str, Any] = {
            "name": container,
            "ready": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
        }
        if restarts:
            status["lastState"] = {"terminated": {"reason": last_reason, "exitCode": 137}}
        statuses.append(status)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(CHART_LABELS)},
        "spec": {
            "containers": [
                {"name": c, "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
                for c in containers
            ]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": statuses,
        },
    }


# -- wiring for tests -------------------------------------------------------------------------------


class Servers:
    """Fake API servers started by one test, all closed at its end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[FakeKubeAPI] = []

    def start(self, objects: Objects, **kwargs: Any) -> FakeKubeAPI:
        api = FakeKubeAPI(objects, **kwargs)
        self.started.append(api)
        return api

    def live_section(self, objects: Objects, **kwargs: Any) -> tuple[FakeKubeAPI, dict[str, Any]]:
        """A started server and the `kubernetes` config section that reads it (kwargs: logs, forbidden)."""
        api = self.start(objects, **kwargs)
        path = api.kubeconfig(self.tmp_path / f"kubeconfig-live-{len(self.started)}")
        return api, {"kubeconfig": str(path), "namespace": NS}

    def kubernetes_section(self, objects: Objects, source: str, **extra: Any) -> dict[str, Any]:
        """The `kubernetes` config section reading `objects` from a live fake API or a snapshot dir."""
        n = len(self.started)
        if source == "snapshot":
            directory = write_snapshot(
                objects, self.tmp_path / f"snapshot-{n}-{len(list(self.tmp_path.iterdir()))}"
            )
            return {"snapshot_dir": str(directory), "namespace": NS, **extra}
        api = self.start(objects)
        return {
            "kubeconfig": str(api.kubeconfig(self.tmp_path / f"kubeconfig-{n}")),
            "namespace": NS,
            **extra,
        }

    def close(self) -> None:
        for api in self.started:
            api.close()
