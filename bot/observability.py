"""The bot's own health and metrics: /healthz and /metrics on a port of their own.

Prometheus can alert on a readiness regression from `lsready_readiness_score_percent` and on
`lsready_required_failing`, and on the bot itself from command outcomes and probe durations.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from checks.runner import Report

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Metrics:
    """Every metric the bot exports, on a registry of its own (tests make as many as they like)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "lsready_commands", "Slack commands handled", ["command", "outcome"], registry=self.registry
        )
        self.probe_seconds = Histogram(
            "lsready_probe_duration_seconds",
            "Time to each probe's verdict",
            ["target", "item"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.probe_results = Counter(
            "lsready_probe_results", "Probe verdicts", ["target", "status"], registry=self.registry
        )
        self.diagnoses = Counter(
            "lsready_triage_diagnoses", "Triage conclusions", ["target", "diagnosis"], registry=self.registry
        )
        self.score = Gauge(
            "lsready_readiness_score_percent",
            "Share of applicable items passing or attested",
            ["target"],
            registry=self.registry,
        )
        self.buckets = Gauge(
            "lsready_readiness_items", "Items per status in the last check", ["target", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.required_failing = Gauge(
            "lsready_required_failing",
            "Required items failing in the last check",
            ["target"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "lsready_alert_notifications", "Alertmanager notifications by outcome", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.started = Gauge("lsready_start_time_seconds", "Process start time", registry=self.registry)
        self.started.set(time.time())

    def observe_report(self, report: Report, *, whole: bool) -> None:
        """Record a check: per-probe durations and verdicts, and, for a check of the whole checklist
        (`whole`), the target's score: a section's score is not the target's."""
        for result in report.results:
            if result.item.probe is not None:
                self.probe_seconds.labels(report.target, result.item.id).observe(result.duration_s)
            self.probe_results.labels(report.target, result.status.value).inc()
        if whole:
            self.score.labels(report.target).set(report.score.percent)
            self.required_failing.labels(report.target).set(len(report.score.required_failing))
            for status, count in report.score.buckets.items():
                self.buckets.labels(report.target, status).set(count)

    def command(self, name: str, outcome: str) -> None:
        self.commands.labels(name, outcome).inc()

    def diagnosis(self, target: str, kind: str) -> None:
        self.diagnoses.labels(target, kind).inc()

    def alert(self, outcome: str) -> None:
        self.alerts.labels(outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve_observability(
    metrics: Metrics,
    port: int,
    health: Callable[[], dict[str, object]] | None = None,
    host: str = "0.0.0.0",
    routes: Mapping[str, WSGIApp] | None = None,
) -> ThreadingHTTPServer:
    """Serve /healthz and /metrics (and any extra `routes`, path -> WSGI app) on a daemon thread;
    returns the server (its port may be 0 -> chosen)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            app = (routes or {}).get(self.path.split("?")[0])
            if app is None:
                return self._send(404, b"not found\n", "text/plain")
            run_wsgi(app, self)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                body = {"status": "ok", **(health() if health else {})}
                self._send(200, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the bot's own log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="observability", daemon=True).start()
    return server


def run_wsgi(app: WSGIApp, handler: BaseHTTPRequestHandler) -> None:
    """Answer one http.server request with a WSGI app (enough for a small JSON endpoint)."""
    path, _, query = handler.path.partition("?")
    environ = {
        "REQUEST_METHOD": handler.command,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": handler.headers.get("Content-Length") or "",
        "CONTENT_TYPE": handler.headers.get("Content-Type") or "",
        "wsgi.input": handler.rfile,
        "wsgi.url_scheme": "http",
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in handler.headers.items()},
    }
    reply: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        reply["status"], reply["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    handler.send_response(int(reply["status"].split()[0]))
    for name, value in reply["headers"]:
        if name.lower() != "content-length":
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
