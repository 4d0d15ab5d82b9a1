"""The layers stay: the import contract of pyproject.toml, no import cycles, argparse only in the CLI."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_holds() -> None:
    """`lint-imports` (import-linter): each layer imports only the layers below, vision never serve."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of modules that import one another, directly or through others (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    assert import_cycles(grimp.build_graph("vision", "serve")) == []


@pytest.mark.parametrize(
    ("imports", "cycles"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder_finds_cycles(imports: dict[str, set[str]], cycles: list[list[str]]) -> None:
    graph = grimp.ImportGraph()
    for module, targets in imports.items():
        graph.add_module(module)
        for target in targets:
            graph.add_import(importer=module, imported=target)
    assert import_cycles(graph) == cycles


def test_argument_parsing_lives_only_in_the_cli() -> None:
    offenders = []
    for path in sorted((ROOT / "vision").rglob("*.py")) + sorted((ROOT / "serve").rglob("*.py")):
        if path.is_relative_to(ROOT / "serve" / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "argparse" in names or module == "argparse":
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_train_and_relay_load_no_service_stack() -> None:
    """`streetorder train` and the relay run on hosts with ultralytics, torch and PyYAML only
    (serve/cli/main.py): the CLI modes they use must not pull in the web or database stack."""
    probe = (
        "import sys, serve.cli.main as m, serve.cli.train, serve.cli.relay; "
        "print(sorted(n for n in ('fastapi', 'starlette', 'sqlalchemy', 'alembic') if n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
