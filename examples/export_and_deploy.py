"""Export and deploy: a run's selected model as sparse .tflite and .keras, each measured as a file.

Prunes the paper CNN's head on the bundled MNIST sample (configs/paper.toml), then exports
the selected point twice: a float32 ``.tflite`` whose pruned kernels the converter stores
sparse, and a ``.keras`` file that ``keras.models.load_model`` loads without warnings.
Each export writes a ``FILE.json`` sidecar (sizes, nonzero weights, latency, the file's
own test accuracy); ``evoprune.evaluate`` measures the files again on the test split,
with LiteRT's interpreter for ``.tflite``. The same from the shell:

    evoprune export RUN_DIR --out model.tflite && evoprune evaluate model.tflite --dataset mnist-sample

    python examples/export_and_deploy.py           # the paper's 20 x 30 budget
    python examples/export_and_deploy.py --small   # 3 generations on a 1-epoch model (the tests)
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
    parser.add_argument("--out", type=Path, help="output folder (default: runs/examples/...)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    out = args.out or ROOT / "runs" / "examples" / ("export_and_deploy" + ("-small" if args.small else ""))
    budget = {"generations": 3, "model__epochs": 1} if args.small else {}
    result = evoprune.prune(
        config=ROOT / "configs" / "paper.toml",
        dataset="mnist-sample",
        out=out / "run",
        overwrite=True,
        **budget,
    )
    print(result)
    test = evoprune.load_data(dataset="mnist-sample").test
    header = ("file", "bytes", "gzip", "unpruned gzip", "latency ms", "test acc", "again")
    print("{:<14} {:>8} {:>8} {:>14} {:>11} {:>9} {:>7}".format(*header))
    for name in ("pruned.tflite", "pruned.keras"):
        path = out / name
        report = evoprune.export(result, path, latency_repeats=10 if args.small else 100)
        side = report.sidecar
        again = evoprune.evaluate(path, test)  # measured on the written file, kind read from its bytes
        print(
            f"{name:<14} {side['bytes']:>8,} {side['gzip_bytes']:>8,} {side['unpruned_gzip_bytes']:>14,} "
            f"{side['latency_ms']:>11.3f} {side['test_accuracy']:>9.4f} {again:>7.4f}"
            f"   ({evoprune.model_kind(path)})"
        )
    if result.selected is not None:  # without a selected point, export takes the front's rank 0
        print(f"the run reported test accuracy {result.selected['test_accuracy']:.4f} for the selected point")


if __name__ == "__main__":
    main()
