"""Scalar against multi-objective: the paper's EA and NSGA-II at equal budgets, seed by seed.

A small ``evoprune compare`` (configs/compare.toml) on the bundled MNIST sample: every
algorithm prunes the same head of each seed's own model with the same number of distinct
evaluations, and the exact front of the one-threshold genome is the reference. It prints
the medians per algorithm and the paired per-seed differences against the paper's EA
(hypervolume, IGD, selected size), the effect the full 10-seed compare measures on MNIST.

    python examples/scalar_vs_multiobjective.py           # 3 seeds, paper/nsga2/spea2/nsga3, 600 evaluations
    python examples/scalar_vs_multiobjective.py --small   # 1 seed, paper/nsga2, 60 evaluations (the tests)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import evoprune

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["hypervolume", "igd", "best_fitness", "selected_nonzero", "selected_test_drop_pp"]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        default=os.environ.get("EVOPRUNE_EXAMPLE_SMALL") == "1",
        help="the smallest budget, seconds (also EVOPRUNE_EXAMPLE_SMALL=1)",
    )
    parser.add_argument("--out", type=Path, help="compare directory (default: runs/examples/...)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    name = "scalar_vs_multiobjective" + ("-small" if args.small else "")
    out = args.out or ROOT / "runs" / "examples" / name
    if args.small:
        budget = {"compare__seeds": 1, "compare__algorithms": ["paper", "nsga2"], "max_evaluations": 60}
        budget["model__epochs"] = 1
    else:
        budget = {"compare__seeds": 3}
    result = evoprune.compare(ROOT / "configs" / "compare.toml", out, dataset="mnist-sample", **budget)
    runs = result.trials  # one row per algorithm x seed, plus the reference row of each seed
    columns = [c for c in METRICS if c in runs.columns]
    print("medians per algorithm (the reference row is the exact front):")
    print(runs.groupby("algorithm")[columns].median().round(4).to_string())
    paper = runs[runs["algorithm"] == "paper"].set_index("seed")
    print("\npaired differences against paper, per seed (other - paper):")
    for algorithm in runs["algorithm"].unique():
        if algorithm in ("paper", "sweep", "union"):
            continue
        other = runs[runs["algorithm"] == algorithm].set_index("seed")
        difference = (other[columns] - paper[columns]).dropna(how="all")
        print(f"{algorithm}:\n{difference.round(4).to_string()}")
    print(f"\nreport, tables and figures in {out}")


if __name__ == "__main__":
    main()
