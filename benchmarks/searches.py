"""Real searches: seconds per model evaluation against one compiled forward pass and the GEMM floor.

Each row is one ``evoprune.prune`` run with the defaults (population 20, five generations,
``search.encoding = "auto"``) on a model trained here. Per evaluation is the run's
``search_time_s / model_evaluations``; beside it, measured in the same process on the same
images (the fitness split):

* one compiled forward pass of the unpruned model (``tf.function``, batches of 1,024, best
  of 3 before the search and best of 3 after it, averaged; the range shows the ratio to
  each), the floor of any scorer that must run the whole model;
* ``set_weights`` + ``model.evaluate`` (what a naive loop pays per mask, median of 3);
* for a Dense head, the GEMM floor: its multiply-adds over the split at this machine's
  float32 GEMM rate.

Used by :mod:`benchmarks.targets` (``--real``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks import common

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the zoo of test models

GENERATIONS, SEED, BATCH = 5, 0, 1024


def models(train, rows: int, epochs: int) -> dict:
    """The benchmark's models, each trained ``epochs`` epochs on the first ``rows`` images."""
    import zoo
    from benchmarks.targets import keras_convnet
    from evoprune.models.architectures import build

    built = {
        "resnet": zoo.resnet(width=16),
        "mobilenet": zoo.mobilenet(width=16),
        "paper-cnn": build("paper-cnn", (28, 28, 1), 10),
        "keras-convnet": keras_convnet(),
    }
    subset = (train[0][:rows], train[1][:rows])
    return {name: zoo.fitted(model, subset, epochs, SEED) for name, model in built.items()}


ROWS = (  # label, model, layers, what it is checked against
    ("ResNet-style, all layers", "resnet", "all", "pass"),
    ("ResNet-style, last conv + head", "resnet", ("b2_conv2", "head"), "pass"),
    ("MobileNet-style, all layers", "mobilenet", "all", "pass"),
    ("paper CNN, all layers", "paper-cnn", "all", "pass"),
    ("paper head (150x10)", "paper-cnn", "head", "gemm"),
    ("keras.io convnet head (1,600x10)", "keras-convnet", "head", "gemm"),
)
TARGETS = {  # the targets: per evaluation at most this many forward passes / GEMM floors
    "ResNet-style, all layers": ("pass", 1.3),
    "ResNet-style, last conv + head": ("pass", 0.5),
    "MobileNet-style, all layers": ("pass", 1.3),
    "paper CNN, all layers": ("pass", 1.5),
    "keras.io convnet head (1,600x10)": ("gemm", 5.0),
}


def forward_pass_s(model, images: np.ndarray) -> float:
    """Best of 3: one compiled forward pass over ``images`` in batches of 1,024."""
    import tensorflow as tf

    from evoprune.models.target import model_input

    fn = tf.function(lambda x: model(model_input(model, x), training=False), reduce_retracing=True)
    blocks = [tf.constant(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]

    def run():
        for block in blocks:
            fn(block).numpy()

    run()
    return min(common.repeat_time(run, 3))


def evaluate_s(model, split) -> float:
    """Median of 3: ``set_weights`` + ``model.evaluate`` on ``split`` (the naive loop's cost per mask)."""
    from evoprune.data.dataset import eval_pipeline

    weights = model.get_weights()
    pipeline = eval_pipeline(split, 128)
    model.evaluate(pipeline, verbose=0)

    def run():
        model.set_weights(weights)
        model.evaluate(pipeline, verbose=0)

    return common.median(common.repeat_time(run, 3))


def head_macs(model, rows: int) -> int:
    kernel = model.layers[-1].kernel
    return int(np.prod(kernel.shape)) * rows


def search(model, dataset, layers) -> dict:
    """One real search with the defaults; returns its summary."""
    import evoprune

    result = evoprune.prune(
        model,
        train=dataset.train,
        validation=dataset.validation,
        test=dataset.test,
        layers=layers,
        generations=GENERATIONS,
        seed=SEED,
    )
    return result.summary


def measure(trained: dict, dataset, rate: float) -> list[tuple[str, dict]]:
    """Every row of :data:`ROWS`: the search, then its references on the same images."""
    from evoprune.data.dataset import normalize

    split = dataset.validation
    images = normalize(split[0])
    out = []
    for label, name, layers, _ in ROWS:
        model = trained[name]
        before = forward_pass_s(model, images)  # before and after: the machine's load drifts
        summary = search(model, dataset, layers)
        after = forward_pass_s(model, images)
        per_eval = summary["search_time_s"] / max(summary["model_evaluations"], 1)
        out.append(
            (
                label,
                dict(
                    summary=summary,
                    per_eval=per_eval,
                    forward=(before + after) / 2,
                    spread=(min(before, after), max(before, after)),
                    evaluate=evaluate_s(model, split),
                    floor=head_macs(model, len(split[1])) / rate if layers == "head" else None,
                ),
            )
        )
        print(f"  searched {label}")
        sys.stdout.flush()
    return out


def report(results: list[tuple[str, dict]]) -> bool:
    """Prints the real-search table; True when every target of :data:`TARGETS` is met."""
    rows, ok = [], True
    for label, r in results:
        s, times = r["summary"], r["summary"].get("times_s", {})
        post = sum(v for k, v in times.items() if k in ("test", "finetune", "other"))
        selected = s.get("selected") or {}
        ratio_pass = r["per_eval"] / r["forward"]
        ratio_floor = r["per_eval"] / r["floor"] if r["floor"] else None
        kind, limit = TARGETS.get(label, (None, None))
        met = {"pass": ratio_pass, "gemm": ratio_floor}.get(kind)
        verdict = "" if kind is None else ("ok" if met <= limit else f"MISSED (<= {limit}x)")
        ok &= not verdict.startswith("MISSED")
        rows.append(
            [
                label,
                s["model_evaluations"],
                common.fmt_s(r["per_eval"]),
                common.fmt_s(r["forward"]),
                f"{r['per_eval'] / r['spread'][1]:.2f}-{r['per_eval'] / r['spread'][0]:.2f}x",
                f"{ratio_pass:.2f}x",
                common.fmt_s(r["evaluate"]),
                "-" if r["floor"] is None else f"{ratio_floor:.1f}x",
                f"{selected.get('compression', 1.0):.2f}x",
                f"{s['search_time_s']:.1f} / {post:.1f} s",
                verdict,
            ]
        )
    common.print_table(
        f"Real searches (defaults, {GENERATIONS} generations): seconds per model evaluation",
        [
            "target",
            "model evals",
            "per eval",
            "forward pass",
            "eval/pass range",
            "eval/pass",
            "set_weights+evaluate",
            "eval/GEMM floor",
            "selected",
            "search / post-search",
            "target",
        ],
        rows,
    )
    print("  per eval = search_time_s / model_evaluations of the run; forward pass = one compiled pass")
    print("  of the unpruned model over the same images; post-search = test scoring, fine-tuning, other")
    mobile = next((r for label, r in results if label.startswith("MobileNet")), None)
    if mobile is not None:
        kept = sorted(k for k in (mobile["summary"].get("selected") or {}).get("per_layer", {}) if "/" in k)
        print(f"  MobileNet-style selected.per_layer separable kernels: {', '.join(kept) or 'none'}")
    return ok
