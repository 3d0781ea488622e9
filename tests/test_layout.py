"""The shape of checks/ and runbooks/: files a reader can hold, no private names across modules, no
import circles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "checks"
MAX_LINES = 520  # about 500: a module past this mixes topics and wants splitting


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*packages: str) -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module(path)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def _imports(module: str, tree: ast.Module, is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, names taken) for every import made at run time, in a module or a function.

    Imports under `if TYPE_CHECKING:` are left out: they never run, so they close no circle.
    """
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
    return found


def test_no_module_in_checks_or_runbooks_is_over_about_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for package in (CHECKS, ROOT / "runbooks")
        for path in package.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_checks_and_runbooks_take_no_private_name_from_another_module():
    sources = _sources("checks", "runbooks")
    taken = []
    for module, (path, tree) in sources.items():
        for target, names in _imports(module, tree, path.name == "__init__.py"):
            if target.startswith(("checks", "runbooks")) and target != module:
                taken += [
                    f"{module} takes {target}.{n}" for n in names if n.startswith("_") and n != "__future__"
                ]
    assert taken == []


def _graph(sources: dict[str, tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, (path, tree) in sources.items():
        for target, names in _imports(module, tree, path.name == "__init__.py"):
            # `from package import submodule` depends on the submodule, not on the package's face.
            subs = {f"{target}.{n}" for n in names} & graph.keys()
            for dep in subs or ({target} & graph.keys()):
                if dep != module:
                    graph[module].add(dep)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[str]:
    circles: list[str] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_checks_and_runbooks_have_no_import_circle():
    assert _circles(_graph(_sources("checks"))) == []
    assert _circles(_graph(_sources("runbooks"))) == []


def test_an_import_inside_a_function_still_closes_a_circle():
    sources = {
        "pkg.a": (Path("pkg/a.py"), ast.parse("from pkg.b import x\n")),
        "pkg.b": (Path("pkg/b.py"), ast.parse("def f():\n    from pkg import a\n")),
    }
    assert _circles(_graph(sources)) == ["pkg.a -> pkg.b -> pkg.a"]


def test_an_import_for_type_checking_alone_closes_no_circle():
    sources = {
        "pkg.a": (Path("pkg/a.py"), ast.parse("from pkg.b import x\n")),
        "pkg.b": (
            Path("pkg/b.py"),
            ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"),
        ),
    }
    assert _circles(_graph(sources)) == []
