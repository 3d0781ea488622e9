"""No test orders events with a fixed sleep: each sleep in tests/ is a poll step or slowness on purpose.

A sleep "to give it time" passes on the machine it was written on and fails (or, worse, passes
without testing anything) on a slower one. Wait on the condition meant instead: `wait_until` from
tests/waiting.py, an Event, a barrier. A new sleep that really is a poll step under a deadline, or a
slow thing simulated on purpose, goes in ALLOWED with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# "file::function": why a sleep there orders nothing.
ALLOWED = {
    "waiting.py::wait_until": "the poll helper: a pause between checks of a condition, under a deadline",
    "processes.py::wait_ready": "polls a starting server's URL under a deadline",
    "slack_fake.py::FakeSlack.wait_for": "polls the recorded Web API calls under a deadline",
    "slack_fake.py::BotHarness.wait_idle": "polls the worker pool until it is idle, under a deadline",
    "slack_socket.py::FakeSocketMode.wait_connected": "polls for the bot's connection under a deadline",
    "slack_socket.py::FakeSocketMode.wait_ack": "polls for an envelope's ack under a deadline",
    "test_probes_postgres.py::Forwarder._pump": "a slow network on purpose (delay_s); no test orders by it",
}


def sleeps_in(source: str, filename: str = "<test>") -> list[tuple[int, str]]:
    """(line, enclosing function) of every sleep call: `time.sleep`, a `sleep` imported from time
    (under any name), `asyncio.sleep`, and `Event().wait(n)` on an Event nobody can set."""
    tree = ast.parse(source, filename)
    modules = {"time": "time", "asyncio": "asyncio"}  # local name -> module
    bare: set[str] = set()  # local names bound to time.sleep / asyncio.sleep
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("time", "asyncio"):
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            bare |= {alias.asname or alias.name for alias in node.names if alias.name == "sleep"}

    def is_sleep(call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Name):
            return func.id in bare
        if not isinstance(func, ast.Attribute):
            return False
        if func.attr == "sleep" and isinstance(func.value, ast.Name):
            return func.value.id in modules
        # threading.Event().wait(n): a sleep in disguise, since nothing else holds that Event
        return (
            func.attr == "wait"
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Attribute | ast.Name)
            and (getattr(func.value.func, "attr", None) or getattr(func.value.func, "id", None)) == "Event"
        )

    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call) and is_sleep(child):
                found.append((child.lineno, ".".join(scope) or "<module>"))
            visit(child, scope)

    visit(tree, [])
    return found


def _all_sleeps() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS).as_posix()
        for line, scope in sleeps_in(path.read_text(), str(path)):
            out.setdefault(f"{relative}::{scope}", []).append(line)
    return out


def test_every_sleep_in_the_tests_is_a_poll_step_or_slowness_on_purpose():
    unjustified = {
        f"tests/{where.split('::')[0]}:{line} in {where.split('::')[1]}"
        for where, lines in _all_sleeps().items()
        if where not in ALLOWED
        for line in lines
    }
    assert not unjustified, (
        "a fixed sleep orders events: wait on the condition meant (tests/waiting.py wait_until, an Event), "
        f"or, for a poll step or slowness on purpose, list it in ALLOWED with why: {sorted(unjustified)}"
    )


def test_every_allowed_sleep_is_still_there():
    assert set(ALLOWED) - set(_all_sleeps()) == set()


def test_the_guard_sees_a_sleep_in_any_spelling():
    source = """
import time as clock
import threading
from time import sleep as nap


def test_a():
    clock.sleep(0.3)


class Helper:
    def give_it_time(self):
        nap(1)
        threading.Event().wait(0.5)

    def fine(self, done):
        done.wait(5)
        clock.monotonic()
"""
    assert sleeps_in(source) == [(8, "test_a"), (13, "Helper.give_it_time"), (14, "Helper.give_it_time")]
