"""The bot's own layout rules: thin listeners that import no other listener, Slack limits only in
render/limits.py. Module size and import circles are held for every package in test_layout.py."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from test_layout import imports_of, module_name

from bot.render import limits

BOT = Path(__file__).resolve().parent.parent / "bot"
# Slack's limits (and ours below them), read from bot/render/limits.py; small counts (10 fields,
# 10 context elements) are too common as plain numbers to mean a limit.
LIMIT_VALUES = {v for k, v in vars(limits).items() if k.isupper() and type(v) is int and v >= 20} | set(
    limits.MAX_BLOCKS.values()
)


def _listeners() -> list[Path]:
    return sorted(p for p in (BOT / "listeners").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", _listeners(), ids=lambda p: p.stem)
def test_a_listener_module_registers_itself_and_imports_no_other_listener(path):
    name = module_name(path)
    module = importlib.import_module(name)
    assert callable(getattr(module, "register", None)), f"{path.name} has no register(app, services)"
    imported = imports_of(name, ast.parse(path.read_text()), False, typing=False)
    others = {m for m, _names in imported if m.startswith("bot.listeners.")}
    others |= {f"{m}.{n}" for m, names in imported if m == "bot.listeners" for n in names}
    assert not others, f"{path.name} imports listeners {sorted(others)}: move the shared code to bot/flows"


def test_renderers_take_every_slack_limit_from_limits():
    found = []
    for path in sorted((BOT / "render").glob("*.py")):
        if path.name == "limits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in LIMIT_VALUES:
                found.append(f"{path.name}:{node.lineno}: {node.value}")
    assert not found, "Slack limits belong in bot/render/limits.py: " + ", ".join(found)
