"""Every prune target: evoprune's fast evaluation vs ``model.evaluate`` per individual vs the GEMM floor.

For each target (a model and the layers pruned), on the validation split, side by side in
one process:

a. evoprune: ``KerasEvaluator(mode="fast").correct_counts`` on a population of random
   masks (head scorer for a final Dense head, graph scorer otherwise), ms per individual;
b. the exact path: ``model.evaluate`` per individual with the masked kernels written in
   (``mode="exact"``), on the first masks of the same population;
c. the floor: multiply-adds of one evaluation (the layers from the first pruned one on,
   every row of the split) divided by this machine's float32 GEMM rate, measured in the
   same run (NumPy ``(2048 x 2048) @ (2048 x 2048)``, best of 3).

Counts of (a) and (b) are compared on the masks both scored; the table gives how many
masks differ. Models are trained briefly (1 epoch on at most 10,000 training images):
the timings do not depend on how well.

Then (``--real``) real searches: seconds per model evaluation of ``evoprune.prune`` runs with
the defaults, against one compiled forward pass of the model and the GEMM floor, on
ResNet-style and MobileNet-style models of the tests' zoo, the paper CNN and the keras.io
convnet (see :mod:`benchmarks.searches`).

Run: ``python -m benchmarks.targets [--data-dir DIR] [--quick] [--real] [--no-random]``
(``--data-dir /usr/share/datasets/fashion-mnist`` where Debian's dataset-fashion-mnist is installed).
"""

from __future__ import annotations

import sys
import time

import numpy as np  # noqa: E402  (after common, which quiets TensorFlow)

from benchmarks import common

GEMM_N, TRAIN_ROWS, SEED = 2048, 10_000, 0


def gemm_rate() -> float:
    """Float32 multiply-adds per second of one large NumPy product (best of 3)."""
    a = np.random.default_rng(0).random((GEMM_N, GEMM_N), dtype=np.float32)
    a @ a
    return GEMM_N**3 / min(common.repeat_time(lambda: a @ a, 3))


def keras_convnet():
    """The Keras MNIST example convnet: its softmax head has 1,600 x 10 weights."""
    import keras

    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(10, activation="softmax"),
        ]
    )


def trained(name: str, train, rows: int):
    """A model of architecture ``name`` fitted for one epoch on the first ``rows`` training images."""
    import keras

    from evoprune.data.dataset import normalize
    from evoprune.models.architectures import build
    from evoprune.models.training import compile_model

    keras.utils.set_random_seed(SEED)
    model = keras_convnet() if name == "keras-convnet" else build(name, (28, 28, 1), 10)
    compile_model(model, 0.005 if name == "paper-cnn" else 0.001)
    model.fit(
        normalize(train[0][:rows]), train[1][:rows].astype(np.int64), epochs=1, batch_size=128, verbose=0
    )
    return model


def suffix_macs(model, start: int) -> int:
    """Multiply-adds of one image through ``model.layers[start:]`` (Dense and Conv2D kernels)."""
    import keras

    h = np.zeros((1,) + tuple(model.input_shape[1:]), np.float32)
    for layer in model.layers[:start]:
        h = layer(h)
    total = 0
    for layer in model.layers[start:]:
        out = layer(h, training=False)
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            total += int(np.prod(out.shape[1:])) * int(np.prod(layer.kernel.shape[:-1]))
        h = out
    return total


def measure(model, layers, split, population: int, exact_masks: int) -> dict:
    """Times evoprune's fast path and the exact path on the same random masks."""
    from evoprune.models.target import build_target
    from evoprune.scoring.evaluate import KerasEvaluator

    target = build_target(model, layers)
    (fast, setup_s) = common.timed(KerasEvaluator, model, split, "fast", target=target)
    exact = KerasEvaluator(model, split, "exact", target=target)
    rng = np.random.default_rng(SEED)
    keep = rng.random(population) * 0.9 + 0.1
    masks = [
        rng.random((population,) + k.shape) < keep.reshape((-1,) + (1,) * k.ndim) for k in target.kernels
    ]
    fast.correct_counts([m[:2] for m in masks])  # warm-up: traces the graph
    start = time.perf_counter()
    counts = fast.correct_counts(masks)
    fast_s = (time.perf_counter() - start) / population
    exact.correct_counts([m[:1] for m in masks])  # warm-up: traces model.evaluate
    start = time.perf_counter()
    exact_counts = exact.correct_counts([m[:exact_masks] for m in masks])
    exact_s = (time.perf_counter() - start) / exact_masks
    path = fast.path
    return dict(
        path=path,
        weights=sum(k.size for k in target.kernels),
        setup_s=setup_s,
        fast_s=fast_s,
        exact_s=exact_s,
        macs=suffix_macs(model, target.prefix_end) * len(split[1]),
        differ=int((counts[:exact_masks] != exact_counts).sum()),
        compared=exact_masks,
    )


