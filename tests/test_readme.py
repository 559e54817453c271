"""The README: short, with its set-up and test commands, and a Python quickstart that runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def test_readme_is_short_and_keeps_the_set_up_and_test_commands():
    assert len(README.splitlines()) <= 200
    shell = "\n".join(blocks("bash"))
    assert 'pip install -e ".[dev]"' in shell
    assert "evoprune run --config configs/paper.toml --dataset mnist-sample --out runs/quickstart" in shell
    assert "python -m pytest" in shell  # what .ci/run runs


def test_readme_links_point_at_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing


def test_python_quickstart_runs_as_written(tmp_path):
    (code,) = blocks("python")
    assert "evoprune.prune(" in code
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.startswith("<PruneResult nsga2, "), done.stdout
    summary = json.loads((tmp_path / "runs" / "my-model" / "summary.json").read_text())
    assert summary["selected"]["nonzero"] < summary["baseline"]["nonzero"]
    assert (tmp_path / "runs" / "my-model" / "model.keras").is_file()
