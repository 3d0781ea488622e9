"""Memory of `lsready serve`: RSS idle, after 100 and after 200 commands against embedded engines.

The bot's ClickHouse here is the embedded engine (chdb), which loads ~300 MiB of engine code into
the bot's own process; a production bot talks to ClickHouse over HTTP and never loads it. So the
target applies to RSS without the engine's library mappings (chdb, and the pyarrow it pulls in);
every anonymous page, the engine's included, still counts. Total RSS is reported beside it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, Result, Serve, calls, row, say, temp_dir, testkit
from bench.engines import demo_engines

RSS_TARGET_MB = 150.0
GROWTH_TARGET_MB = 5.0  # from 100 to 200 commands: a leak of 50 KiB per command would show
# help, status and check in turn; `check redis` is one section, `check` all 69 items.
MIX = ("help", "status", "help", "check", "help", "check redis")
SETTLE_S = 1.0

BUILD_CLICKHOUSE = """
import sys, clickhouse_connect
from runbooks.demo.schema import build_clickhouse
build_clickhouse(clickhouse_connect.get_client(dsn=sys.argv[1]))
"""


# The same ClickHouse probes in a bare process: how much of the bot's RSS the engine's heap takes.
ENGINE_ALONE = """
import json, os, sys
from bench.common import rss_mb
from checks.config import validate
from checks.engine import check
config = validate({"targets": {"t": {"clickhouse": {"url": sys.argv[1]}}}}, "bench")
before = rss_mb(os.getpid())
for _ in range(int(sys.argv[2])):
    check(config, selector="clickhouse")
print(json.dumps([before, rss_mb(os.getpid())]))
"""


def engine_alone(ch_url: str, checks: int) -> tuple[float, float]:
    """RSS without engine libraries of a bare process before and after `checks` ClickHouse checks."""
    args = [sys.executable, "-c", ENGINE_ALONE, ch_url, str(checks)]
    done = subprocess.run(args, cwd=ROOT, check=True, timeout=300, capture_output=True, text=True)
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    return before[0] - before[1], after[0] - after[1]


def _answered(fake: Any) -> int:
    """Commands answered so far: help replies, and reports or status posted in the channel."""
    posted = calls(fake, "chat.postMessage", lambda a: "readiness" in str(a.get("text")).lower())
    helps = calls(fake, "respond", lambda a: "blocks" in a and "Checking" not in str(a.get("text")))
    return len(posted) + len(helps)


def _send(bot: Serve, fake: Any, texts: list[str], timeout_each: float = 60) -> int:
    """Send each command after the previous one was answered; how many were not answered in time."""
    missed = 0
    for text in texts:
        before = _answered(fake)
        bot.command(text)
        deadline = time.monotonic() + timeout_each
        while _answered(fake) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        missed += _answered(fake) <= before
    return missed


def serve_memory(quick: bool) -> Result:
    """RSS of a real `lsready serve` idle, then after each half of the commands."""
    total = 100 if quick else 200
    texts = [MIX[n % len(MIX)] for n in range(total)]
    kit = testkit()
    with (
        demo_engines(clickhouse=False) as (engines, bot_ch),
        temp_dir() as work,
        contextlib.ExitStack() as stack,
    ):
        # chdb opens a data path in one process at a time: a short-lived one builds the schema.
        subprocess.run([sys.executable, "-c", BUILD_CLICKHOUSE, bot_ch], cwd=ROOT, check=True, timeout=120)
        target = {
            "redis": {"url": engines.redis.url},
            "postgres": {"url": engines.postgres.url},
            "clickhouse": {"url": bot_ch},
        }
        fake = kit.FakeSlack()
        stack.callback(fake.close)
        bot = Serve({"default_target": "demo", "targets": {"demo": target}}, work, fake)
        stack.callback(bot.stop)
        time.sleep(SETTLE_S)
        idle = bot.rss_mb()
        say(f"memory: idle {idle[0]:.0f} MiB; sending {total} commands")
        missed = _send(bot, fake, texts[: total // 2])
        time.sleep(SETTLE_S)
        half = bot.rss_mb()
        say(f"memory: after {total // 2} commands {half[0]:.0f} MiB")
        missed += _send(bot, fake, texts[total // 2 :])
        time.sleep(SETTLE_S)
        full = bot.rss_mb()
        bot.stop()  # the engine's data path is free again for the bare process
        checks = sum(t.startswith(("status", "check")) for t in texts)
        bare = engine_alone(bot_ch, checks)
    own = [m[0] - m[1] for m in (idle, half, full)]
    engine_heap = bare[1] - bare[0]
    return Result(
        rows=[
            row("memory", "RSS idle, total (embedded engine loaded)", idle[0], "MiB"),
            row("memory", f"RSS after {total} commands, total", full[0], "MiB"),
            row("memory", "RSS idle, without engine libraries", own[0], "MiB", "<", RSS_TARGET_MB),
            row(
                "memory",
                f"RSS after {total // 2} commands, without engine libraries",
                own[1],
                "MiB",
                "<",
                RSS_TARGET_MB,
            ),
            row(
                "memory",
                f"RSS after {total} commands, without engine libraries",
                own[2],
                "MiB",
                "<",
                RSS_TARGET_MB,
            ),
            row(
                "memory",
                f"RSS growth, {total // 2} to {total} commands",
                own[2] - own[1],
                "MiB",
                "<=",
                GROWTH_TARGET_MB,
            ),
            row("memory", "commands not answered", missed, "count", "==", 0),
            row(
                "memory",
                "engine heap: the same ClickHouse probes in a bare process",
                engine_heap,
                "MiB",
                note=f"{checks} ClickHouse checks, RSS {bare[0]:.0f} -> {bare[1]:.0f} MiB without libraries",
            ),
            row(
                "memory",
                f"RSS after {total} commands, less the engine heap (estimate)",
                own[2] - engine_heap,
                "MiB",
                note="what a bot talking to ClickHouse over HTTP would hold, roughly",
            ),
        ],
        details={
            "commands": total,
            "mix": list(MIX),
            "engine_alone_mib": {"before": round(bare[0], 1), "after": round(bare[1], 1)},
            "rss_mib": {
                k: {"total": round(v[0], 1), "engine_libraries": round(v[1], 1)}
                for k, v in (("idle", idle), ("half", half), ("full", full))
            },
        },
    )
