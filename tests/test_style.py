"""Style and types: ``ruff check``, ``ruff format --check`` and ``mypy`` pass on the project.

They run here so that the README's test command (``python -m pytest``) covers them, locally and in
CI. Settings are pyproject's ``[tool.ruff]`` and ``[tool.mypy]``; each tool is a dev dependency
(``pip install -e ".[dev]"``) and its test is skipped, saying so, where it is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["src", "tests", "benchmarks", "scripts"]


def _command(tool: str) -> list[str]:
    """This interpreter's ``python -m tool`` when installed in it, else ``tool`` from PATH, else skip."""
    if importlib.util.find_spec(tool) is not None:
        return [sys.executable, "-m", tool]
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed (a dev dependency: pip install -e '.[dev]')")
    return [found]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _report(done: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(done.args)}\n(exit {done.returncode})\n{done.stdout}{done.stderr}"


def test_ruff_check_passes():
    done = _run([*_command("ruff"), "check", *CHECKED])
    assert done.returncode == 0, _report(done)


def test_ruff_format_check_passes():
    done = _run([*_command("ruff"), "format", "--check", *CHECKED])
    assert done.returncode == 0, _report(done)


def test_mypy_passes():
    """``mypy`` on ``src/evoprune`` (pyproject's ``files``), against this interpreter's packages."""
    done = _run([*_command("mypy"), "--python-executable", sys.executable])
    assert done.returncode == 0, _report(done)
