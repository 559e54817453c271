"""Build a small, deterministic, stratified MNIST sample from the full MNIST IDX files.

Example:
    python scripts/build_mnist_sample.py --source /path/to/mnist \
        --out src/evoprune/datasets/mnist_sample --train-per-class 1000 --test-per-class 200 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from evoprune.data.idx import load_idx_dir, write_idx
from evoprune.errors import DataError

NUM_CLASSES = 10
OUTPUT_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``per_class`` indices of each class 0..9 without replacement, sorted ascending.

    Args:
        labels: 1-D array of class labels in 0..9.
        per_class: How many samples to draw from each class.
        rng: Random generator; classes are drawn in order 0..9.

    Returns:
        Sorted int64 indices, ``10 * per_class`` of them.

    Raises:
        DataError: If a class has fewer than ``per_class`` samples.
    """
    picked = []
    for cls in range(NUM_CLASSES):
        candidates = np.flatnonzero(labels == cls)
        if candidates.size < per_class:
            raise DataError(
                f"class {cls} too small for the sample. Expected at least {per_class} samples. "
                f"Received: {candidates.size}."
            )
        picked.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def build_sample(source: Path, out: Path, train_per_class: int, test_per_class: int, seed: int) -> list[Path]:
    """Write the stratified sample's four gzip IDX files into ``out``.

    Args:
        source: Directory with the full MNIST IDX files.
        out: Output directory (created if missing).
        train_per_class: Training images per class.
        test_per_class: Test images per class.
        seed: Seed of the numpy Generator used for the draw.

    Returns:
        The written file paths.
    """
    splits = load_idx_dir(source)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = splits[split]
        idx = stratified_indices(labels, per_class, rng)
        image_name, label_name = OUTPUT_NAMES[split]
        write_idx(out / image_name, images[idx])
        write_idx(out / label_name, labels[idx])
        written += [out / image_name, out / label_name]
        counts = np.bincount(labels[idx], minlength=NUM_CLASSES)
        print(f"{split}: {idx.size} images ({per_class} per class; class counts {counts.tolist()})")
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="directory with the full MNIST IDX files")
    parser.add_argument("--out", type=Path, required=True, help="output directory for the sample")
    parser.add_argument("--train-per-class", type=int, default=1000, help="training images per class")
    parser.add_argument("--test-per-class", type=int, default=200, help="test images per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numpy random Generator")
    args = parser.parse_args(argv)
    if args.train_per_class < 1 or args.test_per_class < 1:
        parser.error("--train-per-class and --test-per-class must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        The process exit status.
    """
    args = parse_args(argv)
    try:
        written = build_sample(args.source, args.out, args.train_per_class, args.test_per_class, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = 0
    for path in written:
        size = path.stat().st_size
        total += size
        print(f"  {path.name}: {size} bytes")
    print(f"total: {total} bytes ({total / 1e6:.2f} MB) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
