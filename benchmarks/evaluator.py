"""Fitness evaluation: the notebook's per-individual ``model.evaluate`` loop vs evoprune's fast path.

On one trained model (seed 0, notebook settings, fitness on the test split) this measures,
side by side in one process:

a. the notebook loop, reimplemented here: every generation, for each of the 20
   individuals, mask the Dense kernel with ``|w| > t``, ``set_weights``, ``model.evaluate``
   on a cached test pipeline (batches of 128) and ``np.count_nonzero``; then the notebook's
   elites / averaged children / in-place random resets (30 generations = 600 evaluations);
b. evoprune's ``run_search`` (paper algorithm, same population and generations) with the
   fast evaluator, and the fast evaluator's own per-evaluation and setup times;
c. every threshold evaluated in (a) re-scored by evoprune (``PruningProblem`` and
   ``KerasEvaluator.correct_counts``): correct counts, nonzero counts and fitness compared.

Run: ``python -m benchmarks.evaluator [--data-dir DIR] [--cache-dir DIR] [--quick]``.
"""

from __future__ import annotations

import random
import sys
import time
from itertools import permutations

import numpy as np  # noqa: E402  (after common, which quiets TensorFlow)

from benchmarks import common

POPULATION, GENERATIONS, QUICK_GENERATIONS = 20, 30, 2
MIN_THRESHOLD, SEED, BATCH = 1e-6, 0, 128


class Individual:
    """The notebook's individual: a threshold and the last evaluation of it."""

    def __init__(self, threshold) -> None:
        self.threshold, self.acc, self.w_size, self.fitness = threshold, 0.0, np.inf, 0.0


def notebook_test_pipeline(split):
    """The notebook's evaluation pipeline, built once: normalize, batch 128, cache, prefetch."""
    import tensorflow as tf

    images, labels = split
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int64)))
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH).cache().prefetch(tf.data.AUTOTUNE)


def notebook_loop(model, layer_index: int, ds_test, generations: int) -> dict:
    """The notebook's EA, evaluating every individual of every generation with ``model.evaluate``.

    Returns timings, the baseline and one record ``(threshold, nonzero, accuracy, fitness)``
    per evaluation. The model's weights are restored afterwards.
    """
    layer = model.layers[layer_index]
    orig_w, orig_b = (np.array(w) for w in layer.get_weights())

    def eval_phenotype():
        res = model.evaluate(ds_test, verbose=0, return_dict=True)
        return np.count_nonzero(np.asarray(layer.kernel)), res["accuracy"]

    def fitness(size, acc, base_size, base_acc):
        return (acc / base_acc) ** 2 + (1 - size / base_size) / 2

    (base_size, base_acc), warmup_s = common.timed(eval_phenotype)  # first call traces
    max_t = max(abs(np.amin(orig_w)), abs(np.amax(orig_w)))
    start_values = np.logspace(MIN_THRESHOLD, max_t, POPULATION - 1, base=16)
    population = [Individual(t) for t in [MIN_THRESHOLD] + list(start_values / max(start_values) * max_t)]
    random.seed(SEED)
    np.random.seed(SEED)
    records, eval_times = [], []
    loop_start = time.perf_counter()
    try:
        for _ in range(generations):
            n = len(population)
            n_children, n_randoms = n // 4, n // 20
            n_elites = n - n_children - n_randoms
            pairs = random.sample(list(permutations(population, 2)), n_children)
            children = [Individual((a.threshold + b.threshold) / 2) for a, b in pairs]
            for one in population:
                t0 = time.perf_counter()
                weights = orig_w.copy()
                weights = weights * (abs(weights) > one.threshold)
                layer.set_weights([weights, orig_b])
                one.w_size, one.acc = eval_phenotype()
                one.fitness = fitness(one.w_size, one.acc, base_size, base_acc)
                eval_times.append(time.perf_counter() - t0)
                records.append((float(one.threshold), int(one.w_size), float(one.acc), float(one.fitness)))
            elites = sorted(population, key=lambda ind: ind.fitness, reverse=True)[:n_elites]
            randoms = random.sample(population, n_randoms)
            for one in randoms:  # in place, as the notebook does (it may alias an elite)
                one.threshold = np.random.uniform(MIN_THRESHOLD, max_t)
            population = elites + children + randoms
        loop_s = time.perf_counter() - loop_start
    finally:
        layer.set_weights([orig_w, orig_b])
    return dict(
        base_size=int(base_size),
        base_acc=float(base_acc),
        warmup_s=warmup_s,
        loop_s=loop_s,
        eval_times=eval_times,
        records=records,
    )


