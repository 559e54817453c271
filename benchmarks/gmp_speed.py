"""GMP's retraining against plain ``model.fit``: seconds per epoch, side by side in one run.

On one trained model and its training split, epochs are timed alternately (so the machine's
load drifts over all of them alike):

a. plain ``model.fit`` (Adam, the model's cross-entropy, no masks);
b. evoprune's GMP retraining (``ModelFinetuner.retrain`` with a gradual schedule: variable
   masks applied by kernel constraints inside the compiled train step, masks recomputed
   every ``frequency`` steps by a callback), without distillation;
c. the same with distillation (``finetune.distill = 0.9``), as the LeNet configs retrain.

Each timed retraining is ``--epochs`` epochs (default 2) and the table reports the median
seconds per epoch of each, and the ratios to plain ``model.fit``. The issue's target:
GMP within 1.5x of ``model.fit``.

Run: ``python -m benchmarks.gmp_speed --data-dir DIR [--architecture lenet-300-100] [--rounds 3]``
"""

from __future__ import annotations

import sys
import time

from benchmarks import common


def _extra(parser) -> None:
    parser.add_argument("--architecture", default="lenet-300-100")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv, _extra)
    common.print_header("gmp_speed", args)
    import keras

    from evoprune.config import ModelConfig
    from evoprune.data.dataset import load_dataset, train_pipeline
    from evoprune.models.target import build_target
    from evoprune.models.training import compile_model, load_or_train
    from evoprune.refine.gradual import schedule_for
    from evoprune.refine.retrain import ModelFinetuner

    epochs = 1 if args.quick else args.epochs
    dataset = load_dataset(common.data_config(args))
    layers = "dense" if args.architecture == "lenet-300-100" else "all"
    trained = load_or_train(
        dataset,
        ModelConfig(
            architecture=args.architecture,
            epochs=1 if args.quick else 20,
            learning_rate=0.001,
            lr_schedule="cosine",
            cache_dir=args.cache_dir,
        ),
        0,
    )
    model = trained.model
    target = build_target(model, layers)
    base = [w.copy() for w in model.get_weights()]
    sizes = [int(k.size) for k in target.kernels]

    def tuner(distill: float) -> ModelFinetuner:
        return ModelFinetuner(
            model,
            dataset.train,
            dataset.validation,
            dataset.test,
            target,
            epochs,
            0.003,
            128,
            0,
            "cosine",
            distill,
            4.0,
        )

    def plain() -> float:
        model.set_weights(base)
        compile_model(model, keras.optimizers.schedules.CosineDecay(0.003, 1000))
        start = time.perf_counter()
        model.fit(train_pipeline(dataset.train, 128, 0), epochs=epochs, verbose=0, shuffle=False)
        return (time.perf_counter() - start) / epochs

    tuners = {0.0: tuner(0.0), 0.9: tuner(0.9)}
    tuners[0.9]._teacher_outputs()  # the teacher's outputs are computed once per fine-tuner, not timed

    def gmp(distill: float) -> float:
        t = tuners[distill]
        schedule = schedule_for(target.names, sizes, 24.0, "global", t.steps(), 0.5, 0.0, 0.7, 100)
        ones = [k != 0 for k in target.kernels]
        start = time.perf_counter()
        t.retrain(ones, schedule)
        return (time.perf_counter() - start) / epochs

    times: dict[str, list[float]] = {"fit": [], "gmp": [], "gmp+distill": []}
    for _ in range(1 if args.quick else args.rounds):
        times["fit"].append(plain())
        times["gmp"].append(gmp(0.0))
        times["gmp+distill"].append(gmp(0.9))
        sys.stdout.flush()
    fit = common.median(times["fit"])
    rows = [
        [name, common.fmt_s(common.median(values)), common.ratio(common.median(values), fit, 2)]
        for name, values in times.items()
    ]
    n = len(dataset.train[1])
    common.print_table(
        f"seconds per epoch, {args.architecture} on {n:,} training images, batch 128, {epochs} epoch(s) "
        f"per timed call, median of {len(times['fit'])} alternating rounds (compile and trace included)",
        ["", "s / epoch", "ratio to model.fit"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
