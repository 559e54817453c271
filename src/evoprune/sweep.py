"""Exact Pareto front of the one-threshold genome: every distinct mask scored in one sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evoprune.metrics import pareto_front

if TYPE_CHECKING:
    from evoprune.evaluate import KerasEvaluator

MASK_CHUNK = 256  # masks built at once when the evaluator scores them (a multiple of FAST_CHUNK)


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

    Args:
        magnitudes: sorted ``|w|`` from :func:`prune_steps`.
        steps: numbers of pruned weights from :func:`prune_steps`.

    Returns:
        float64 thresholds: ``|w|`` of the ``k``-th smallest weight for ``k > 0``; for
        ``k = 0``, 0.0, or -1.0 when some weight is exactly zero (0.0 would prune it).
    """
    mags = np.asarray(magnitudes, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    out = np.zeros(len(steps), dtype=np.float64)
    if mags.size and mags[0] == 0:
        out[steps == 0] = -1.0
    out[steps > 0] = mags[steps[steps > 0] - 1]
    return out


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
    return _table(thresholds, steps, magnitudes.size, _score(evaluator, thresholds), evaluator.n,
                  np.ones(len(steps), dtype=bool))


def _rows_state(logits: np.ndarray, errors: np.ndarray, labels: np.ndarray,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top class, lower bound of its logit and "hit not certain" flag of ``rows``.

    The hit is not certain when the label is the top and another logit's interval reaches
    the top's lower bound, or the label is not the top and its own interval reaches it.
    """
    sub, err = logits[:, rows], errors[:, rows]
    cols = np.arange(sub.shape[1])
    top = sub.argmax(axis=0)
    low = sub[top, cols] - err[top, cols]
    high = sub + err
    label_high = high[labels, cols]
    high[top, cols] = -np.inf
    unsure = np.where(top == labels, high.max(axis=0), label_high) >= low
    return top, low, unsure


def exact_sweep(evaluator: KerasEvaluator) -> pd.DataFrame:
    """Accuracy of every distinct threshold mask in one incremental pass; equals brute force.

    Weights are removed in order of increasing ``|w|``; removing ``kernel[i, j]`` changes
    only column ``j`` of the logits, so only rows whose argmax was ``j``, whose column ``j``
    may now reach their top logit, or that were not certain are re-ranked. Logits are kept
    in float64, where products of float32 numbers are exact.

    Exactness: in any summation order, the evaluator's float32 logit of class ``j`` is
    within ``gamma_{F+1} * A_j`` of the real one, ``A_j = sum_i |f_i w_ij| + |b_j|`` over
    kept weights (tracked per row too); the float64 logits are within a far smaller pad.
    Every mask where some row's hit is not certain under these intervals is re-scored with
    ``evaluator.correct_counts`` itself (``rechecked``).

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
    abs_feats, k64, b64 = np.abs(feats), kernel.astype(np.float64), bias.astype(np.float64)
    logits = np.ascontiguousarray(k64.T @ feats + b64[:, None])              # (C, N)
    mass = np.ascontiguousarray(np.abs(k64).T @ abs_feats + np.abs(b64)[:, None])
    g32 = _gamma(n_in + 1, 2.0 ** -24)
    # pad: float64 rounding of logits, masses and bounds, plus float32 underflow
    pad = 8.0 * _gamma(2 * n_in + 2, 2.0 ** -53) * mass.max(axis=0) + (n_in + 2) * 2.0 ** -149
    errors = g32 * mass + pad
    labels = np.asarray(evaluator.labels)
    top, low, unsure = _rows_state(logits, errors, labels, np.arange(logits.shape[1]))
    hits = top == labels
    correct, n_unsure = int(hits.sum()), int(unsure.sum())
    counts, flagged = np.zeros(len(steps), dtype=np.int64), np.zeros(len(steps), dtype=bool)
    counts[0], flagged[0] = correct, n_unsure > 0
    step_at = {int(k): s for s, k in enumerate(steps)}
    for position, flat_index in enumerate(order, start=1):
        i, j = divmod(int(flat_index), n_out)
        if k64[i, j] != 0.0:
            logits[j] -= feats[i] * k64[i, j]
            mass[j] -= abs_feats[i] * abs(k64[i, j])
            errors[j] = g32 * mass[j] + pad
            rows = np.flatnonzero((top == j) | unsure | (logits[j] + errors[j] >= low))
            new_top, new_low, new_unsure = _rows_state(logits, errors, labels[rows], rows)
            new_hits = new_top == labels[rows]
            correct += int(new_hits.sum()) - int(hits[rows].sum())
            n_unsure += int(new_unsure.sum()) - int(unsure[rows].sum())
            top[rows], low[rows], unsure[rows], hits[rows] = new_top, new_low, new_unsure, new_hits
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
        :func:`~evoprune.metrics.pareto_front` of :func:`exact_sweep`, by nonzero.
    """
    return pareto_front(exact_sweep(evaluator))
