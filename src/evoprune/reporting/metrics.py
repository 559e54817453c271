"""Metrics over evaluated solutions: Pareto extraction, compression, ``within(pp)``, hypervolume, IGD."""

from __future__ import annotations

import numpy as np
import pandas as pd

SLACK = 1e-12  # float noise: a loss of exactly ``pp`` points still counts as within


def compression(base_nonzero: int, nonzero: int | np.ndarray) -> float | np.ndarray:
    """Size ratio ``base_nonzero / nonzero`` (5.0 means five times fewer weights; inf at 0)."""
    with np.errstate(divide="ignore"):
        return np.float64(base_nonzero) / np.asarray(nonzero, dtype=np.float64)


def pareto_front(table: pd.DataFrame, maximize: str = "accuracy", minimize: str = "nonzero") -> pd.DataFrame:
    """Rows not dominated in (``maximize`` up, ``minimize`` down), one per objective point.

    Duplicates in objective space (many thresholds give the same mask) keep their first
    row. The result is sorted by ``minimize`` ascending.
    """
    if table.empty:
        return table.copy()
    unique = table.drop_duplicates(subset=[maximize, minimize], keep="first")
    ordered = unique.sort_values([minimize, maximize], ascending=[True, False], kind="stable")
    keep, best = [], -np.inf
    for index, value in zip(ordered.index, ordered[maximize].to_numpy()):
        if value > best:
            keep.append(index)
            best = value
    return ordered.loc[keep].reset_index(drop=True)


def _normalized(accuracy: np.ndarray | list, nonzero: np.ndarray | list, base_nonzero: int) -> np.ndarray:
    """Points ``(1 - accuracy, nonzero / base_nonzero)``: both objectives minimized."""
    if base_nonzero <= 0:
        raise ValueError(f"Expected base_nonzero > 0. Received: base_nonzero={base_nonzero!r}")
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    nz = np.asarray(nonzero, dtype=np.float64).ravel()
    if acc.shape != nz.shape:
        raise ValueError(f"Expected as many accuracies as nonzero counts. Received: {acc.size} and {nz.size}")
    return np.column_stack([1.0 - acc, nz / float(base_nonzero)])


def hypervolume(
    front_acc: np.ndarray | list,
    front_nonzero: np.ndarray | list,
    base_nonzero: int,
    ref_accuracy: float = 0.0,
    ref_nonzero: float | None = None,
) -> float:
    """Normalized hypervolume of a front (accuracy maximized, nonzero minimized).

    Points are mapped to ``(1 - accuracy, nonzero / base_nonzero)`` and measured against
    the FIXED reference point ``(1 - ref_accuracy, ref_nonzero / base_nonzero)``, never one
    derived from the front. Points outside the reference box add nothing. The value is
    divided by the box of the ideal point ``(accuracy 1, nonzero 0)``, so it lies in [0, 1]
    and the ideal point alone scores 1 (with the defaults that box has volume 1).

    Args:
        front_acc: accuracies in [0, 1] of the front's points (any points: dominated ones
            add nothing).
        front_nonzero: nonzero weights of the same points.
        base_nonzero: nonzero weights of the unpruned layer (the normalizer).
        ref_accuracy: reference accuracy (worst counted), default 0.
        ref_nonzero: reference size (worst counted), default ``base_nonzero``.

    Returns:
        The hypervolume in [0, 1]; 0.0 for an empty front or an empty box.
    """
    import moocore

    ref_nonzero = base_nonzero if ref_nonzero is None else ref_nonzero
    points = _normalized(front_acc, front_nonzero, base_nonzero)
    ref = np.array([1.0 - ref_accuracy, ref_nonzero / float(base_nonzero)], dtype=np.float64)
    box = float(np.prod(ref))
    if box <= 0 or not np.all(ref > 0):
        return 0.0
    inside = points[np.all(points < ref, axis=1)]
    if not len(inside):
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref)) / box


def igd(
    front_points: np.ndarray | list, reference_front_points: np.ndarray | list, base_nonzero: int
) -> float:
    """Inverted generational distance in the normalized space of :func:`hypervolume`.

    The mean, over the reference front's points, of the Euclidean distance to the nearest
    point of the approximation. Points are ``(accuracy, nonzero)`` pairs.

    Args:
        front_points: the approximation, shape ``(n, 2)``.
        reference_front_points: the reference (e.g. exact) front, shape ``(m, 2)``, m > 0.
        base_nonzero: nonzero weights of the unpruned layer (the normalizer).

    Returns:
        The IGD (0 when every reference point is in the approximation); inf when the
        approximation is empty.

    Raises:
        ValueError: the reference front is empty.
    """
    approx = np.asarray(front_points, dtype=np.float64).reshape(-1, 2)
    ref = np.asarray(reference_front_points, dtype=np.float64).reshape(-1, 2)
    if not len(ref):
        raise ValueError("igd needs a non-empty reference front.")
    if not len(approx):
        return float("inf")
    a = _normalized(approx[:, 0], approx[:, 1], base_nonzero)
    r = _normalized(ref[:, 0], ref[:, 1], base_nonzero)
    distances = np.sqrt(((r[:, None, :] - a[None, :, :]) ** 2).sum(axis=2))
    return float(distances.min(axis=1).mean())


def accuracy_bar(base_accuracy: float, pp: float) -> float:
    """The lowest accuracy within ``pp`` percentage points of ``base_accuracy`` (boundary included)."""
    return base_accuracy - pp / 100.0 - SLACK


def within(
    table: pd.DataFrame, base_accuracy: float, pp: float, accuracy_col: str = "accuracy"
) -> int | None:
    """Smallest ``nonzero`` among rows that lose at most ``pp`` percentage points.

    Rows qualify when ``accuracy >= base_accuracy - pp / 100`` (see :func:`accuracy_bar`).

    Returns:
        The smallest qualifying ``nonzero``, or None when no row qualifies.
    """
    if table.empty:
        return None
    ok = table[accuracy_col].to_numpy(dtype=np.float64) >= accuracy_bar(base_accuracy, pp)
    return int(table["nonzero"].to_numpy()[ok].min()) if ok.any() else None
