"""Exports LeNet-300-100's MNIST splits and baselines (seeds 0-2) as ``.npz`` for the PyTorch recipe sweep.

Run: ``python -m benchmarks.recipe_export --data-dir DIR --out gpu [--seeds 0,1,2]``: the splits
of ``configs/lenet-300-100.toml`` (``mnist_split.npz``: ``x_train``, ``y_train``,
``x_validation``, ... as uint8 images and int labels) and each seed's cached (or trained)
baseline (``l300_s<seed>.npz``: ``fc1_0`` kernel, ``fc1_1`` bias, ... in Keras layout). See
``benchmarks/recipe_sweep_torch.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from evoprune.config import load_config
    from evoprune.experiments.assemble import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="gpu")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(Path(__file__).parents[1] / "configs" / "lenet-300-100.toml")
    for n, seed in enumerate(int(s) for s in args.seeds.split(",")):
        prepared = prepare(config.with_overrides({"data.data_dir": args.data_dir, "search.seed": seed}))
        if n == 0:
            ds = prepared.dataset
            np.savez_compressed(
                out / "mnist_split.npz",
                **{
                    f"{part}_{name}": array
                    for name in ("train", "validation", "test")
                    for part, array in zip(("x", "y"), ds.split(name))
                },
            )
        weights = {
            f"{layer.name}_{i}": w
            for layer in prepared.trained.model.layers
            for i, w in enumerate(layer.get_weights())
        }
        np.savez(out / f"l300_s{seed}.npz", **weights)
        print(f"seed {seed}: {', '.join(weights)} -> {out}")


if __name__ == "__main__":
    main()
