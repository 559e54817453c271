"""Model preparation: training the notebook's CNN from scratch vs loading it from evoprune's cache.

Both calls are ``evoprune.models.training.load_or_train`` with the same dataset, config and seed in a
fresh cache directory (under ``--cache-dir``): the first trains (5 epochs, notebook
settings) and saves, the second loads the cached ``.keras`` file. A third call checks the
loaded model's weights equal the trained ones.

Run: ``python -m benchmarks.training [--data-dir DIR] [--cache-dir DIR] [--quick]``
(``--quick`` trains 1 epoch).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile

import numpy as np  # noqa: E402  (after common, which quiets TensorFlow)

from benchmarks import common

SEED = 0


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.print_header("training", args)
    from evoprune.config import ModelConfig
    from evoprune.data.dataset import load_dataset
    from evoprune.models.training import accuracy, load_or_train

    epochs = 1 if args.quick else 5
    dataset, load_s = common.timed(load_dataset, common.data_config(args))
    # A fresh directory inside the cache dir, so the first call trains whatever is cached already.
    fresh = tempfile.mkdtemp(prefix="training-bench-", dir=args.cache_dir)
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)
    cfg = ModelConfig(epochs=epochs, cache_dir=fresh)
    print(f"versions:  {common.library_versions()}")
    print(
        f"dataset:   {dataset.name}: {len(dataset.train[1]):,} train / {len(dataset.validation[1]):,} "
        f"validation / {len(dataset.test[1]):,} test images (loaded in {load_s:.2f} s); "
        f"{epochs} epoch(s), seed {SEED}"
    )
    sys.stdout.flush()

    trained, train_s = common.timed(load_or_train, dataset, cfg, SEED)
    cached, cached_s = common.timed(load_or_train, dataset, cfg, SEED)
    if trained.cached or not cached.cached:
        raise SystemExit(f"expected train then cache hit; got cached={trained.cached}, {cached.cached}")
    same = all(np.array_equal(a, b) for a, b in zip(trained.model.get_weights(), cached.model.get_weights()))
    acc = accuracy(cached.model, dataset.test)

    common.print_table(
        "load_or_train (same dataset, config, seed and cache dir)",
        ["", "wall time", "ratio to cached"],
        [
            [
                f"1st call: train {epochs} epoch(s) + save",
                common.fmt_s(train_s),
                common.ratio(train_s, cached_s),
            ],
            [
                "  of which model.fit (train_time_s)",
                common.fmt_s(trained.train_time_s),
                common.ratio(trained.train_time_s, cached_s),
            ],
            ["2nd call: load cached .keras", common.fmt_s(cached_s), "1.0x"],
        ],
    )
    print(
        f"\ncached model file: {cached.path.name} ({cached.path.stat().st_size / 1024:.0f} KiB); "
        f"weights identical to the trained model: {'YES' if same else 'NO'}; test accuracy {acc:.4f}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
