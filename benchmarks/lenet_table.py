"""The README's LeNet table from finished run directories (``python -m benchmarks.lenet_table DIR...``).

Each DIR is an ``evoprune run --out DIR`` of ``configs/lenet-300-100.toml`` or
``configs/lenet-5.toml`` (an evolutionary run or ``--algorithm magnitude``). One row per
run: baseline test accuracy, the selected model's nonzero count, compression, test drop,
kept fraction per layer (Han et al. 2015's beside it), the retraining epochs it used and
its wall time. Nothing is computed beyond reading ``summary.json`` and ``config.toml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Han et al. 2015, Table 1 (kept share per layer)
HAN = {
    "lenet-300-100": {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26},
    "lenet-5": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
}


def row(run_dir: Path) -> str:
    """One markdown table row of a finished run."""
    from evoprune.config import load_config

    s = json.loads((run_dir / "summary.json").read_text())
    cfg = load_config(run_dir / "config.toml")
    arch = cfg.model.architecture
    chosen = s.get("selected")
    if s["algorithm"] == "magnitude":
        epochs = s["magnitude"]["retrain_budget_epochs"]
    else:
        epochs = (s.get("refined") or {}).get("points", 0) * cfg.finetune.epochs
    han = HAN.get(arch, {})
    if chosen:
        kept = ", ".join(
            f"{k} {100 * v:.1f}% ({100 * han[k]:.0f}%)" if k in han else f"{k} {100 * v:.1f}%"
            for k, v in chosen["per_layer"].items()
        )
        picked = (
            f"{chosen['nonzero']:,} | {chosen['compression']:.1f}x | {chosen['test_drop_pp']:+.2f} | {kept}"
        )
    else:
        picked = "none within tolerance | | |"
    return (
        f"| {arch} | {s['algorithm']} | {s['seed']} | {100 * s['baseline']['test_accuracy']:.2f}% | "
        f"{picked} | {epochs} | {s['wall_time_s'] / 60:.1f} min |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print(
        "| network | algorithm | seed | baseline test | selected nonzero | compression | test drop (points) "
        "| kept per layer (Han's) | retraining epochs | wall time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run_dir in args.runs:
        print(row(run_dir))


if __name__ == "__main__":
    sys.exit(main())
