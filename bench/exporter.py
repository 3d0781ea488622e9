"""Scrape latency of a real `lsready exporter` with 16 targets, healthy and black-holed.

A scrape returns the exposition rendered when the last refresh ended, so its cost must not depend
on the backends. Two fleets of 16 targets, each a real `lsready exporter` subprocess: one against
real Redis, PostgreSQL and ClickHouse over HTTP (every item and queue exported: the largest
exposition), refreshing every few seconds so scrapes overlap refreshes; one whose Redis and
ClickHouse are TCP black holes, so every refresh hangs until its deadline. Each is scraped back
to back by a client on this machine, as Prometheus would.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    _ABSENT_BOOT,
    ROOT,
    Result,
    blackhole,
    percentile,
    row,
    rss_mb,
    say,
    temp_dir,
    wait_until,
)
from bench.engines import demo_over_http
from bench.memory import ABSENT
from runbooks.demo.engines import free_port
from runbooks.demo.processes import stop_process

TARGETS = 16
P99_TARGET_MS = 50.0
INTERVAL_S = 20  # exporter.interval: 16 full refreshes in it, one every 1.25 s, all through the scrapes


class Exporter:
    """`lsready exporter` on a loopback port with `config`."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        path = workdir / "lsready.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LSREADY_")}
        env["MALLOC_ARENA_MAX"] = "2"  # as the image sets it (Dockerfile)
        self.log_path = workdir / "exporter.log"
        # As on a production install: without the demo extra's chdb and what only it pulls in.
        args = [sys.executable, "-c", _ABSENT_BOOT, ",".join(ABSENT), "--config", str(path), "exporter",
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.base = f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"lsready exporter exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    def scrape_ms(self) -> tuple[float, int]:
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.base + "/metrics", timeout=5) as resp:
            size = len(resp.read())
        return (time.perf_counter() - t0) * 1000, size

    def stop(self) -> None:
        stop_process(self.proc, 10)


def _fleet(targets: dict[str, Any], probe_s: float, run_s: float) -> dict[str, Any]:
    return {
        "targets": targets,
        "exporter": {"interval": INTERVAL_S},
        "timeouts": {"probe_s": probe_s, "run_s": run_s},
    }


def _scrapes(exp: Exporter, seconds: float) -> tuple[list[float], int]:
    """Back-to-back scrapes for `seconds` (a whole refresh interval: every target refreshes in it)."""
    exp.scrape_ms()  # warm-up: the first connection
    samples, size = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ms, size = exp.scrape_ms()
        samples.append(ms)
    return samples, size


def _refreshed_at(exp: Exporter) -> dict[str, str]:
    """Per target, when its last refresh ended (a refresh still hanging keeps the previous one)."""
    with urllib.request.urlopen(exp.base + "/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    found = {}
    for line in lines:
        if line.startswith("lsready_last_refresh_timestamp_seconds{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = value
    return found


def scrape_latency(quick: bool) -> Result:
    # After the first round (all targets at once), refreshes come one by one: scrape through them.
    seconds = INTERVAL_S if quick else 2 * INTERVAL_S
    rows, details = [], {}
    with (
        demo_over_http() as (healthy, _),
        temp_dir() as work,
        contextlib.ExitStack() as stack,
    ):
        hole = blackhole()
        stack.callback(hole.close)
        hung = {
            "redis": {"url": f"redis://127.0.0.1:{hole.port}/0"},
            "clickhouse": {"url": f"http://127.0.0.1:{hole.port}/default"},
        }
        fleets = {
            "healthy": _fleet({f"t{n:02d}": healthy for n in range(TARGETS)}, 5, 30),
            "black-holed": _fleet({f"h{n:02d}": hung for n in range(TARGETS)}, 3, 8),
        }
        for label, config in fleets.items():
            (work / label).mkdir()
            exp = Exporter(config, work / label)
            stack.callback(exp.stop)
            if label == "healthy":  # every target read once: the full exposition
                ready = wait_until(
                    lambda e=exp: (h := e.health()) and len(h["refreshed"]) == TARGETS, 120, 0.2
                )
            else:  # refreshes started and hanging on the black holes
                ready = wait_until(lambda e=exp: e.health(), 30, 0.1)
                time.sleep(1.0)
            if not ready:
                raise RuntimeError(
                    f"the {label} exporter did not get ready: {exp.log_path.read_text()[-2000:]}"
                )
            t0 = time.monotonic()
            before = _refreshed_at(exp)
            samples, size = _scrapes(exp, seconds)
            count = len(samples)
            during = sum(1 for t, at in _refreshed_at(exp).items() if at != before.get(t))
            took = time.monotonic() - t0
            rss = rss_mb(exp.proc.pid)[0]
            say(
                f"exporter {label}: p99 {percentile(samples, 99):.1f} ms over {count} scrapes of {size} bytes"
            )
            rows += [
                row("exporter", f"scrape p50, {TARGETS} {label} targets", percentile(samples, 50), "ms"),
                row(
                    "exporter",
                    f"scrape p99, {TARGETS} {label} targets",
                    percentile(samples, 99),
                    "ms",
                    "<",
                    P99_TARGET_MS,
                    f"{count} scrapes in {took:.0f} s, {during} targets refreshed meanwhile; {size} bytes",
                ),
                row("exporter", f"exporter RSS, {TARGETS} {label} targets", rss, "MiB", note="context"),
            ]
            details[label] = {
                "scrapes": count,
                "bytes": size,
                "max_ms": round(max(samples), 2),
                "rss_mib": round(rss, 1),
                "seconds": round(took, 1),
                "targets_refreshed_during_scrapes": during,
            }
            exp.stop()
    return Result(rows=rows, details=details)
