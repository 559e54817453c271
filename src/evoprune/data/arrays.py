"""Checks shared by every data source: image and label arrays, sizes and classes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evoprune.errors import DataError, plural


def fail(where: str | Path, problem: str) -> DataError:
    """A one-line DataError that starts with what is wrong (a file, or a file and an array).

    Args:
        where: the file, directory or ``file: array`` concerned.
        problem: what is wrong, in the style "Expected ... Received: ...".

    Returns:
        The DataError to raise.
    """
    return DataError(" ".join(part.strip() for part in f"{where}: {problem}".splitlines()))


def check_images(images: np.ndarray, where: str) -> np.ndarray:
    """Validates one split's images and returns them 4-D ``(n, H, W, C)``.

    Args:
        images: ``(n, H, W)`` or ``(n, H, W, C)``, uint8 (0..255, scaled by 1/255 when fed
            to a model) or float in the model's own input scale (``[0, 1]``, ``[-1, 1]``,
            standardized, ``0..255``: fed as given).
        where: names the file (and array) in errors.

    Returns:
        The images, uint8 kept as is, floats as float32, with a channel axis.

    Raises:
        DataError: wrong number of dimensions, no images, a dtype other than uint8 or
            float, or NaN or infinite values.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise fail(
            where,
            "wrong number of dimensions. Expected 3 (n, H, W) or 4 (n, H, W, C). "
            f"Received: {images.ndim} (shape {images.shape}).",
        )
    if images.shape[0] == 0:
        raise fail(where, "empty split. Expected at least 1 image. Received: 0.")
    if min(images.shape[1:]) == 0:
        raise fail(where, f"empty images. Expected every dimension >= 1. Received: shape {images.shape}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise fail(
            where,
            f"unsupported image dtype. Expected uint8 (0..255) or float. Received: dtype {images.dtype}.",
        )
    finite = np.isfinite(images)
    if not finite.all():
        index = np.unravel_index(int(np.flatnonzero(~finite.ravel())[0]), images.shape)
        raise fail(
            where,
            "non-finite pixel. Expected finite floats. "
            f"Received: {images[index]} at index {tuple(int(i) for i in index)}.",
        )
    return images.astype(np.float32, copy=False)


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Validates one split's labels and returns them int64 ``(n,)``.

    Args:
        labels: integer class indices, ``(n,)`` or ``(n, 1)``.
        where: names the file (and array) in errors.

    Returns:
        The labels as int64 of shape ``(n,)``.

    Raises:
        DataError: not 1-D, not an integer dtype, or a negative label.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise fail(where, f"wrong label shape. Expected (n,) class indices. Received: shape {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise fail(
            where,
            "non-integer labels. Expected an integer dtype (class indices 0..k-1). "
            f"Received: dtype {labels.dtype}.",
        )
    labels = labels.astype(np.int64)
    negative = np.flatnonzero(labels < 0)
    if negative.size:
        raise fail(
            where,
            "label out of range. Expected labels >= 0. "
            f"Received: {int(labels[negative[0]])} at index {int(negative[0])}.",
        )
    return labels


def check_counts(n_images: int, n_labels: int, images_where: str, labels_where: str) -> None:
    """Raises DataError naming both sources when images and labels differ in number."""
    if n_images != n_labels:
        raise fail(
            images_where,
            f"image/label count mismatch with {labels_where}. Expected equal counts. "
            f"Received: {plural(n_images, 'image')} and {plural(n_labels, 'label')}.",
        )


def check_same_shape(named: list[tuple[str, np.ndarray]]) -> tuple[int, ...]:
    """Checks that every split's images have the first split's ``(H, W, C)``.

    Args:
        named: ``(where, images)`` pairs, 4-D images; the first sets the expected shape.

    Returns:
        The common image shape ``(H, W, C)``.

    Raises:
        DataError: naming the first split whose image shape differs.
    """
    expected_where, expected = named[0][0], named[0][1].shape[1:]
    for where, images in named[1:]:
        if images.shape[1:] != expected:
            raise fail(
                where,
                f"mixed image sizes. Expected {expected} (H, W, C) as in {expected_where}. "
                f"Received: {images.shape[1:]}.",
            )
    return tuple(int(d) for d in expected)


def check_classes(train: tuple[str, np.ndarray], others: list[tuple[str, np.ndarray]]) -> int:
    """The class count (max label + 1 over all splits), with every class present in train.

    Args:
        train: ``(where, labels)`` of the training split.
        others: ``(where, labels)`` of the other splits.

    Returns:
        The number of classes.

    Raises:
        DataError: train's labels start above 0, or a class below train's largest label
            has no training image (checked first: it explains the next one), or a label of
            another split never occurs in train (naming that file and the first such label).
    """
    train_where, train_labels = train
    present = np.bincount(train_labels) > 0
    missing = np.flatnonzero(~present)
    lowest = int(train_labels.min())
    shifted = all(len(labels) == 0 or int(labels.min()) >= lowest for _, labels in others)
    if lowest > 0 and missing.size == lowest and shifted:  # 0..lowest-1 nowhere: not counted from 0
        raise fail(
            train_where,
            "labels do not start at 0. Expected class indices 0..k-1. "
            f"Received: labels {lowest}..{len(present) - 1} (subtract {lowest} to count from 0).",
        )
    if missing.size:
        raise fail(
            train_where,
            f"empty class. Expected every class 0..{len(present) - 1} in the training "
            f"split. Received: no label {int(missing[0])}.",
        )
    for where, labels in others:
        unseen = np.flatnonzero(~np.isin(labels, np.flatnonzero(present)))
        if unseen.size:
            first = int(unseen[0])
            raise fail(
                where,
                f"label out of range. Expected labels that occur in {train_where} "
                f"(0..{len(present) - 1}). Received: {int(labels[first])} at index {first} "
                f"({plural(unseen.size, 'such label')} in total).",
            )
    return len(present)
