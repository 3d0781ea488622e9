"""One bench in a process of its own: `python -m bench.worker NAME --result FILE [--quick]`.

The embedded ClickHouse opens one data path per process, and a bench that overruns is killed as
a whole process group; the orchestrator (`python -m bench`) starts one worker per bench.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.common import Result

# name -> "module:function"; imported only when run, so a bench loads only the engines it needs.
BENCHES = {
    "ack": "bench.bot:ack_latency",
    "burst": "bench.bot:command_burst",
    "triage": "bench.engines:triage_wall_time",
    "hung": "bench.bot:hung_triage",
    "clickhouse": "bench.clickhouse:big_table_cost",
    "check": "bench.engines:check_wall_time",
    "memory": "bench.memory:serve_memory",
    "exporter": "bench.exporter:scrape_latency",
    "alerts": "bench.alerts:backlog_to_diagnosis",
}


def load(name: str) -> Callable[[bool], Result]:
    module, function = BENCHES[name].split(":")
    return getattr(importlib.import_module(module), function)


def _terminated(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds the bench's `finally` blocks: engines stopped, temp dirs removed.
    raise SystemExit(f"bench worker stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("name")
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    result = load(args.name)(args.quick)
    payload = {"rows": [r.to_dict() for r in result.rows], "details": result.details}
    args.result.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
