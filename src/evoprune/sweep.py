"""Exact Pareto front of the one-threshold genome: every distinct mask scored in one sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evoprune.metrics import pareto_front

if TYPE_CHECKING:
    from evoprune.evaluate import KerasEvaluator

MASK_CHUNK = 256  # masks built at once when the evaluator scores them (a multiple of FAST_CHUNK)
SAFETY = 4.0  # margin multiplier on the rigorous rounding bound


def _gamma(terms: int, unit: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``: relative bound of an ``n``-term float sum."""
    return terms * unit / (1.0 - terms * unit)


def prune_steps(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order of pruning and the distinct masks a threshold can reach.

    Args:
        kernel: the pruned layer's kernel.

    Returns:
        ``order``: flat indices of the kernel by increasing ``|w|`` (stable);
        ``magnitudes``: ``|w|`` in that order; ``steps``: the numbers ``k`` of pruned
        weights that a threshold can give (0, then the end of each group of equal ``|w|``).
    """
    flat = np.abs(np.asarray(kernel)).ravel()
    order = np.argsort(flat, kind="stable")
    magnitudes = flat[order]
    ends = np.flatnonzero(np.diff(magnitudes) != 0) + 1
    steps = np.unique(np.concatenate([[0], ends, [flat.size]])).astype(np.int64)
    return order, magnitudes, steps


def step_thresholds(magnitudes: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Smallest threshold giving each step's mask under ``|w| <= t`` pruning.

    Step ``k > 0`` gets ``|w|`` of its ``k``-th smallest weight; step 0 gets 0.0, or -1.0
    when some weight is exactly zero (a threshold of 0 would prune it).
    """
    mags = np.asarray(magnitudes, dtype=np.float64)
    first = 0.0 if mags.size == 0 or mags[0] > 0 else -1.0
    return np.where(steps > 0, mags[np.maximum(steps - 1, 0)] if mags.size else 0.0, first)


def _score(evaluator: KerasEvaluator, thresholds: np.ndarray) -> np.ndarray:
    """Correct predictions of each threshold's mask, scored by ``evaluator.correct_counts``."""
    abs_kernel = np.abs(np.asarray(evaluator.kernel))
    shape = (-1,) + (1,) * abs_kernel.ndim
    out = [evaluator.correct_counts(abs_kernel[None] > thresholds[i:i + MASK_CHUNK].reshape(shape))
           for i in range(0, len(thresholds), MASK_CHUNK)]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def _table(thresholds: np.ndarray, steps: np.ndarray, size: int, correct: np.ndarray, n: int,
           rechecked: np.ndarray) -> pd.DataFrame:
    """One row per distinct mask, in the column order shared by both sweeps."""
    return pd.DataFrame({
        "threshold": thresholds.astype(np.float64),
        "pruned": steps.astype(np.int64),
        "nonzero": (size - steps).astype(np.int64),
        "correct": correct.astype(np.int64),
        "accuracy": correct / float(n),
        "rechecked": rechecked.astype(bool),
    })


def brute_force_sweep(evaluator: KerasEvaluator) -> pd.DataFrame:
    """Scores every distinct threshold mask with ``evaluator.correct_counts`` (batched).

    Args:
        evaluator: a :class:`~evoprune.evaluate.KerasEvaluator` (or any object with
            ``kernel``, ``n`` and ``correct_counts``).

    Returns:
        One row per distinct mask, ``pruned`` ascending: ``threshold``, ``pruned``,
        ``nonzero``, ``correct``, ``accuracy`` and ``rechecked`` (always True here).
    """
    _, magnitudes, steps = prune_steps(evaluator.kernel)
    thresholds = step_thresholds(magnitudes, steps)
    correct = _score(evaluator, thresholds)
    return _table(thresholds, steps, magnitudes.size, correct, evaluator.n,
                  np.ones(len(steps), dtype=bool))


def _rows_state(logits: np.ndarray, rows: np.ndarray,
                tol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top class, top logit and "near tie" flag of ``rows`` (columns of ``logits``)."""
    sub = logits[:, rows]
    cols = np.arange(sub.shape[1])
    top = sub.argmax(axis=0)
    top_value = sub[top, cols]
    sub[top, cols] = -np.inf
    unsure = top_value - sub.max(axis=0) <= tol[rows]
    return top, top_value, unsure


def exact_sweep(evaluator: KerasEvaluator) -> pd.DataFrame:
    """Accuracy of every distinct threshold mask in one incremental pass; equals brute force.

    Weights are removed in order of increasing ``|w|``; removing ``kernel[i, j]`` changes
    only column ``j`` of the logits, and only rows whose argmax was ``j``, whose new
    ``logits[:, j]`` comes near their top logit, or that were already near a tie are
    re-ranked. Logits are kept in float64 (products of float32 numbers are exact there).

    Exactness: the evaluator's float32 logits differ from the real ones by at most
    ``gamma_{F+1} * S`` (any summation order, ``S = max_j sum_i |f_i w_ij| + |b_j|``); the
    float64 ones by at most ``gamma_{2F+2}`` in double precision times ``S``. A row whose
    float64 top-2 margin exceeds ``SAFETY`` times twice their sum has the same argmax as the
    evaluator's. Any mask where some row is within that margin is re-scored with
    ``evaluator.correct_counts`` itself (marked ``rechecked``).

    Args:
        evaluator: a fast-mode :class:`~evoprune.evaluate.KerasEvaluator` (or any object with
            ``features``, ``kernel`` (2-D), ``bias``, ``labels``, ``n`` and ``correct_counts``).

    Returns:
        The same table as :func:`brute_force_sweep`, ``rechecked`` True only where re-scored.

    Raises:
        ValueError: the evaluator has no features (exact mode) or the kernel is not 2-D.
    """
    features = getattr(evaluator, "features", None)
    kernel = np.asarray(evaluator.kernel)
    if features is None:
        raise ValueError("exact_sweep needs an evaluator with features (mode='fast').")
    if kernel.ndim != 2:
        raise ValueError(f"exact_sweep needs a 2-D kernel. Received shape: {kernel.shape}")
    bias = np.asarray(evaluator.bias)
    if not all(np.all(np.isfinite(a)) for a in (features, kernel, bias)):
        return brute_force_sweep(evaluator)  # the rounding bound needs finite numbers
    order, magnitudes, steps = prune_steps(kernel)
    thresholds = step_thresholds(magnitudes, steps)
    n_in, n_out = kernel.shape
    feats = np.ascontiguousarray(np.asarray(features, dtype=np.float64).T)  # (F, N)
    k64, b64 = kernel.astype(np.float64), bias.astype(np.float64)
    logits = np.ascontiguousarray(k64.T @ feats + b64[:, None])              # (C, N)
    scale = (np.abs(k64).T @ np.abs(feats) + np.abs(b64)[:, None]).max(axis=0)
    err = _gamma(n_in + 1, 2.0 ** -24) + _gamma(2 * n_in + 2, 2.0 ** -53)
    tol = SAFETY * 2.0 * (err * scale + (n_in + 2) * 2.0 ** -149)  # + float32 underflow
    labels = np.asarray(evaluator.labels)
    top, top_value, unsure = _rows_state(logits, np.arange(logits.shape[1]), tol)
    hits = top == labels
    correct, n_unsure = int(hits.sum()), int(unsure.sum())
    counts = np.zeros(len(steps), dtype=np.int64)
    flagged = np.zeros(len(steps), dtype=bool)
    counts[0], flagged[0] = correct, n_unsure > 0
    step_at = {int(k): s for s, k in enumerate(steps)}
    for position, flat_index in enumerate(order, start=1):
        i, j = divmod(int(flat_index), n_out)
        if k64[i, j] != 0.0:
            column = logits[j]
            column -= feats[i] * k64[i, j]
            rows = np.flatnonzero((top == j) | unsure | (column >= top_value - tol))
            if rows.size:
                new_top, new_value, new_unsure = _rows_state(logits, rows, tol)
                new_hits = new_top == labels[rows]
                correct += int(new_hits.sum()) - int(hits[rows].sum())
                n_unsure += int(new_unsure.sum()) - int(unsure[rows].sum())
                top[rows], top_value[rows], unsure[rows], hits[rows] = (
                    new_top, new_value, new_unsure, new_hits)
        s = step_at.get(position)
        if s is not None:
            counts[s], flagged[s] = correct, n_unsure > 0
    if flagged.any():
        counts[flagged] = _score(evaluator, thresholds[flagged])
    return _table(thresholds, steps, magnitudes.size, counts, evaluator.n, flagged)


def exact_front(evaluator: KerasEvaluator) -> pd.DataFrame:
    """The exact Pareto front (accuracy up, nonzero down) of the one-threshold genome.

    Args:
        evaluator: as for :func:`exact_sweep`.

    Returns:
        :func:`~evoprune.metrics.pareto_front` of :func:`exact_sweep`, sorted by nonzero.
    """
    return pareto_front(exact_sweep(evaluator))
