"""Exact Pareto front of the one-threshold genome: every distinct mask scored in one sweep."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from evoprune.reporting.metrics import pareto_front
from evoprune.scoring.head import HeadScorer, gamma

MASK_CHUNK = 256  # masks built at once when the evaluator scores them (a multiple of head.CHUNK)


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


def _score(evaluator, thresholds: np.ndarray) -> np.ndarray:
    """Correct predictions of each threshold's mask, scored by ``evaluator.correct_counts``."""
    abs_kernel = np.abs(np.asarray(evaluator.kernel))
    shape = (-1,) + (1,) * abs_kernel.ndim
    out = [
        evaluator.correct_counts(abs_kernel[None] > thresholds[i : i + MASK_CHUNK].reshape(shape))
        for i in range(0, len(thresholds), MASK_CHUNK)
    ]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def _table(
    thresholds: np.ndarray, steps: np.ndarray, size: int, correct: np.ndarray, n: int, rechecked: np.ndarray
) -> pd.DataFrame:
    """One row per distinct mask, in the column order shared by both sweeps."""
    return pd.DataFrame(
        {
            "threshold": thresholds.astype(np.float64),
            "pruned": steps.astype(np.int64),
            "nonzero": (size - steps).astype(np.int64),
            "correct": correct.astype(np.int64),
            "accuracy": correct / float(n),
            "rechecked": rechecked.astype(bool),
        }
    )


def brute_force_sweep(evaluator) -> pd.DataFrame:
    """Scores every distinct threshold mask with ``evaluator.correct_counts`` (batched).

    Args:
        evaluator: a :class:`~evoprune.scoring.head.HeadScorer` or
            :class:`~evoprune.scoring.evaluate.KerasEvaluator` (any object with ``kernel``, ``n``
            and ``correct_counts``).

    Returns:
        One row per distinct mask, ``pruned`` ascending: ``threshold``, ``pruned``,
        ``nonzero``, ``correct``, ``accuracy`` and ``rechecked`` (always True here).
    """
    _, magnitudes, steps = prune_steps(evaluator.kernel)
    thresholds = step_thresholds(magnitudes, steps)
    return _table(
        thresholds,
        steps,
        magnitudes.size,
        _score(evaluator, thresholds),
        evaluator.n,
        np.ones(len(steps), dtype=bool),
    )


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): threads kept between sweeps


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _workers(rows: int) -> int:
    """Threads for the compiled pass: one per usable core, none for small splits."""
    return max(1, min(_cores(), rows // 2000))


def _pool() -> ThreadPoolExecutor:
    """A thread pool kept for the process (starting threads per sweep costs more than a sweep)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():  # a forked child gets a pool of its own
        _POOL = (os.getpid(), ThreadPoolExecutor(max(1, _cores() - 1), thread_name_prefix="evoprune-sweep"))
    return _POOL[1]


def exact_sweep(evaluator, threads: int | None = None) -> pd.DataFrame:
    """Accuracy of every distinct threshold mask in one incremental pass; equals brute force.

    Weights are removed in order of increasing ``|w|``. Each row's logits are followed in
    float64 (compiled, rows split over threads): removing ``kernel[i, j]`` subtracts
    ``f_i * w_ij`` from logit ``j``, and the row is re-ranked only when that may bring two
    classes close. The counts equal :class:`~evoprune.scoring.head.HeadScorer`'s, whose
    predictions are the canonical float64 logits' argmax: the followed logits are within
    ``gamma_{2F+2}(2^-53) * mass`` of the real ones and the canonical ones within
    ``gamma_{F+1}(2^-53) * mass``, so a row whose top logit clears the others by 8 times
    the sum of both has the same prediction in both. A mask where some row is closer than
    that (an exact tie, in practice) is re-scored by the evaluator itself (``rechecked``).

    Args:
        evaluator: a :class:`~evoprune.scoring.head.HeadScorer`, or a fast-mode
            :class:`~evoprune.scoring.evaluate.KerasEvaluator` pruning the head (its ``head``).
        threads: threads of the compiled pass (default: one per core, for large splits).

    Returns:
        The same table as :func:`brute_force_sweep`, ``rechecked`` True only where re-scored.

    Raises:
        ValueError: the evaluator does not score a Dense head on cached features.
    """

    scorer = evaluator if isinstance(evaluator, HeadScorer) else getattr(evaluator, "head", None)
    if not isinstance(scorer, HeadScorer):
        raise ValueError(
            "exact_sweep needs the fast evaluator of a Dense head (mode='fast', "
            f"layers='head'). Received: {type(evaluator).__name__}"
        )
    if not scorer.certified:
        return brute_force_sweep(scorer)  # the rounding bound needs finite numbers
    from evoprune.scoring._sweep_kernel import sweep_rows

    order, magnitudes, steps = prune_steps(scorer.kernel)
    thresholds = step_thresholds(magnitudes, steps)
    n_in, n_out = scorer.kernel.shape
    flat = scorer.kernel.ravel()[order]
    kept = flat != 0  # zero weights change nothing
    inputs, classes = np.divmod(order[kept], n_out)
    visible_at = np.searchsorted(steps, np.flatnonzero(kept) + 1).astype(np.int64)
    feats = scorer.features.astype(np.float64)  # no BLAS call here: OpenBLAS threads
    logits0 = scorer.logits64  # spin after one and slow the threads below
    gaps = 2 * 8 * gamma(2 * n_in + 2, 2.0**-53) * scorer.mass
    labels = scorer.labels
    hits = np.zeros((threads or _workers(scorer.n), len(steps) + 1), dtype=np.int64)
    unsure = np.zeros_like(hits)
    bounds = np.linspace(0, scorer.n, len(hits) + 1).astype(np.int64)
    args = (
        feats,
        logits0,
        gaps,
        labels,
        inputs.astype(np.uint32),
        classes.astype(np.uint32),
        flat[kept].astype(np.float64),
        visible_at,
    )

    def follow(t: int) -> None:
        sweep_rows(*args, bounds[t], bounds[t + 1], hits[t], unsure[t])

    others = [_pool().submit(follow, t) for t in range(1, len(hits))]
    follow(0)  # the calling thread takes a share too
    for future in others:
        future.result()
    counts = np.cumsum(hits.sum(axis=0))[: len(steps)]
    flagged = np.cumsum(unsure.sum(axis=0))[: len(steps)] > 0
    if flagged.any():
        counts[flagged] = _score(scorer, thresholds[flagged])
    return _table(thresholds, steps, magnitudes.size, counts, scorer.n, flagged)


def exact_front(evaluator) -> pd.DataFrame:
    """The exact Pareto front (accuracy up, nonzero down) of the one-threshold genome.

    Args:
        evaluator: as for :func:`exact_sweep`.

    Returns:
        :func:`~evoprune.reporting.metrics.pareto_front` of :func:`exact_sweep`, by nonzero.
    """
    return pareto_front(exact_sweep(evaluator))
