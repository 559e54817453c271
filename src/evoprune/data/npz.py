"""NumPy ``.npz`` data files: ``x_train, y_train, x_test, y_test`` and optional ``x_val, y_val``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from evoprune.data.arrays import (
    check_classes,
    check_counts,
    check_images,
    check_labels,
    check_same_shape,
    fail,
)

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")
_ZIP_MAGIC = b"PK"  # zip local header (PK\x03\x04) or empty archive (PK\x05\x06)
SPLIT_KEYS = {"train": ("x_train", "y_train"), "validation": ("x_val", "y_val"), "test": ("x_test", "y_test")}


def load_npz(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Loads and validates the splits of a ``.npz`` file (no pickles).

    Images are ``(n, H, W)`` or ``(n, H, W, C)``, uint8 (scaled by 1/255 when fed to a
    model) or float (fed as given); labels are integer class indices, the classes
    ``0 .. max label`` each present in train.

    Args:
        path: the ``.npz`` file.

    Returns:
        ``(splits, n_classes)``: ``splits`` maps ``train``, ``test`` and, when the file has
        ``x_val`` and ``y_val``, ``validation`` to ``(images (n, H, W, C), labels int64)``.

    Raises:
        DataError: the file is missing, not an ``.npz`` archive or holds pickled objects;
            an array is missing (or only one of ``x_val``/``y_val``); or an array fails the
            checks of :mod:`evoprune.data.arrays`. Each message names the file and the array.
    """
    path = Path(path)
    return check_arrays(_read(path), path)


def check_arrays(
    arrays: dict[str, np.ndarray], where
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Validates the arrays of an ``.npz`` file, or the same arrays given in memory.

    Args:
        arrays: ``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val``.
        where: what messages name (a file, or "the arrays given").

    Returns:
        ``(splits, n_classes)`` as :func:`load_npz`.

    Raises:
        DataError: as :func:`load_npz`.
    """
    path = where
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise fail(
            path,
            f"missing arrays. Expected {', '.join(REQUIRED)} (optional {', '.join(OPTIONAL)}). "
            f"Received: {', '.join(sorted(arrays)) or 'no arrays'}.",
        )
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise fail(
            path,
            f"incomplete validation split. Expected both x_val and y_val or neither. "
            f"Received: only {'x_val' if 'x_val' in arrays else 'y_val'}.",
        )
    splits = {}
    for split, (x_key, y_key) in SPLIT_KEYS.items():
        if x_key not in arrays:
            continue
        images = check_images(arrays[x_key], f"{path}: {x_key}")
        labels = check_labels(arrays[y_key], f"{path}: {y_key}")
        check_counts(len(images), len(labels), f"{path}: {x_key}", y_key)
        splits[split] = (images, labels)
    named = [(f"{path}: {SPLIT_KEYS[s][0]}", images) for s, (images, _) in splits.items()]
    check_same_shape(named)
    if len({images.dtype for images, _ in splits.values()}) > 1:  # uint8 beside floats
        stored = {np.asarray(arrays[SPLIT_KEYS[s][0]]).dtype for s in splits}  # float64, not float32
        raise fail(
            path,
            f"mixed image dtypes. Expected the same dtype in every split. "
            f"Received: {', '.join(sorted(str(d) for d in stored))}.",
        )
    others = [(f"{path}: {SPLIT_KEYS[s][1]}", labels) for s, (_, labels) in splits.items() if s != "train"]
    n_classes = check_classes((f"{path}: y_train", splits["train"][1]), others)
    return splits, n_classes


def check_npz_file(path: Path) -> None:
    """Checks that ``path`` is a file starting as a zip archive (``numpy.savez``); reads 4 bytes.

    Raises:
        DataError: missing, a directory, or not a zip archive; one line naming the file.
    """
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        raise fail(
            path, "cannot read data file. Expected an existing .npz file. Received: no such file."
        ) from None
    except IsADirectoryError:
        raise fail(
            path,
            "cannot read data file. Expected an .npz file. Received: a directory "
            "(--data-dir takes IDX directories and image folders).",
        ) from None
    if magic[:2] != _ZIP_MAGIC:
        raise fail(
            path,
            "not an .npz archive. Expected arrays saved with numpy.savez. "
            f"Received: a file starting with {magic!r}.",
        )


def _read(path: Path) -> dict[str, np.ndarray]:
    """All arrays of the archive, read without pickles; one-line errors naming the file."""
    check_npz_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise fail(
                path, "pickled objects are not loaded. Expected numeric arrays. Received: an object array."
            ) from None
        raise fail(
            path, f"unreadable array. Expected arrays saved with numpy.savez. Received: {_first_line(exc)}"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise fail(
            path,
            "not a readable .npz archive. Expected arrays saved with numpy.savez. "
            f"Received: {_first_line(exc)}",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
