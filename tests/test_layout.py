"""The shape of checks/, runbooks/ and bot/: files a reader can hold, no private names across modules
of checks/ and runbooks/, no import circle in any of them (imports for type hints included: a reader
sees a circle through them as much as through run-time ones)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("checks", "runbooks", "bot")
MAX_LINES = 500  # a module past this mixes topics and wants splitting


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*packages: str, root: Path = ROOT) -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            out[module_name(path, root)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def imports_of(
    module: str, tree: ast.Module, is_package: bool, *, typing: bool = True
) -> list[tuple[str, list[str]]]:
    """(imported module, names taken) for every import, in a module or a function; `typing=False`
    leaves out those under `if TYPE_CHECKING:` (the ones not made when it runs)."""
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if not typing and id(node) in typing_only:
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


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_500_lines(package):
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by topic: {long}"


def test_checks_and_runbooks_take_no_private_name_from_another_module():
    sources = _sources("checks", "runbooks")
    taken = []
    for module, (path, tree) in sources.items():
        for target, names in imports_of(module, tree, path.name == "__init__.py"):
            if target.startswith(("checks", "runbooks")) and target != module:
                taken += [
                    f"{module} takes {target}.{n}" for n in names if n.startswith("_") and n != "__future__"
                ]
    assert taken == []


def _graph(sources: dict[str, tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, (path, tree) in sources.items():
        for target, names in imports_of(module, tree, path.name == "__init__.py"):
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


def test_no_import_circle_inside_or_across_the_packages():
    assert _circles(_graph(_sources(*PACKAGES))) == []


def test_an_import_inside_a_function_still_closes_a_circle():
    sources = {
        "pkg.a": (Path("pkg/a.py"), ast.parse("from pkg.b import x\n")),
        "pkg.b": (Path("pkg/b.py"), ast.parse("def f():\n    from pkg import a\n")),
    }
    assert _circles(_graph(sources)) == ["pkg.a -> pkg.b -> pkg.a"]


def test_an_import_for_type_checking_alone_still_closes_a_circle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "services.py").write_text("from pkg.pools import Pools\n")
    (pkg / "pools.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.services import Services\n"
    )
    sources = _sources("pkg", root=tmp_path)
    _, tree = sources["pkg.pools"]
    assert [m for m, _ in imports_of("pkg.pools", tree, False, typing=False) if m.startswith("pkg")] == []
    assert _circles(_graph(sources)) == ["pkg.pools -> pkg.services -> pkg.pools"]


def test_readme_layout_names_every_folder_and_only_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## How it works") : readme.index("## Tests")]
    tops = (*PACKAGES, "storage", "tests", "bench", "deploy")
    folders = [
        p
        for top in (*PACKAGES, "storage")
        for p in (ROOT / top).rglob("*")
        if p.is_dir() and p.name != "__pycache__"
    ]
    assert [str(f.relative_to(ROOT)) for f in folders if f"{f.name}/" not in layout] == []
    files = [p.relative_to(ROOT).as_posix() for top in tops for p in (ROOT / top).rglob("*") if p.is_file()]
    named = set(re.findall(r"[\w/]+\.(?:py|yaml)\b", layout))
    assert named, "the layout section names no file: the pattern no longer matches it"
    assert sorted(n for n in named if not any(f == n or f.endswith("/" + n) for f in files)) == []
