"""Synthetic image classification data of any shape, written as .npz, IDX files or an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evoprune.data.idx import write_idx


def arrays(
    n: int, shape: tuple[int, ...], n_classes: int, seed: int = 0, dtype: str = "uint8"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of ``shape`` (``(H, W)`` or ``(H, W, C)``) whose mean brightness encodes the class.

    Labels cycle through ``0 .. n_classes-1`` so every class is present once ``n >= n_classes``.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    base = (labels * (200 // max(n_classes - 1, 1))).reshape(-1, *([1] * len(shape)))
    images = np.clip(base + rng.integers(0, 40, (n, *shape)), 0, 255).astype(np.uint8)
    if dtype == "float32":
        return images.astype(np.float32) / np.float32(255.0), labels.astype(np.int64)
    return images, labels.astype(np.uint8)


def write_npz(
    path: Path,
    shape: tuple[int, ...],
    n_classes: int,
    n_train: int = 30,
    n_test: int = 12,
    n_val: int = 0,
    dtype: str = "uint8",
    **replace: np.ndarray,
) -> Path:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (and ``x_val, y_val`` when ``n_val``).

    Keyword arguments replace (or, given ``None``, drop) arrays, to make bad files.
    """
    out = {}
    for key, n, seed in (("train", n_train, 0), ("test", n_test, 1), ("val", n_val, 2)):
        if n:
            out[f"x_{key}"], out[f"y_{key}"] = arrays(n, shape, n_classes, seed, dtype)
    out.update(replace)
    np.savez(path, **{k: v for k, v in out.items() if v is not None})
    return path


def write_idx_dir(
    directory: Path, shape: tuple[int, ...], n_classes: int, n_train: int = 30, n_test: int = 12
) -> Path:
    """The four MNIST-named IDX files (gzip) holding images of ``shape`` and ``n_classes`` labels."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = arrays(n, shape, n_classes, seed)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def write_folder(
    directory: Path,
    size: tuple[int, int],
    classes: tuple[str, ...],
    per_class: int = 3,
    mode: str = "L",
    suffix: str = ".png",
) -> Path:
    """``train/<class>/`` and ``test/<class>/`` image files; ``size`` is ``(W, H)``, ``mode`` a PIL mode."""
    from PIL import Image

    rng = np.random.default_rng(0)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            class_dir = directory / split / name
            class_dir.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 40, (size[1], size[0], *channels)) + 50 * label
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(class_dir / f"{i:03d}{suffix}")
    return directory
