"""Distillation in whole-model fine-tuning: LeNet-300-100 pruned to Han et al.'s 12x, with and without.

The baseline of ``configs/lenet-300-100.toml`` (cached or trained for each seed) is pruned
to Han et al. 2015's per-layer kept fractions (fc1 8%, fc2 9%, fc3 26%: 12.2x, the
smallest weights of each layer), then fine-tuned with the masks fixed by
``evoprune.refine.retrain.ModelFinetuner`` as the config sets it (epochs, rate, cosine schedule),
once with ``distill = 0`` (labels only) and once with the config's ``distill`` and
``temperature``. Printed: accuracy drops from baseline on validation (the split the
runs select on) and test, in points, and the time of each fine-tuning.

Run: ``python -m benchmarks.distill [--data-dir DIR] [--cache-dir DIR] [--seeds 0,1,2] [--quick]``
(``--quick``: 1 epoch, seed 0). Use ``--cache-dir ~/.cache/evoprune`` to reuse the models
``evoprune train --config configs/lenet-300-100.toml`` cached.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np  # noqa: E402  (after common, which quiets TensorFlow)

from benchmarks import common

HAN_KEPT = {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lenet-300-100.toml"


def han_masks(kernels: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Keeps the largest ``HAN_KEPT[name]`` share of each kernel's weights by magnitude."""
    masks = []
    for kernel, name in zip(kernels, names):
        keep = int(round(HAN_KEPT[name] * kernel.size))
        cut = np.sort(np.abs(kernel).ravel())[kernel.size - keep]
        masks.append(np.abs(kernel) >= cut)
    return masks


def main(argv=None) -> int:
    args = common.parse_args(
        __doc__.splitlines()[0],
        argv,
        extra=lambda p: p.add_argument(
            "--seeds", default="0", help="comma-separated model seeds (default 0)"
        ),
    )
    common.print_header("distill", args)
    import os

    os.environ["EVOPRUNE_CACHE_DIR"] = args.cache_dir
    from evoprune.config import load_config
    from evoprune.experiments.assemble import make_model_finetuner, make_problem, prepare

    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    base = load_config(CONFIG).with_overrides(
        {"data.dataset": common.data_config(args).dataset, "data.data_dir": args.data_dir}
    )
    if args.quick:
        base = base.with_overrides({"finetune.epochs": 1, "model.epochs": 1})
    print(
        f"fine-tuning: {base.finetune.epochs} epochs, rate {base.finetune.model_learning_rate} "
        f"({base.finetune.model_lr_schedule}); distilled: distill {base.finetune.distill}, "
        f"temperature {base.finetune.temperature}\n"
    )
    print(
        "| seed | kept weights | compression | distill | validation drop (pt) | test drop (pt) | time (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed in seeds:
        config = base.with_overrides({"search.seed": seed, "finetune.refine": "none"})
        prepared = prepare(config)
        problem = make_problem(config, prepared)
        target = problem.evaluator.target
        masks = han_masks(problem.evaluator.kernels, [layer.name for layer in target.layers])
        kept = int(sum(m.sum() for m in masks))
        for distill in (0.0, config.finetune.distill):
            tuner = make_model_finetuner(
                config.with_overrides({"finetune.distill": distill}), prepared, problem.evaluator.target
            )
            start = time.perf_counter()
            accuracy, test_accuracy = tuner.score(masks)
            elapsed = time.perf_counter() - start
            print(
                f"| {seed} | {kept:,} | {problem.base_nonzero / kept:.1f}x | {distill:g} | "
                f"{100 * (problem.base_accuracy - accuracy):+.2f} | "
                f"{100 * (problem.base_test_accuracy - test_accuracy):+.2f} | {elapsed:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
