"""The house keeps its shape: imports point down, no module imports itself round a circle, no file is huge.

The layers are declared once, in ``pyproject.toml`` (``[tool.importlinter]``); ``lint-imports``
checks them in CI, and this test runs the same check so that ``pytest`` alone catches an
upward import too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_tarjan_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports when it is imported: module level and class bodies.

    Imports inside functions run later, on a call, and ``if TYPE_CHECKING:`` blocks never
    run; neither can make an import circle. (Imports inside functions that point *up* the
    layers are still refused: ``lint-imports`` reads those too.)
    """
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With | ast.ClassDef):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    # As grimp and import-linter count them: the module named, not the packages above it
    # (which Python imports first, but which every module of a package shares).
    return {module for module in found if module in modules and module != name}


def test_the_import_reader_sees_module_level_imports_only(tmp_path: Path) -> None:
    source = ROOT / "geoconv" / "grids" / "rotation.py"
    imports = _import_time_imports(source, {"geoconv.grids.base", "geoconv.grids.fields", "geoconv.grids"})
    # rotation.py imports grids.base at the top; fields only inside functions
    assert imports == {"geoconv.grids.base"}


def test_no_import_circle_between_the_package_modules() -> None:
    paths = sorted((ROOT / "geoconv").rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    edges = {_module_name(path): _import_time_imports(path, modules) for path in paths}
    assert _strongly_connected(edges) == []


def test_every_import_points_down() -> None:
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("lint-imports (import-linter, the test extra) is not installed")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("folder", ["geoconv", "tests", "experiments", "examples"])
def test_no_file_over_600_lines(folder: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "build" not in path.parts and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"files over {MAX_LINES} lines: {long}"


def test_the_layers_name_every_top_level_module() -> None:
    # A new top-level module must take its place in the house, or lint-imports would not see it.
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {
        f"geoconv.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "geoconv").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert modules - named == set(), f"not in any layer of pyproject.toml: {sorted(modules - named)}"
