"""The original algorithm: the notebook's elitist EA pruning the paper CNN's head (configs/paper.toml).

The same run as the README's CLI quickstart, from Python: train the paper's CNN on the
bundled MNIST sample (cached after the first run), evolve one magnitude threshold for the
150x10 head with elitism, averaging crossover and random reset, scored by the paper's
scalar fitness, then select the smallest head within 1 point of baseline on validation.

    python examples/paper_algorithm.py            # the paper's 20 x 30 budget, ~30 s
    python examples/paper_algorithm.py --small    # 3 generations on a 1-epoch model (the tests)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import evoprune

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        default=os.environ.get("EVOPRUNE_EXAMPLE_SMALL") == "1",
        help="the smallest budget, seconds (also EVOPRUNE_EXAMPLE_SMALL=1)",
    )
    parser.add_argument("--out", type=Path, help="run directory (default: runs/examples/paper_algorithm)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    out = args.out or ROOT / "runs" / "examples" / (
        "paper_algorithm-small" if args.small else "paper_algorithm"
    )
    budget = {"generations": 3, "model__epochs": 1} if args.small else {}
    result = evoprune.prune(
        config=ROOT / "configs" / "paper.toml",
        dataset="mnist-sample",
        out=out,
        overwrite=True,
        **budget,
    )
    summary = result.summary
    base, best, chosen = summary["baseline"], summary["best"], result.selected
    print(f"{summary['algorithm']} on {summary['dataset']}: {summary['evaluations']} evaluations")
    print(
        f"baseline: {base['nonzero']} head weights, accuracy {base['accuracy']:.4f} "
        f"(test {base['test_accuracy']:.4f})"
    )
    print(
        f"best fitness {best['fitness']:.4f}: threshold {best['threshold']:.4f} keeps {best['nonzero']} "
        f"({best['compression']:.2f}x), accuracy {best['accuracy']:.4f}"
    )
    if chosen is None:
        print("selected: nothing within select.tolerance_pp of baseline")
    else:
        print(
            f"selected: {chosen['nonzero']} weights ({chosen['compression']:.2f}x), accuracy "
            f"{chosen['accuracy']:.4f}, test drop {chosen['test_drop_pp']:.2f} points"
        )
    print(result.front[["threshold", "nonzero", "compression", "accuracy", "test_accuracy"]].tail(5))
    print(f"run directory: {result.path}")


if __name__ == "__main__":
    main()