TARGETS = (
    ("paper head (150x10)", "paper-cnn", "head"),
    ("softmax head (1,600x10)", "keras-convnet", "head"),
    ("paper CNN, all layers", "paper-cnn", "all"),
    ("LeNet-300-100, all layers", "lenet-300-100", "all"),
    ("LeNet-5, all layers", "lenet-5", "all"),
)


def _options(parser) -> None:
    parser.add_argument("--real", action="store_true", help="also time real searches (benchmarks.searches)")
    parser.add_argument("--no-random", action="store_true", help="skip the random-mask table")


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv, _options)
    common.print_header("targets", args)
    from evoprune.data.dataset import load_dataset

    dataset = load_dataset(common.data_config(args, validation_fraction=0.1))
    ok = True if args.no_random else random_masks(args, dataset)
    if args.real:
        from benchmarks import searches

        rows, epochs = (2000, 1) if args.quick else (20_000, 2)
        trained = searches.models(dataset.train, rows, epochs)
        ok &= searches.report(searches.measure(trained, dataset, gemm_rate()))
    return 0 if ok else 1


def random_masks(args, dataset) -> bool:
    """The random-mask table; True when every compared count equals model.evaluate's."""
    split = dataset.validation
    population, exact_masks = (8, 2) if args.quick else (12, 4)
    train_rows = 1000 if args.quick else TRAIN_ROWS
    print(f"versions:  {common.library_versions()}")
    print(
        f"split:     validation, {len(split[1]):,} images; population {population} random masks, "
        f"model.evaluate on the first {exact_masks}"
    )
    sys.stdout.flush()
    models = {name: trained(name, dataset.train, train_rows) for name in dict.fromkeys(t[1] for t in TARGETS)}
    results = []
    for label, name, layers in TARGETS:
        results.append((label, measure(models[name], layers, split, population, exact_masks)))
        print(f"  measured {label}")
        sys.stdout.flush()
    rate = gemm_rate()
    rows = []
    for label, r in results:
        floor = r["macs"] / rate
        rows.append(
            [
                label,
                f"{r['weights']:,}",
                r["path"],
                f"{r['macs'] / 1e6:,.0f} M",
                common.fmt_s(r["fast_s"]),
                common.fmt_s(r["exact_s"]),
                common.fmt_s(floor),
                common.ratio(r["fast_s"], floor),
                common.ratio(r["exact_s"], r["fast_s"]),
                f"{r['differ']}/{r['compared']}",
            ]
        )
    common.print_table(
        f"Per evaluation (one individual, whole split); GEMM rate {rate / 1e9:.1f} G multiply-adds/s",
        [
            "target",
            "weights",
            "path",
            "MACs",
            "evoprune",
            "model.evaluate",
            "floor",
            "evoprune/floor",
            "evaluate/evoprune",
            "masks differing",
        ],
        rows,
    )
    print("  floor = multiply-adds of one evaluation (layers from the first pruned one on) / GEMM rate;")
    print(
        "  setup (prefix activations, tracing) once per evaluator: "
        + ", ".join(f"{label.split(',')[0]} {common.fmt_s(r['setup_s'])}" for label, r in results)
    )
    ok = all(r["differ"] == 0 for _, r in results)
    print("\nidentical counts to model.evaluate on every compared mask:", "YES" if ok else "NO")
    return ok


if __name__ == "__main__":
    sys.exit(main())
