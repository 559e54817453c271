"""LeNet against Han et al.: evolution (NSGA-II) and iterative magnitude pruning at equal retraining budget.

Han et al. 2015 (Table 1) prune LeNet-300-100 from 267K to 22K weights (12x) keeping fc1
8%, fc2 9%, fc3 26%, and LeNet-5 from 431K to 36K (12x). This runs configs/lenet-300-100.toml
(or lenet-5.toml) on the bundled MNIST sample twice on the same baseline: NSGA-II over
per-layer thresholds with whole-model fine-tuning, and the magnitude baseline given the
same number of retraining epochs; then prints the selected models beside Han's allocation.
The full-MNIST table is on the docs' results page (``python -m benchmarks.lenet_table``).

    python examples/lenet_vs_han.py                    # the config as shipped, on the sample: minutes
    python examples/lenet_vs_han.py --network lenet-5  # LeNet-5
    python examples/lenet_vs_han.py --small            # 1-epoch baseline, tiny search and budget (the tests)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import keras

import evoprune

ROOT = Path(__file__).resolve().parents[1]
HAN = {  # Han et al. 2015, Table 1: kept share per layer, overall compression
    "lenet-300-100": ({"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}, 12),
    "lenet-5": ({"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}, 12),
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        default=os.environ.get("EVOPRUNE_EXAMPLE_SMALL") == "1",
        help="the smallest budget, seconds (also EVOPRUNE_EXAMPLE_SMALL=1)",
    )
    parser.add_argument("--network", choices=sorted(HAN), default="lenet-300-100")
    parser.add_argument("--out", type=Path, help="folder of the two runs (default: runs/examples/...)")
    return parser.parse_args()


def small_budget() -> dict:
    """A budget of seconds: a 1-epoch baseline, 8 evaluations, 1-epoch fine-tuning of 1 point.

    The magnitude baseline then gets ``1 x (1 + log2(8)) = 4`` retraining epochs.
    """
    return {
        "model__epochs": 1,
        "population": 8,
        "generations": 1,
        "max_evaluations": 8,
        "finetune__epochs": 1,
        "max_points": 1,
        "tolerance_pp": 1.0,
    }


def describe(network: str, result) -> str:
    """One line: the selected model against the baseline, kept share per layer (Han's in brackets)."""
    han, _ = HAN[network]
    chosen = result.selected
    if chosen is None:
        return (
            f"{result.config.search.algorithm:>10}: nothing within {result.config.select.tolerance_pp} points"
        )
    layers = ", ".join(
        f"{name} {share:.1%} ({han.get(name, 0):.0%})" for name, share in chosen["per_layer"].items()
    )
    return (
        f"{result.config.search.algorithm:>10}: {chosen['nonzero']:,} weights, {chosen['compression']:.1f}x, "
        f"test drop {chosen['test_drop_pp']:+.2f} points; kept {layers}"
    )


def main() -> None:
    args = arguments()
    name = f"lenet_vs_han-{args.network}" + ("-small" if args.small else "")
    out = args.out or ROOT / "runs" / "examples" / name
    config = ROOT / "configs" / f"{args.network}.toml"
    budget = small_budget() if args.small else {}
    results = [
        evoprune.prune(
            config=config,
            dataset="mnist-sample",
            algorithm=algorithm,
            out=out / algorithm,
            overwrite=True,
            status=lambda line, algorithm=algorithm: print(f"[{algorithm}] {line}", flush=True),  # minutes
            **budget,
        )
        for algorithm in ("nsga2", "magnitude")
    ]
    base = results[0].summary["baseline"]
    print(
        f"{args.network} on mnist-sample: baseline {base['nonzero']:,} weights, test accuracy "
        f"{base['test_accuracy']:.4f}; Han et al.: {HAN[args.network][1]}x on full MNIST"
    )
    for result in results:
        print(describe(args.network, result))
    chosen = results[1].selected
    if chosen is not None:  # the baseline's selected round comes back with its retrained weights
        model = results[1].model()
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        x, y = evoprune.load_data(dataset="mnist-sample").test
        print(
            f"magnitude's selected model, evaluated again: {model.evaluate(x / 255.0, y, verbose=0)[1]:.4f}"
        )
    print(f"run directories: {out / 'nsga2'}, {out / 'magnitude'}")


if __name__ == "__main__":
    main()