def fast_eval_timing(model, split, repeats: int) -> dict:
    """Setup (feature computation) and per-evaluation time of the fast ``KerasEvaluator``."""
    from evoprune.scoring.evaluate import KerasEvaluator
    from evoprune.search.encodings import ThresholdEncoding

    evaluator, setup_s = common.timed(KerasEvaluator, model, split, "fast", BATCH)
    encoding = ThresholdEncoding(evaluator.kernel, MIN_THRESHOLD)
    genomes = [[t] for t in np.linspace(MIN_THRESHOLD, encoding.high, POPULATION)]
    masks = encoding.decode(genomes)[0]
    evaluator.correct_counts(masks)  # warm-up
    counts = common.repeat_time(lambda: evaluator.correct_counts(masks), repeats)

    def full_eval():  # decode + count correct + count nonzero, what one evaluation needs
        m = encoding.decode(genomes)[0]
        return evaluator.correct_counts(m), m.reshape(len(m), -1).sum(axis=1)

    whole = common.repeat_time(full_eval, repeats)
    return dict(
        setup_s=setup_s,
        per_eval_s=common.median(counts) / POPULATION,
        per_eval_full_s=common.median(whole) / POPULATION,
    )


def check_identical(config, prepared, nb: dict) -> dict:
    """Re-scores every threshold of the notebook loop with evoprune's fast path and compares."""
    from evoprune.experiments.assemble import make_problem

    problem = make_problem(config, prepared)
    n = problem.evaluator.n
    thresholds = [[r[0]] for r in nb["records"]]
    nb_size = np.array([r[1] for r in nb["records"]])
    nb_correct = np.array([int(round(r[2] * n)) for r in nb["records"]])
    nb_fit = np.array([r[3] for r in nb["records"]])
    evs = problem.evaluate(thresholds)
    direct = problem.evaluator.correct_counts(problem.encoding.decode(thresholds))
    fast_correct = np.array([ev.correct for ev in evs])
    fast_fit = np.array([problem.fitness(ev) for ev in evs])
    # The notebook's fitness uses Keras' float32 accuracy; recomputed from its integer counts:
    nb_base = int(round(nb["base_acc"] * n)) / n
    nb_fit_counts = np.array(
        [(c / n / nb_base) ** 2 + (1 - s / nb["base_size"]) / 2 for c, s in zip(nb_correct, nb_size)]
    )
    order_nb, order_fast = np.argsort(-nb_fit, kind="stable"), np.argsort(-fast_fit, kind="stable")
    return dict(
        n=len(thresholds),
        distinct=len(set(r[0] for r in nb["records"])),
        base_correct=(int(round(nb["base_acc"] * n)), int(round(problem.base_accuracy * n))),
        base_size=(nb["base_size"], problem.base_nonzero),
        correct_mismatch=int((nb_correct != fast_correct).sum() + (direct != fast_correct).sum()),
        size_mismatch=int((nb_size != np.array([ev.nonzero for ev in evs])).sum()),
        fit_bitwise_mismatch=int((nb_fit != fast_fit).sum()),
        fit_max_abs=float(np.abs(nb_fit - fast_fit).max()),
        fit_counts_mismatch=int((nb_fit_counts != fast_fit).sum()),
        rank_mismatch=int((nb_fit[order_nb] != nb_fit[order_fast]).sum()),
        model_evaluations=problem.model_evaluations,
    )


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.print_header("evaluator", args)
    from evoprune.config import Config, ModelConfig, SearchConfig
    from evoprune.experiments.assemble import prepare
    from evoprune.experiments.methods.evolution import run_search
    from evoprune.models.target import build_target

    gens = QUICK_GENERATIONS if args.quick else GENERATIONS
    config = Config(
        common.data_config(args, fitness_split="test", validation_fraction=0.1),
        ModelConfig(cache_dir=args.cache_dir),
        SearchConfig(population=POPULATION, generations=gens, seed=SEED),
    ).validate()
    prepared, prep_s = common.timed(prepare, config)
    model, split = prepared.trained.model, prepared.dataset.test
    how = "loaded from cache" if prepared.trained.cached else "trained now"
    print(f"versions:  {common.library_versions()}")
    print(
        f"model:     {prepared.trained.path.name} ({how}, {prep_s:.1f} s); fitness split: test, "
        f"{len(split[1]):,} images; population {POPULATION}, {gens} generations"
    )
    sys.stdout.flush()

    nb = notebook_loop(model, build_target(model, "head").indices[-1], notebook_test_pipeline(split), gens)
    result = run_search(config, prepared)
    fast = fast_eval_timing(model, split, repeats=20 if args.quick else 100)
    check = check_identical(config, prepared, nb)

    s = result.summary
    nb_eval = common.median(nb["eval_times"])
    n_nb = len(nb["eval_times"])
    common.print_table(
        "Per evaluation (one individual, median)",
        ["", "notebook loop", "evoprune fast", "ratio"],
        [
            [
                "correct_counts only",
                common.fmt_s(nb_eval),
                common.fmt_s(fast["per_eval_s"]),
                common.ratio(nb_eval, fast["per_eval_s"]),
            ],
            [
                "decode + counts + nonzero",
                common.fmt_s(nb_eval),
                common.fmt_s(fast["per_eval_full_s"]),
                common.ratio(nb_eval, fast["per_eval_full_s"]),
            ],
        ],
    )
    search_s = s["search_time_s"]
    common.print_table(
        f"Whole run: population {POPULATION}, {gens} generations",
        ["", "notebook loop", "evoprune run_search", "ratio"],
        [
            [
                "search loop",
                common.fmt_s(nb["loop_s"]),
                common.fmt_s(search_s),
                common.ratio(nb["loop_s"], search_s),
            ],
            [
                "+ one-off setup",
                common.fmt_s(nb["loop_s"] + nb["warmup_s"]),
                common.fmt_s(search_s + s["setup_time_s"]),
                common.ratio(nb["loop_s"] + nb["warmup_s"], search_s + s["setup_time_s"]),
            ],
            ["individuals scored", n_nb, s["evaluations"], ""],
            ["model evaluations", n_nb, s["model_evaluations"], ""],
            [
                "time per model evaluation",
                common.fmt_s(nb["loop_s"] / n_nb),
                common.fmt_s(search_s / max(s["model_evaluations"], 1)),
                "",
            ],
        ],
    )
    print(
        "  setup: notebook = first model.evaluate (tracing + filling the cache) "
        f"{common.fmt_s(nb['warmup_s'])}; evoprune = make_problem + toolbox "
        f"{common.fmt_s(s['setup_time_s'])} (fast features alone: {common.fmt_s(fast['setup_s'])})"
    )
    print("  evoprune memoizes: genomes (and thresholds keeping the same weights) are scored once,")
    print("  and elites are never re-scored; the notebook re-evaluates all 20 every generation.")
    common.print_table(
        f"Identical fitness: the notebook's {check['n']} evaluations "
        f"({check['distinct']} distinct thresholds) re-scored by evoprune",
        ["check", "mismatches"],
        [
            ["baseline correct (notebook, evoprune)", f"{check['base_correct']}"],
            ["baseline nonzero (notebook, evoprune)", f"{check['base_size']}"],
            ["correct counts", check["correct_mismatch"]],
            ["nonzero counts", check["size_mismatch"]],
            ["fitness, notebook from counts vs evoprune", check["fit_counts_mismatch"]],
            ["fitness ranking (sorted order)", check["rank_mismatch"]],
            ["fitness, notebook float32 accuracy vs evoprune", check["fit_bitwise_mismatch"]],
            ["  max |difference|", f"{check['fit_max_abs']:.3g}"],
        ],
    )
    nb_best = max(record[3] for record in nb["records"])
    common.print_table(
        "Best individual (same model, same split)",
        ["", "notebook loop", "evoprune"],
        [
            ["best fitness", f"{nb_best:.6f}", f"{s['best']['fitness']:.6f}"],
            ["evaluations spent", n_nb, s["evaluations"]],
        ],
    )
    ok = (
        check["correct_mismatch"] == 0
        and check["size_mismatch"] == 0
        and check["fit_counts_mismatch"] == 0
        and check["rank_mismatch"] == 0
        and check["base_correct"][0] == check["base_correct"][1]
        and check["fit_max_abs"] < 1e-6
    )
    print("\nidentical correct counts, nonzero counts and fitness:", "YES" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
