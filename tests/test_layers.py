"""The package's shape: layers import only downward, no cycles, local imports only to defer libraries."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "evoprune"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _local_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, module)`` of every evoprune import made inside a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("evoprune"):
                    found.append((sub.lineno, sub.module))
                elif isinstance(sub, ast.Import):
                    found += [(sub.lineno, a.name) for a in sub.names if a.name.startswith("evoprune")]
    return found


def test_local_imports_only_defer_libraries():
    """A function may import TensorFlow, Keras or another heavy library late; evoprune modules are
    imported at the top, except ``_``-prefixed ones that exist to defer a library (numba's kernel)."""
    offenders = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules().items()
        for line, module in _local_imports(tree)
        if not module.rsplit(".", 1)[-1].startswith("_")
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    """Tarjan over module-level and function-level imports between evoprune modules."""
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evoprune"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in modules:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is a dev dependency")
def test_import_contracts_hold():
    """``lint-imports`` (pyproject's [tool.importlinter]): every layer imports only those below it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(["lint-imports"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_import_evoprune_loads_no_tensorflow():
    code = (
        "import sys, evoprune\n"
        "assert callable(evoprune.prune) and callable(evoprune.load_run)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"], done.stdout
