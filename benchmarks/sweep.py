"""Exact front of the one-threshold genome: incremental sweep vs brute force, side by side.

All of these compute the accuracy of every distinct mask a threshold can reach (at most
weights + 1) on the same split of the same model, and must agree exactly:

* incremental: ``evoprune.scoring.sweep.exact_sweep`` (weights removed in magnitude order, each
  row's logits followed in compiled float64 code, rows split over the cores; also timed
  on one thread, and its first call in the process, which loads or compiles the code);
* brute force, batched: every mask scored by the fast evaluator, 64 masks per product;
* brute force, per threshold: every mask scored by the fast evaluator one at a time, as a
  search that re-evaluates every threshold would.

Each method is timed ``repeats`` times in a row (median reported). The incremental pass
uses one thread per core; after a BLAS call, OpenBLAS threads spin for up to ~0.1 s and
take those cores, which is why the timings are not interleaved.

Run: ``python -m benchmarks.sweep [--data-dir DIR] [--cache-dir DIR] [--quick]``
"""

from __future__ import annotations

from benchmarks import common


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.print_header("sweep", args)
    import numpy as np

    from evoprune.config import ModelConfig
    from evoprune.data.dataset import load_dataset
    from evoprune.models.training import load_or_train
    from evoprune.scoring.evaluate import KerasEvaluator
    from evoprune.scoring.sweep import brute_force_sweep, exact_sweep
    from evoprune.search.encodings import ThresholdEncoding

    dataset = load_dataset(common.data_config(args))
    trained = load_or_train(dataset, ModelConfig(epochs=1 if args.quick else 5, cache_dir=args.cache_dir), 0)
    evaluator = KerasEvaluator(trained.model, dataset.validation, "fast")
    table, first = common.timed(exact_sweep, evaluator)
    repeats = 1 if args.quick else 7
    incremental = common.repeat_time(lambda: exact_sweep(evaluator), repeats)
    one_thread = common.repeat_time(lambda: exact_sweep(evaluator, threads=1), repeats)
    batched = common.repeat_time(lambda: brute_force_sweep(evaluator), repeats)
    brute = brute_force_sweep(evaluator)
    columns = ["threshold", "nonzero", "correct", "accuracy"]
    same = table[columns].equals(brute[columns])
    same = same and exact_sweep(evaluator, threads=1)[columns].equals(table[columns])
    enc = ThresholdEncoding(evaluator.kernel)
    masks = enc.decode([[t] for t in table["threshold"]])[0]
    one_by_one, per_threshold = common.timed(
        lambda: np.array([evaluator.correct_counts(m[None])[0] for m in masks])
    )
    same = same and np.array_equal(one_by_one, table["correct"].to_numpy())
    inc = common.median(incremental)
    rows = [
        ("incremental (exact_sweep)", common.fmt_s(inc), "1.0x"),
        (
            "incremental, one thread",
            common.fmt_s(common.median(one_thread)),
            common.ratio(common.median(one_thread), inc),
        ),
        ("incremental, first call (loads compiled code)", common.fmt_s(first), common.ratio(first, inc)),
        (
            "brute force, batched",
            common.fmt_s(common.median(batched)),
            common.ratio(common.median(batched), inc),
        ),
        ("brute force, per threshold", common.fmt_s(per_threshold), common.ratio(per_threshold, inc)),
    ]
    print(
        f"split: validation, {evaluator.n:,} images; {len(table):,} distinct masks; "
        f"{int(table['rechecked'].sum())} re-scored by the incremental pass"
    )
    common.print_table(f"Exact front (median of {repeats})", ["method", "time", "vs incremental"], rows)
    print(
        f"\nbrute force, batched / incremental: {common.ratio(common.median(batched), inc)} "
        f"(one thread: {common.ratio(common.median(batched), common.median(one_thread))}); target 20x"
    )
    print(f"identical tables: {'YES' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
