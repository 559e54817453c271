"""Exact front of the one-threshold genome: incremental sweep vs brute force, side by side.

All three compute the accuracy of every distinct mask a threshold can reach (at most
weights + 1) on the same split of the same model, and must agree exactly:

* incremental: ``evoprune.sweep.exact_sweep`` (weights removed in magnitude order, logits
  updated one column at a time, uncertain masks re-scored);
* brute force, batched: every mask scored by the fast evaluator in batches;
* brute force, per threshold: every mask scored by the fast evaluator one at a time, as a
  search that re-evaluates every threshold would.

Run: ``python -m benchmarks.sweep [--data-dir DIR] [--cache-dir DIR] [--quick]``
"""

from __future__ import annotations

from benchmarks import common


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.print_header("sweep", args)
    import numpy as np

    from evoprune.config import ModelConfig
    from evoprune.data import load_dataset
    from evoprune.encodings import ThresholdEncoding
    from evoprune.evaluate import KerasEvaluator
    from evoprune.model import load_or_train
    from evoprune.sweep import brute_force_sweep, exact_sweep

    dataset = load_dataset(common.data_config(args))
    trained = load_or_train(dataset, ModelConfig(epochs=1 if args.quick else 5,
                                                 cache_dir=args.cache_dir), 0)
    evaluator = KerasEvaluator(trained.model, dataset.validation, "fast")
    repeats = 1 if args.quick else 3
    incremental = common.repeat_time(lambda: exact_sweep(evaluator), repeats)
    batched = common.repeat_time(lambda: brute_force_sweep(evaluator), repeats)
    table, brute = exact_sweep(evaluator), brute_force_sweep(evaluator)
    columns = ["threshold", "nonzero", "correct", "accuracy"]
    same = table[columns].equals(brute[columns])
    enc = ThresholdEncoding(evaluator.kernel)
    masks = enc.decode([[t] for t in table["threshold"]])[0]
    one_by_one, per_threshold = common.timed(
        lambda: np.array([evaluator.correct_counts(m[None])[0] for m in masks]))
    same = same and np.array_equal(one_by_one, table["correct"].to_numpy())
    inc = common.median(incremental)
    rows = [
        ("incremental (exact_sweep)", common.fmt_s(inc), "1.0x"),
        ("brute force, batched", common.fmt_s(common.median(batched)),
         common.ratio(common.median(batched), inc)),
        ("brute force, per threshold", common.fmt_s(per_threshold), common.ratio(per_threshold, inc)),
    ]
    print(f"split: validation, {evaluator.n:,} images; {len(table):,} distinct masks; "
          f"{int(table['rechecked'].sum())} re-scored by the incremental pass")
    common.print_table("Exact front (median of repeats)", ["method", "time", "vs incremental"], rows)
    print(f"identical tables: {'YES' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
