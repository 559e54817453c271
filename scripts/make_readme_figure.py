"""Remakes the README's figure (docs/img/quickstart-front.png) from a real run.

It runs the README's CLI quickstart on the bundled sample,

    evoprune run --config configs/paper.toml --dataset mnist-sample --out DIR

copies the run's front figure (``front.png``, drawn by evoprune.reporting.plots) to
docs/img/quickstart-front.png and prints the command's output, so the README's pasted
output can be refreshed in the same step. Rerun it whenever the run's figure or the
command's output changes:

    python scripts/make_readme_figure.py            # a fresh run in a temporary directory
    python scripts/make_readme_figure.py --run DIR  # or the figure of an existing run
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from evoprune.experiments.rundir import FIGURE as RUN_FIGURE

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "img" / "quickstart-front.png"


def quickstart(out: Path) -> str:
    """Runs the README's quickstart into ``out``; its output (stdout and stderr)."""
    command = [
        sys.executable, "-m", "evoprune", "run",
        "--config", str(ROOT / "configs" / "paper.toml"),
        "--dataset", "mnist-sample",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"The quickstart failed:\n{done.stdout}\n{done.stderr}")
    return done.stderr + done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="a finished run directory to take the figure from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evoprune-readme-") as scratch:
        run = args.run
        if run is None:
            run = Path(scratch) / "quickstart"
            print(quickstart(run))
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / RUN_FIGURE, FIGURE)
    print(f"wrote {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
