"""The write path as Prometheus gauges: every target refreshed on an interval, scrapes served from cache.

A scrape never runs a probe. Each target refreshes on its own thread every `exporter.interval`
seconds (runbooks.signals.collect, bounded by the run deadline); when a refresh ends, the whole
exposition is rendered once and kept. A scrape copies those bytes and adds the age of each
target's data, so it costs the same whatever the backends are doing. A target whose refresh is
still running (a black-holed backend) keeps its previous values and is not started again until
it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from checks.config import Config
from checks.engine import catalog_for
from checks.model import Attestation, Status
from runbooks.signals import Signals, collect, signal_params

log = logging.getLogger(__name__)

AttestationsFor = Callable[[str], Mapping[str, Attestation]]
RENDER_DELAY_S = 0.5  # refreshes ending this close together share one rendering


class Exporter:
    """Per-target signals kept fresh in the background; `exposition()` is what /metrics returns."""

    def __init__(
        self,
        config: Config,
        targets: Sequence[str] | None = None,
        *,
        attestations_for: AttestationsFor | None = None,
        collect_fn: Callable[..., Signals] = collect,
    ) -> None:
        self.config = config
        self.targets = list(targets) if targets is not None else list(config.targets)
        self.interval_s = config.exporter.interval
        self.catalog = catalog_for(config)
        self.params = signal_params(self.catalog)
        self._attestations_for = attestations_for
        self._collect = collect_fn
        self._lock = threading.Lock()
        self._latest: dict[str, Signals] = {}
        self._last_success: dict[str, float] = {}
        self._running: set[str] = set()
        self._body = b""
        self._render_due = False
        self._stop = threading.Event()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SignalsCollector(self))
        self._thread: threading.Thread | None = None
        self.render()

    # --- refresh ---------------------------------------------------------------------------------

    def start(self) -> Exporter:
        """Refresh every target now and then every interval, on daemon threads."""
        self._thread = threading.Thread(target=self._loop, name="exporter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        """Every target at once first; then spread over the interval, so refreshes (and the load they
        put on this process and the backends) come one by one instead of in bursts."""
        for name in self.targets:
            self.refresh_async(name)
        step = self.interval_s / max(1, len(self.targets))
        due = time.monotonic() + self.interval_s
        n = 0
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.refresh_async(self.targets[n % len(self.targets)])
            n += 1
            due += step

    def refresh_async(self, name: str) -> bool:
        """Start refreshing `name` unless its previous refresh is still running; True if started."""
        with self._lock:
            if name in self._running:
                return False
            self._running.add(name)
        threading.Thread(
            target=self._refresh, args=(name, True), name=f"exporter-{name}", daemon=True
        ).start()
        return True

    def refresh(self, name: str) -> Signals:
        """Refresh one target in this thread and render at once (tests, tools)."""
        with self._lock:
            self._running.add(name)
        return self._refresh(name)

    def _render_soon(self) -> None:
        """Render once for all the refreshes that end within RENDER_DELAY_S of each other."""
        with self._lock:
            if self._render_due:
                return
            self._render_due = True

        def later() -> None:
            with self._lock:
                self._render_due = False
            self.render()

        timer = threading.Timer(RENDER_DELAY_S, later)
        timer.daemon = True
        timer.start()

    def _refresh(self, name: str, coalesce: bool = False) -> Signals:
        try:
            acks = self._attestations_for(name) if self._attestations_for else None
            signals = self._collect(self.config, name, self.catalog, attestations=acks, params=self.params)
        except Exception as exc:  # never let one target's trouble stop the loop
            log.warning("exporter: refresh of %s failed: %s", name, exc)
            signals = Signals(name, time.time(), errors={"refresh": str(exc)})
        finally:
            with self._lock:
                self._running.discard(name)
        with self._lock:
            self._latest[name] = signals
            if signals.successful:
                self._last_success[name] = signals.started_at + signals.duration_s
        if coalesce:
            self._render_soon()
        else:
            self.render()
        return signals

    def latest(self, name: str) -> Signals | None:
        with self._lock:
            return self._latest.get(name)

    # --- exposition ------------------------------------------------------------------------------

    def render(self) -> None:
        """Render every family from the latest signals, once, for the scrapes to come."""
        body = generate_latest(self._registry)
        with self._lock:
            self._body = body

    def snapshot(self) -> tuple[dict[str, Signals], dict[str, float]]:
        with self._lock:
            return dict(self._latest), dict(self._last_success)

    def exposition(self) -> bytes:
        """The cached families plus each target's data age; runs no probe, takes no backend's time."""
        with self._lock:
            body, latest = self._body, {n: s.started_at + s.duration_s for n, s in self._latest.items()}
        now = time.time()
        lines = [
            "# HELP lsready_data_age_seconds Seconds since the target's values were read",
            "# TYPE lsready_data_age_seconds gauge",
            *(f'lsready_data_age_seconds{{target="{_esc(n)}"}} {now - at:.3f}' for n, at in latest.items()),
        ]
        return body + ("\n".join(lines) + "\n").encode()

    def health(self) -> dict[str, Any]:
        latest, success = self.snapshot()
        return {
            "targets": len(self.targets),
            "refreshed": sorted(latest),
            "stale": sorted(n for n in self.targets if n not in success),
        }


def _esc(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _SignalsCollector(Collector):
    """Families built from the exporter's latest signals (bounded label sets: targets, items, queues)."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        latest, success = self.exporter.snapshot()
        g = _Families()
        for name in self.exporter.targets:
            g.gauge(
                "lsready_target_configured", "1 for each target the exporter refreshes", ["target"]
            ).add_metric([name], 1)
            s = latest.get(name)
            if name in success:
                g.gauge(
                    "lsready_last_success_timestamp_seconds",
                    "When the last successful refresh (checklist ran, Redis and ClickHouse answered) ended",
                    ["target"],
                ).add_metric([name], success[name])
            if s is None:
                continue
            g.gauge(
                "lsready_refresh_duration_seconds", "Duration of the last refresh", ["target"]
            ).add_metric([name], s.duration_s)
            g.gauge(
                "lsready_last_refresh_timestamp_seconds", "When the last refresh ended, successful or not",
                ["target"],
            ).add_metric([name], s.started_at + s.duration_s)  # fmt: skip
            for backend, up in sorted(s.up.items()):
                g.gauge(
                    "lsready_backend_up", "1 if the backend answered the last refresh", ["target", "backend"]
                ).add_metric([name, backend], 1 if up else 0)
            _report(g, name, s)
            _queues(g, name, s)
            _clickhouse(g, name, s, self.exporter.params)
        yield from g.all()


