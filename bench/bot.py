"""The Slack bot under a hung ClickHouse: ack latency of a burst of triages, and a triage's wall time.

Both run a real `lsready serve` subprocess (HTTP mode) whose ClickHouse URL is a TCP black hole
and whose Redis is a real redis-server; requests are signed like Slack's, over loopback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import Result, Serve, blackhole, calls, median, percentile, row, say, temp_dir, testkit
from bot.actions import TRIAGE_RERUN
from runbooks.demo.session import DemoSession

ACK_TARGET_MS = 300.0  # p99 from request to ack; Slack gives up at 3 s
BURST = 80  # people typing a command in the same second
BURST_TARGET_MS = 500.0  # p99 from request to ack within a burst
SLOW_SLACK_S = 6.0  # how long the slowed Web API methods take to answer
HELP_REPLY_TARGET_MS = 1000.0  # a help reply while a triage hangs: the bot is still there


@contextlib.contextmanager
def hung_clickhouse_bot(timeouts: dict[str, float]) -> Iterator[tuple[Serve, Any]]:
    """A serving bot whose target has a real Redis and a black-holed ClickHouse; all torn down after."""
    kit = testkit()
    with temp_dir() as tmp, DemoSession(tmp) as demo, contextlib.ExitStack() as stack:
        hole = blackhole()
        stack.callback(hole.close)
        fake = kit.FakeSlack()
        stack.callback(fake.close)
        target = {
            "redis": {"url": demo.redis_url},
            "clickhouse": {"url": f"http://127.0.0.1:{hole.port}/default"},
        }
        config = {"default_target": "prod", "targets": {"prod": target}, "timeouts": timeouts}
        bot = Serve(config, Path(tmp), fake)
        stack.callback(bot.stop)
        bot.command("help")  # the first request after start-up loads the listeners' templates
        yield bot, fake


def _answered(fake: Any) -> int:
    """Triages acted on: their checklist was posted, or the caller was told why not (busy, running)."""
    started = calls(fake, "chat.postMessage", lambda a: "triage on" in str(a.get("text")))
    told = calls(fake, "respond", lambda a: str(a.get("text")).startswith(":warning:"))
    return len(started) + len(told)


def ack_latency(quick: bool) -> Result:
    """Time to the HTTP ack of back-to-back `/langsmith triage` requests while ClickHouse hangs."""
    count = 20 if quick else 50
    timeouts = {"probe_s": 2, "run_s": 4}
    with hung_clickhouse_bot(timeouts) as (bot, fake):
        say(f"ack: {count} signed triage requests, ClickHouse black-holed")
        replies = [bot.command("triage prod") for _ in range(count)]
        ms = [r.elapsed * 1000 for r in replies]
        refused = sum(r.status != 200 for r in replies)
        # Every acked command must also be acted on: started, or answered with why it was not.
        deadline = time.monotonic() + 20 + count * timeouts["run_s"] / 8
        while _answered(fake) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        acted = _answered(fake)
        started = len(calls(fake, "chat.postMessage", lambda a: "triage on" in str(a.get("text"))))
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    return Result(
        rows=[
            row("ack", "triage ack latency p50", p50, "ms"),
            row("ack", "triage ack latency p99", p99, "ms", "<", ACK_TARGET_MS, f"{count} requests"),
            row("ack", "requests not acked with 200", refused, "count", "==", 0),
            row(
                "ack",
                "acked triages neither started nor answered",
                count - acted,
                "count",
                "==",
                0,
                f"{started} started; the rest told busy or already running",
            ),
        ],
        details={"requests": count, "timeouts": timeouts, "latencies_ms": [round(m, 2) for m in ms]},
    )


def _final(fake: Any) -> list[Any]:
    """Final triage messages: the chat.update that carries the Re-run button."""
    return calls(fake, "chat.update", lambda a: TRIAGE_RERUN in json.dumps(a.get("blocks")))


def _help_while(bot: Serve, fake: Any, done: int) -> list[tuple[float, float]]:
    """(ack ms, reply ms) of `/langsmith help` sent every 0.25 s until `done` triages have ended."""
    seen: list[tuple[float, float]] = []
    while len(_final(fake)) < done and len(seen) < 60:
        before = len(calls(fake, "respond"))
        t0 = time.monotonic()
        reply = bot.command("help")
        answered = None
        while answered is None and time.monotonic() - t0 < 10:
            got = calls(fake, "respond")
            answered = got[before].at if len(got) > before else None
            time.sleep(0.005)
        seen.append((reply.elapsed * 1000, ((answered or time.monotonic() + 10) - t0) * 1000))
        time.sleep(0.25)
    return seen


def hung_triage(quick: bool) -> Result:
    """A triage against a black-holed ClickHouse ends by its deadline, and help is answered meanwhile."""
    runs = 1 if quick else 3
    # The run deadline (4 s) binds before the probe timeout (10 s): the walk must cut the steps off.
    timeouts = {"probe_s": 10, "run_s": 4}
    deadline = min(timeouts["run_s"], 20.0)
    walls: list[float] = []
    helps: list[tuple[float, float]] = []
    with hung_clickhouse_bot(timeouts) as (bot, fake):
        for n in range(runs):
            say(f"hung: triage {n + 1}/{runs} with ClickHouse black-holed, help sent meanwhile")
            t0 = time.monotonic()
            bot.command("triage prod")
            helps += _help_while(bot, fake, n + 1)
            finals = _final(fake)
            walls.append(finals[n].at - t0 if len(finals) > n else float("inf"))
    acks, replies = [h[0] for h in helps], [h[1] for h in helps]
    return Result(
        rows=[
            row(
                "hung",
                "triage wall time, worst (request to diagnosis)",
                max(walls),
                "s",
                "<=",
                deadline + 1,
                f"deadline {deadline:g} s, {runs} runs",
            ),
            row(
                "hung",
                "help ack latency p99 during the triage",
                percentile(acks, 99),
                "ms",
                "<",
                ACK_TARGET_MS,
                f"{len(acks)} requests",
            ),
            row(
                "hung",
                "help reply latency p99 during the triage",
                percentile(replies, 99),
                "ms",
                "<",
                HELP_REPLY_TARGET_MS,
            ),
        ],
        details={
            "timeouts": timeouts,
            "deadline_s": deadline,
            "triage_wall_s": [round(w, 3) for w in walls],
            "help_ack_ms_median": round(median(acks), 2),
            "help": [{"ack_ms": round(a, 2), "reply_ms": round(r, 2)} for a, r in helps],
        },
    )


def command_burst(quick: bool) -> Result:
    """Rounds of BURST signed `/langsmith help` sent at the same instant to a real `lsready serve`
    (HTTP mode, waitress): every one must be acked 200, and answered."""
    rounds = 2 if quick else 5
    kit = testkit()
    ms: list[float] = []
    refused = 0
    with temp_dir() as tmp, contextlib.ExitStack() as stack:
        fake = kit.FakeSlack()
        stack.callback(fake.close)
        config = {"default_target": "prod", "targets": {"prod": {}}}
        bot = Serve(config, Path(tmp), fake)
        stack.callback(bot.stop)
        bot.command("help")  # the first request after start-up loads the listeners' templates
        with ThreadPoolExecutor(BURST) as senders:
            for n in range(rounds):
                say(f"burst: round {n + 1}/{rounds}, {BURST} signed commands at once")
                start = threading.Barrier(BURST)

                def one(_: int, start: threading.Barrier = start) -> Any:
                    start.wait()
                    return bot.command("help")

                replies = list(senders.map(one, range(BURST)))
                ms += [r.elapsed * 1000 for r in replies]
                refused += sum(r.status != 200 for r in replies)
        expected = 1 + rounds * BURST
        deadline = time.monotonic() + 30
        while len(calls(fake, "respond")) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        answered = len(calls(fake, "respond")) - 1
        slow_ms, slow_refused = _while_slack_is_slow(kit, fake, bot, 10 if quick else 20)
    total = rounds * BURST
    return Result(
        rows=[
            row("burst", "command ack latency p50", percentile(ms, 50), "ms"),
            row(
                "burst",
                "command ack latency p99",
                percentile(ms, 99),
                "ms",
                "<",
                BURST_TARGET_MS,
                f"{rounds} rounds of {BURST} at once",
            ),
            row("burst", "requests not acked with 200", refused, "count", "==", 0),
            row("burst", "acked commands not answered", total - answered, "count", "==", 0),
            row(
                "burst",
                "ack latency p99 while Slack is slow",
                percentile(slow_ms, 99),
                "ms",
                "<",
                ACK_TARGET_MS,
                f"{len(slow_ms)} commands, clicks, modal submissions; views.publish and "
                f"conversations.replies take {SLOW_SLACK_S:g} s",
            ),
            row("burst", "requests not acked with 200 while Slack is slow", slow_refused, "count", "==", 0),
        ],
        details={
            "rounds": rounds,
            "burst": BURST,
            "latencies_ms": [round(m, 2) for m in ms],
            "slow_slack_latencies_ms": [round(m, 2) for m in slow_ms],
        },
    )


def _while_slack_is_slow(kit: Any, fake: Any, bot: Serve, rounds: int) -> tuple[list[float], int]:
    """Ack times of commands, button clicks and modal submissions sent while 20 App Home opens and
    20 thread replies wait on a slow Slack (`views.publish`, `conversations.replies`)."""
    say(f"burst: Slack slow ({SLOW_SLACK_S:g} s), {rounds} rounds of a command, a click, a submission")
    fake.delays |= {"views.publish": SLOW_SLACK_S, "conversations.replies": SLOW_SLACK_S}
    harness = SimpleNamespace(fake=fake, url=bot.url)
    harness.interact = lambda payload: kit.BotHarness.interact(harness, payload)
    for n in range(20):
        kit.BotHarness.event(harness, {"type": "app_home_opened", "user": "U0000001", "tab": "home"})
        reply = {"type": "message", "channel": "C0000001", "user": "U0000001", "ts": f"1700000099.{n:06d}",
                 "thread_ts": "1700000000.000001", "text": f"ack diag.har_capture {n}"}  # fmt: skip
        kit.BotHarness.event(harness, reply)
    values = {
        "ack_item": {"item": {"type": "static_select", "selected_option": {"value": "diag.har_capture"}}},
        "ack_note": {"note": {"type": "plain_text_input", "value": "drill"}},
        "ack_expiry": {"expiry": {"type": "plain_text_input", "value": "30d"}},
        "ack_link": {"link": {"type": "url_text_input", "value": None}},
    }
    replies = []
    for _ in range(rounds):
        replies.append(bot.command("help"))
        replies.append(kit.BotHarness.click(harness, "lsready.evidence", "gone"))
        replies.append(kit.BotHarness.submit(harness, values, json.dumps({"t": "prod"})))
    fake.release()
    return [r.elapsed * 1000 for r in replies], sum(r.status != 200 for r in replies)
