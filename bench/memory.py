"""Memory of `lsready serve`: RSS idle, after 100 and after 200 commands, ClickHouse over HTTP.

A production bot talks to ClickHouse over HTTP. So does the bot here: the embedded engine (chdb)
runs in a process of its own behind bench/ch_http.py, a minimal ClickHouse HTTP interface, and the
bot's ClickHouse URL is `http://127.0.0.1:PORT/default`. The packages this venv has only for
chdb (pandas, pyarrow, numpy) are made unimportable in the bot, as on a production install
(sqlite-utils and clickhouse-connect would otherwise import them because they are there). The bot
never loads the engine (checked: no chdb or pyarrow mapping), so the target applies to its whole
RSS. The shim's RSS (the engine's) is reported for context only.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.common import Result, Serve, calls, row, rss_mb, say, temp_dir, testkit
from bench.engines import demo_over_http
from runbooks.demo.engines import free_port

RSS_TARGET_MB = 150.0
GROWTH_TARGET_MB = 5.0  # from 100 to 200 commands: a leak of 50 KiB per command would show
# help, status and check in turn; `check redis` is one section, `check` all 69 items.
MIX = ("help", "status", "help", "check", "help", "check redis")
SETTLE_S = 1.0
EXPORTER_S = 5  # exporter.interval: a full refresh of the target every 5 s while commands run
# Installed here only for the demo extra's chdb, which needs them: a production install has none of
# them, but sqlite-utils and clickhouse-connect import pandas/numpy/pyarrow when they are present.
ABSENT = ("chdb", "chdb_core", "pandas", "pyarrow", "numpy", "polars")


def _engine_loaded(pid: int) -> list[str]:
    """The embedded engine's libraries (chdb, pyarrow) mapped into a process: none for an HTTP bot."""
    libs = ("/chdb/", "/chdb_core.libs/", "/pyarrow/", "/pyarrow.libs/", "/_chdb")
    with open(f"/proc/{pid}/maps") as maps:
        return sorted({line.split()[-1] for line in maps if any(lib in line for lib in libs)})


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
        demo_over_http() as (target, shim),  # ClickHouse in a process of its own, behind an HTTP shim
        temp_dir() as work,
        contextlib.ExitStack() as stack,
    ):
        fake = kit.FakeSlack()
        stack.callback(fake.close)
        # The metrics port on: the exporter refreshes the target beside the commands all along.
        config = {"default_target": "demo", "targets": {"demo": target}, "exporter": {"interval": EXPORTER_S}}
        bot = Serve(config, work, fake, absent=ABSENT, metrics_port=free_port())
        stack.callback(bot.stop)
        time.sleep(SETTLE_S)
        idle = bot.rss_mb()[0]
        say(f"memory: idle {idle:.0f} MiB (ClickHouse over HTTP at {shim.url}); sending {total} commands")
        missed = _send(bot, fake, texts[: total // 2])
        time.sleep(SETTLE_S)
        half = bot.rss_mb()[0]
        say(f"memory: after {total // 2} commands {half:.0f} MiB")
        missed += _send(bot, fake, texts[total // 2 :])
        time.sleep(SETTLE_S)
        full = bot.rss_mb()[0]
        loaded = _engine_loaded(bot.proc.pid)
        shim_rss = rss_mb(shim.pid)[0]
        say(f"memory: after {total} commands {full:.0f} MiB; the ClickHouse shim {shim_rss:.0f} MiB")
    return Result(
        rows=[
            row(
                "memory",
                "RSS idle",
                idle,
                "MiB",
                "<",
                RSS_TARGET_MB,
                f"ClickHouse over HTTP; exporter every {EXPORTER_S} s; absent: {', '.join(ABSENT)}",
            ),
            row("memory", f"RSS after {total // 2} commands", half, "MiB", "<", RSS_TARGET_MB),
            row("memory", f"RSS after {total} commands", full, "MiB", "<", RSS_TARGET_MB),
            row(
                "memory",
                f"RSS growth, {total // 2} to {total} commands",
                full - half,
                "MiB",
                "<=",
                GROWTH_TARGET_MB,
            ),
            row("memory", "commands not answered", missed, "count", "==", 0),
            row(
                "memory",
                "embedded engine libraries mapped in the bot",
                len(loaded),
                "count",
                "==",
                0,
                ", ".join(loaded)[:200] or "chdb/pyarrow not loaded: the bot talks HTTP",
            ),
            row(
                "memory",
                f"ClickHouse shim process RSS after {total} commands (not the bot)",
                shim_rss,
                "MiB",
                note="chdb behind bench/ch_http.py: the server's memory, for context",
            ),
        ],
        details={
            "commands": total,
            "mix": list(MIX),
            "clickhouse": "HTTP, bench/ch_http.py in front of chdb in its own process",
            "exporter_interval_s": EXPORTER_S,
            "absent_in_bot": list(ABSENT),
            "rss_mib": {"idle": round(idle, 1), "half": round(half, 1), "full": round(full, 1)},
            "shim_rss_mib": round(shim_rss, 1),
            "engine_libraries_in_bot": loaded,
        },
    )