class _Families:
    def __init__(self) -> None:
        self._by_name: dict[str, GaugeMetricFamily] = {}

    def gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        if name not in self._by_name:
            self._by_name[name] = GaugeMetricFamily(name, doc, labels=labels)
        return self._by_name[name]

    def all(self) -> list[GaugeMetricFamily]:
        return list(self._by_name.values())


def _add(family: GaugeMetricFamily, labels: list[str], value: float) -> None:
    family.add_metric(labels, value)


GaugeMetricFamily.add = _add


def _report(g: _Families, name: str, s: Signals) -> None:
    if s.report is None:
        return
    g.gauge(
        "lsready_readiness_score_ratio", "Share of applicable items passing or attested", ["target"]
    ).add_metric([name], s.report.score.percent / 100)
    family = g.gauge(
        "lsready_item_status",
        "1, labelled with the item's status in the last refresh (one series per item)",
        ["target", "item", "required", "status"],
    )
    failing = g.gauge(
        "lsready_required_item_failing", "1 if the required item fails, else 0", ["target", "item"]
    )
    for r in s.report.results:
        family.add_metric([name, r.item.id, "true" if r.item.required else "false", r.status.value], 1)
        if r.item.required:
            failing.add_metric([name, r.item.id], 1 if r.status is Status.FAIL else 0)


