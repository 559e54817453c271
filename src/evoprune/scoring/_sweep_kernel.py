"""Compiled inner loop of the exact sweep: one row's logits followed through every removal."""

from __future__ import annotations

import numpy as np
from numba import njit

SURE_MISS, SURE_HIT, UNSURE = 0, 1, 2


def compiled(function):
    """Compiled without the GIL, cached on disk where numba finds a writable place."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:  # no writable cache location: compile in memory, once per process
        return njit(nogil=True)(function)


@compiled
def _rank(logits):
    """First index of the largest logit, its value, and the largest of the others."""
    top, best = 0, logits[0]
    for k in range(1, logits.shape[0]):
        if logits[k] > best:
            top, best = k, logits[k]
    second = -np.inf
    for k in range(logits.shape[0]):
        if k != top and logits[k] > second:
            second = logits[k]
    return top, best, second


@compiled
def _status(top, best, second, gap, label):
    if second >= best - gap:
        return UNSURE
    return SURE_HIT if top == label else SURE_MISS


@compiled
def sweep_rows(
    features, logits0, gaps, labels, inputs, classes, weights, visible_at, lo, hi, hits_delta, unsure_delta
):
    """Follows rows ``lo:hi`` through the removals and records where their status changes.

    Args:
        features: ``(rows, inputs)`` float64.
        logits0: ``(rows, classes)`` float64 logits of the unpruned head.
        gaps: ``(rows,)`` float64: a row is sure when its top logit beats every other by more.
        labels: ``(rows,)`` int64.
        inputs, classes, weights: removal ``p`` subtracts ``features[r, inputs[p]] *
            weights[p]`` from logit ``classes[p]`` (unsigned indices, nonzero weights).
        visible_at: ``(removals,)`` int64: the first step whose mask includes removal ``p``.
        lo, hi: the rows to follow.
        hits_delta, unsure_delta: ``(steps + 1,)`` int64, added to in place: at each step,
            the change in sure hits and in unsure rows (their cumulative sums are counts).
    """
    n_classes = logits0.shape[1]
    logits = np.empty(n_classes)
    for r in range(lo, hi):
        for k in range(n_classes):
            logits[k] = logits0[r, k]
        gap, label, row = gaps[r], labels[r], features[r]
        top, best, second = _rank(logits)
        status = _status(top, best, second, gap, label)
        hits_delta[0] += status == SURE_HIT
        unsure_delta[0] += status == UNSURE
        for p in range(weights.shape[0]):
            j = classes[p]
            value = logits[j] - row[inputs[p]] * weights[p]
            logits[j] = value
            # ``second`` bounds the other classes from above. Only a change that may bring
            # two classes within ``gap`` needs a new ranking; an unsure row that may have
            # become sure is left unsure (its masks are re-scored), which is only cautious.
            if j == top:
                best = value
                if value - gap > second:
                    if status == UNSURE:
                        new = SURE_HIT if top == label else SURE_MISS
                        s = visible_at[p]
                        hits_delta[s] += new == SURE_HIT
                        unsure_delta[s] -= 1
                        status = new
                    continue
            elif value > second:
                second = value
                if value < best - gap:
                    continue
            else:
                continue
            top, best, second = _rank(logits)
            new = _status(top, best, second, gap, label)
            if new != status:
                s = visible_at[p]
                hits_delta[s] += (new == SURE_HIT) - (status == SURE_HIT)
                unsure_delta[s] += (new == UNSURE) - (status == UNSURE)
                status = new
