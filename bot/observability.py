"""The bot's own health and metrics: /healthz and /metrics on a port of their own.

Prometheus can alert on a readiness regression from `lsready_readiness_score_percent` and on
`lsready_required_failing`, and on the bot itself from command outcomes and probe durations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bot import serving
from bot.serving import HttpServer, WSGIApp
from checks.runner import Report


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
        self._extra: list[Callable[[], bytes]] = []

    def attach(self, exposition: Callable[[], bytes]) -> None:
        """Serve another exposition after these families (the exporter's write-path gauges)."""
        self._extra.append(exposition)

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
        return b"".join([generate_latest(self.registry), *(extra() for extra in self._extra)])


def serve_observability(
    metrics: Metrics,
    port: int,
    health: Callable[[], dict[str, object]] | None = None,
    host: str = "0.0.0.0",
    routes: Mapping[str, WSGIApp] | None = None,
) -> HttpServer:
    """Serve /healthz and /metrics (and any extra `routes`, path -> WSGI app) on a daemon thread;
    returns the server (its port may be 0 -> chosen)."""
    table: dict[str, WSGIApp] = {
        "/healthz": serving.health(health),
        "/metrics": serving.metrics_route(metrics.exposition, CONTENT_TYPE_LATEST),
        **(routes or {}),
    }
    return HttpServer(serving.router(table), port, host, threads=4).start()
