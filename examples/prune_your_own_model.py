"""Prune your own Keras model: built and trained here, pruned in memory, saved, exported, measured.

Nothing is saved before pruning: ``evoprune.prune`` takes the ``keras.Model`` and NumPy
arrays, searches per-layer thresholds for both Dense layers with NSGA-II, and returns the
run. ``result.model()`` is the selected model; ``result.save`` writes a run directory the
CLI reads (``evoprune export DIR --out model.tflite`` works on it too); ``evoprune.export``
writes the selected model as ``.keras`` and ``evoprune.evaluate`` measures the file.

    python examples/prune_your_own_model.py           # 3 epochs, population 24 x 10 generations
    python examples/prune_your_own_model.py --small   # 1 epoch, population 12 x 2 generations (the tests)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import keras

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


def build_and_train(x, y, epochs: int) -> keras.Model:
    """A small MLP classifier of your own, trained for ``epochs`` (logits out)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x / 255.0, y, batch_size=128, epochs=epochs, verbose=0)
    return model


def main() -> None:
    args = arguments()
    out = args.out or ROOT / "runs" / "examples" / ("prune_your_own_model" + ("-small" if args.small else ""))
    data = evoprune.load_data(dataset="mnist-sample")  # or your own (images, labels) arrays
    (x, y), (xv, yv), (xt, yt) = data.train, data.validation, data.test
    model = build_and_train(x, y, epochs=1 if args.small else 3)

    result = evoprune.prune(
        model,
        train=(x, y),
        validation=(xv, yv),
        test=(xt, yt),
        layers="dense",
        encoding="layer_thresholds",
        algorithm="nsga2",
        crossover="sbx",
        mutation="polynomial",
        population=12 if args.small else 24,
        generations=2 if args.small else 10,
        seed=0,
    )
    print(result)
    chosen = result.selected
    if chosen is None:
        print("nothing within select.tolerance_pp of baseline; the front:")
        print(result.front.tail())
        return
    print(
        f"selected: {chosen['nonzero']} of {result.summary['baseline']['nonzero']} weights "
        f"({chosen['compression']:.2f}x), kept per layer {chosen['per_layer']}, "
        f"test accuracy {chosen['test_accuracy']:.4f}"
    )
    pruned = result.model()  # a new keras.Model; the original is untouched
    pruned.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    print(
        f"the pruned keras.Model in memory: test accuracy {pruned.evaluate(xt / 255.0, yt, verbose=0)[1]:.4f}"
    )

    run_dir = result.save(out / "run", overwrite=True)
    again = evoprune.load_run(run_dir)
    assert again.front.equals(result.front)
    report = evoprune.export(run_dir, out / "pruned.keras")
    accuracy = evoprune.evaluate(out / "pruned.keras", (xt, yt))
    print(
        f"saved {run_dir}; exported {out / 'pruned.keras'}: {report.sidecar['gzip_bytes']:,} bytes gzipped "
        f"(unpruned {report.sidecar['unpruned_gzip_bytes']:,}), test accuracy of the file {accuracy:.4f}"
    )


if __name__ == "__main__":
    main()
