"""`python -m bench [--only NAME[,NAME]] [--quick] [--out PATH]`: run the benches, print a table, write JSON.

Exit code 0 when every figure with a target met it, 1 otherwise (a bench that failed or overran
counts as not met), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row
from runbooks.demo.processes import stop_process

# name -> (what it measures, time limit in seconds for the whole bench, engines included)
BENCHES: dict[str, tuple[str, int]] = {
    "ack": ("ack latency of /langsmith triage while ClickHouse is a black hole", 180),
    "burst": ("80 concurrent signed /langsmith commands over HTTP: all acked, p99 to the ack", 180),
    "triage": ("triage wall time vs its slowest step, healthy embedded engines", 180),
    "hung": ("triage wall time vs its deadline under a hung ClickHouse; help meanwhile", 180),
    "clickhouse": ("rows read and time of the triage queries on a 30M-row runs table vs naive", 600),
    "check": ("full check wall time on embedded engines, 1, 4 and 16 targets", 300),
    "memory": ("RSS of lsready serve idle, after 100 and after 200 commands", 480),
    "exporter": ("scrape latency of lsready exporter with 16 targets, healthy and black-holed", 360),
    "alerts": ("Redis backlog to diagnosis in Slack through real Prometheus and Alertmanager", 480),
}
RESULTS = ROOT / "bench" / "results"


def _names(only: str | None) -> list[str]:
    if not only:
        return list(BENCHES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"bench: unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    return names


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run one bench in its own process group under its time limit; its rows, or why it has none."""
    limit = BENCHES[name][1]
    with tempfile.TemporaryDirectory(prefix="lsb-result-") as tmp:
        out = Path(tmp) / "result.json"
        args = [
            sys.executable,
            "-m",
            "bench.worker",
            name,
            "--result",
            str(out),
            *(["--quick"] if quick else []),
        ]
        t0 = time.monotonic()
        proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=sys.stderr)
        error = None
        try:
            code = proc.wait(limit)
            if code != 0 or not out.exists():
                error = f"the bench exited with code {code}"
        except subprocess.TimeoutExpired:
            error = f"the bench did not finish within {limit} s and was stopped"
        finally:
            stop_process(proc, 15, group=True)  # the worker cleans up on SIGTERM; then the rest is killed
        took = round(time.monotonic() - t0, 1)
        if error is not None:
            failed = Row(name, "bench completed", None, "", "finishes", False, error)
            return {"rows": [failed.to_dict()], "details": {}, "duration_s": took, "error": error}
        return {**json.loads(out.read_text()), "duration_s": took, "error": None}


def _value(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table: bench, figure, value, target, met."""
    marks = {True: "met", False: "NOT MET", None: ""}
    lines = [
        (r["bench"], r["figure"], f"{_value(r['value'])} {r['unit']}".strip(), r["target"], marks[r["met"]])
        for r in rows
    ]
    header = ("bench", "figure", "value", "target", "")
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(line.rstrip() for line in out)


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _machine() -> dict[str, Any]:
    memory = None
    with contextlib.suppress(ValueError, OSError):
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),  # at the end; other work skews latencies
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Measure lsready's promises.")
    parser.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these: {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="a smaller run (1M-row table, fewer requests)")
    parser.add_argument(
        "--out", type=Path, metavar="PATH", help="JSON file (default bench/results/<UTC>.json)"
    )
    args = parser.parse_args(argv)
    names = _names(args.only)
    started = datetime.now(UTC)
    load_at_start = round(os.getloadavg()[0], 2)
    out = args.out or RESULTS / f"{started:%Y%m%dT%H%M%SZ}{'-quick' if args.quick else ''}.json"
    benches: dict[str, Any] = {}
    for name in names:
        print(f"bench {name}: {BENCHES[name][0]}", file=sys.stderr, flush=True)
        benches[name] = run_one(name, args.quick)
        print(f"bench {name}: {benches[name]['duration_s']} s", file=sys.stderr, flush=True)
    rows = [r for b in benches.values() for r in b["rows"]]
    all_met = all(r["met"] is not False for r in rows)
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "commit": _commit(),
        "machine": {**_machine(), "load_average_1m_at_start": load_at_start},
        "all_met": all_met,
        "rows": rows,
        "benches": benches,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(table(rows))
    print(f"\n{'all targets met' if all_met else 'some targets NOT met'}; JSON: {out}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
