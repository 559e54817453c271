"""An operator bench: genome x algorithm x operator variant at equal budgets, ranked by hypervolume.

A tiny ``evoprune bench`` grid on the bundled MNIST sample, run serially in this process
(no process pool, no Dask). Pairs of operators that do not fit a genome (``flip_bit`` on
thresholds, ``two_point`` on one gene) are skipped and listed in the report. The full
grid of the results page is ``benchmarks/operators.toml`` on full MNIST.

    python examples/operator_bench.py           # 2 seeds, 3 genomes, 4 variants, 300 evaluations
    python examples/operator_bench.py --small   # 1 seed, 1 genome, 2 variants, 40 evaluations (the tests)
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
    parser.add_argument("--out", type=Path, help="bench directory (default: runs/examples/...)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    out = args.out or ROOT / "runs" / "examples" / ("operator_bench" + ("-small" if args.small else ""))
    grid = {
        "dataset": "mnist-sample",
        "bench__executor": "serial",
        "bench__algorithms": ["paper", "nsga2"],
        "pymoo": False,  # pymoo's NSGA2 as a peer row: set True with pymoo installed
        "population": 20,
    }
    if args.small:
        grid.update(
            bench__seeds=1,
            encodings=["threshold"],
            variants=["average+random_reset", "sbx+polynomial"],
            max_evaluations=40,
            model__epochs=1,
        )
    else:
        grid.update(
            bench__seeds=2,
            encodings=["threshold", "unit_thresholds", "mask"],
            variants=["average+random_reset", "sbx+polynomial", "blend+gaussian", "uniform+flip_bit"],
            max_evaluations=300,
        )
    ranking = evoprune.bench(None, out, **grid)
    columns = ["cell", "seeds", "hv_median", "a12_vs_paper", "best_fitness", "selected_compression"]
    print("cells ranked by median hypervolume (A12 against the paper's cell):")
    print(ranking[columns].round(4).to_string(index=False))
    print(f"\nreport, trials and figure in {out}")


if __name__ == "__main__":
    main()
