"""The bot's layout holds: thin listeners that import no other listener, no import cycle (imports for
type hints only included), Slack limits only in render/limits.py, no module grown past what a reader
takes in at once."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
MAX_LINES = 500
# Slack's limits (and ours below them) as they appear in bot/render/limits.py.
LIMIT_VALUES = {3000, 2000, 1900, 255, 150, 100, 75, 50, 25}


def _module(path: Path, bot: Path = BOT) -> str:
    parts = path.relative_to(bot.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, typing: bool = True) -> set[str]:
    """Modules of bot/ that `path` names in an import; `typing=False` leaves out those under
    `if TYPE_CHECKING:` (the ones not imported when it runs)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if not typing and id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bot":
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bot"}
    return found


def _graph(bot: Path = BOT) -> dict[str, set[str]]:
    """Who imports whom inside bot/, type-only imports included: a reader (or a structure tool
    reading imports as text) sees a circle through them as much as through run-time ones."""
    modules = {_module(p, bot): p for p in bot.rglob("*.py")}
    return {m: {d for d in _imports(p) if d in modules and d != m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """The first import cycle found, as the path that closes it, else None."""
    seen: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in seen:
            return None
        path.append(module)
        for dep in sorted(graph[module]):
            if found := visit(dep):
                return found
        path.pop()
        seen.add(module)
        return None

    for module in sorted(graph):
        if found := visit(module):
            return found
    return None


def _listeners() -> list[Path]:
    return sorted(p for p in (BOT / "listeners").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", _listeners(), ids=lambda p: p.stem)
def test_a_listener_module_registers_itself_and_imports_no_other_listener(path):
    module = importlib.import_module(_module(path))
    assert callable(getattr(module, "register", None)), f"{path.name} has no register(app, services)"
    others = {d for d in _imports(path, typing=False) if d.startswith("bot.listeners.")}
    assert not others, f"{path.name} imports listeners {sorted(others)}: move the shared code to bot/flows"


def test_the_bot_package_has_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle (imports under TYPE_CHECKING count): " + " -> ".join(cycle or [])


def test_an_import_under_type_checking_closes_a_cycle(tmp_path):
    bot = tmp_path / "bot"
    bot.mkdir()
    (bot / "__init__.py").write_text("")
    (bot / "services.py").write_text("from bot.pools import Pools\n")
    (bot / "pools.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from bot.services import Services\n"
    )
    assert _imports(bot / "pools.py", typing=False) == set()
    assert _cycle(_graph(bot)) == ["bot.pools", "bot.services", "bot.pools"]


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
