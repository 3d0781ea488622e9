"""The bot's layout holds: thin listeners that import no other listener, no import cycle, Slack
limits only in render/limits.py, no module grown past what a reader takes in at once."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
MAX_LINES = 500
# Slack's limits (and ours below them) as they appear in bot/render/limits.py.
LIMIT_VALUES = {3000, 2000, 1900, 255, 150, 100, 75, 50, 25}


def _module(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of bot/ imported when `path` runs (imports under TYPE_CHECKING are left out)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bot":
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bot"}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in BOT.rglob("*.py")}
    return {m: {d for d in _runtime_imports(p) if d in modules and d != m} for m, p in modules.items()}


def _listeners() -> list[Path]:
    return sorted(p for p in (BOT / "listeners").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", _listeners(), ids=lambda p: p.stem)
def test_a_listener_module_registers_itself_and_imports_no_other_listener(path):
    module = importlib.import_module(_module(path))
    assert callable(getattr(module, "register", None)), f"{path.name} has no register(app, services)"
    others = {d for d in _runtime_imports(path) if d.startswith("bot.listeners.")}
    assert not others, f"{path.name} imports listeners {sorted(others)}: move the shared code to bot/flows"


def test_the_bot_package_has_no_import_cycle():
    graph, seen, path = _graph(), set(), []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in seen:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        seen.add(module)

    for module in sorted(graph):
        visit(module)


def test_renderers_take_every_slack_limit_from_limits():
    found = []
    for path in sorted((BOT / "render").glob("*.py")):
        if path.name == "limits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in LIMIT_VALUES:
                found.append(f"{path.name}:{node.lineno}: {node.value}")
    assert not found, "Slack limits belong in bot/render/limits.py: " + ", ".join(found)


def test_no_bot_module_outgrows_a_reading():
    long = {
        str(p.relative_to(BOT.parent)): n
        for p in BOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by topic: {long}"