def _queues(g: _Families, name: str, s: Signals) -> None:
    for q in s.queues:
        g.gauge(
            "lsready_queue_depth",
            "Jobs waiting per queue, from Redis or as LangSmith's backend / platform-backend publish it",
            ["target", "queue", "source"],
        ).add_metric([name, q.queue, q.source], q.depth)
        if q.oldest_age_s is not None:
            g.gauge(
                "lsready_queue_oldest_job_age_seconds",
                "Age of the oldest waiting job",
                ["target", "queue", "source"],
            ).add_metric([name, q.queue, q.source], q.oldest_age_s)


def _clickhouse(g: _Families, name: str, s: Signals, params: Mapping[str, Any]) -> None:
    if s.delay is not None and s.delay.get("p95_s") is not None:
        family = g.gauge(
            "lsready_ingestion_delay_seconds",
            f"Seconds from receipt to insert of runs inserted over the last {s.delay['window_minutes']} min",
            ["target", "quantile"],
        )
        family.add_metric([name, "0.5"], s.delay["p50_s"])
        family.add_metric([name, "0.95"], s.delay["p95_s"])
    if s.delay is not None:
        g.gauge(
            "lsready_ingestion_delay_runs", "Runs the ingestion delay was measured on", ["target"]
        ).add_metric([name], s.delay["rows"])
    if s.running is not None:
        family = g.gauge(
            "lsready_clickhouse_running_queries", "Queries running on each replica", ["target", "replica"]
        )
        for host, n in sorted(s.running.items()):
            family.add_metric([name, host], n)
        if not s.running:
            family.add_metric([name, ""], 0)
    if s.parts is not None:
        worst = s.parts.worst
        g.gauge(
            "lsready_clickhouse_parts_to_delay_insert_ratio",
            "Active parts of the busiest partition as a share of its parts_to_delay_insert",
            ["target"],
        ).add_metric([name], worst.ratio if worst else 0.0)
    if s.disks is not None:
        family = g.gauge(
            "lsready_clickhouse_disk_used_ratio", "Used share of each local ClickHouse disk",
            ["target", "replica", "disk"],
        )  # fmt: skip
        for d in s.disks:
            family.add_metric([name, d.host, d.disk], d.used_ratio)


def store_attestations(readiness: Any) -> AttestationsFor:
    """Attestations read from the store on the calling thread's own connection (SQLite: one per thread)."""

    def read(target: str) -> Mapping[str, Attestation]:
        mine = readiness.open_for_thread()
        try:
            return mine.attestations(target)
        finally:
            mine.db.conn.close()

    return read


def start_beside(readiness: Any, metrics: Any) -> Exporter | None:
    """The exporter for `lsready serve`: its gauges on the bot's metrics port; None without targets."""
    if not readiness.config.targets:
        return None
    exporter = Exporter(readiness.config, attestations_for=store_attestations(readiness)).start()
    metrics.attach(exporter.exposition)
    return exporter


def run_exporter(
    config: Config,
    *,
    port: int,
    host: str,
    targets: Sequence[str] | None = None,
    attestations_for: AttestationsFor | None = None,
    say: Callable[[str], None] = log.info,
    stop: threading.Event | None = None,
) -> None:
    """Serve /metrics and /healthz until `stop` is set or SIGTERM/SIGINT arrives."""
    import signal

    from bot.observability import Metrics, serve_observability

    exporter = Exporter(config, targets, attestations_for=attestations_for)
    metrics = Metrics()
    metrics.attach(exporter.exposition)
    server = serve_observability(metrics, port, health=exporter.health, host=host)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    exporter.start()
    say(
        f"lsready exporter: http://{host}:{server.server_address[1]}/metrics, "
        f"{len(exporter.targets)} target(s) every {exporter.interval_s:g} s"
    )
    try:
        stop.wait()
    finally:
        exporter.stop()
        server.shutdown()
        server.server_close()
