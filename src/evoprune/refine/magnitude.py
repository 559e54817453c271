"""Iterative magnitude pruning with retraining (Han et al. 2015): the schedule, at equal budget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.errors import CheckpointError
from evoprune.refine.gradual import target_nonzero
from evoprune.refine.retrain_log import RetrainLog, mask_key
from evoprune.reporting.metrics import accuracy_bar

FIRST_KEEP = 0.5  # each accepted round keeps this share of the surviving weights ...
MAX_KEEP = 0.97  # ... and a failed round retries from the last accepted model, closer to it


def retrain_budget_epochs(config: Config) -> int:
    """The total retraining budget in epochs, the same for evolution and for magnitude pruning.

    The evolutionary pipeline (``finetune.refine = "front"``) fine-tunes at most
    ``finetune.max_points`` spread points plus a bisection over the front, each for
    ``finetune.epochs``; the front holds at most as many points as the search evaluates
    (``search.max_evaluations``, else population x (generations + 1)), so the bisection
    takes at most ``ceil(log2(evaluations))`` points. The budget is that upper bound:

        finetune.epochs x (finetune.max_points + ceil(log2(evaluations)))

    The magnitude baseline spends all of it (``budget // finetune.epochs`` rounds of
    ``finetune.epochs``), so it never gets less retraining than evolution did.
    """
    s, f = config.search, config.finetune
    evaluations = s.max_evaluations or s.population * (s.generations + 1)
    return f.epochs * (f.max_points + math.ceil(math.log2(max(evaluations, 2))))


def normalized_magnitudes(kernels: list[np.ndarray]) -> list[np.ndarray]:
    """``|w| / std(layer)`` for every kernel: Han's per-layer threshold ``q x std`` as one ranking.

    Pruning every weight whose normalised magnitude is below one quality parameter ``q``
    is Han et al.'s rule (each layer's threshold is ``q`` times the standard deviation of
    its weights); taking the ``k`` largest normalised magnitudes picks that ``q``.
    """
    return [np.abs(k) / max(float(np.std(k)), 1e-12) for k in kernels]


def prune_to(scores: list[np.ndarray], masks: list[np.ndarray], keep: int) -> list[np.ndarray]:
    """Masks that keep the ``keep`` highest-scoring weights among those ``masks`` keep."""
    flat = np.concatenate([np.where(m, s, -np.inf).ravel() for s, m in zip(scores, masks)])
    keep = int(min(max(keep, 1), int(sum(m.sum() for m in masks))))
    cut = np.partition(flat, flat.size - keep)[flat.size - keep]
    out = [m & (s >= cut) for s, m in zip(scores, masks)]
    excess = int(sum(m.sum() for m in out)) - keep  # ties at the cut: drop the last ones
    for m, s in zip(out, scores):
        if excess <= 0:
            break
        tied = np.flatnonzero((m & (s == cut)).ravel())[::-1][:excess]
        m.ravel()[tied] = False  # masks here are fresh contiguous arrays
        excess -= len(tied)
    return out


def magnitude_schedule(
    finetuner,
    kernels: list[np.ndarray],
    base_accuracy: float,
    rounds: int,
    tolerance_pp: float,
    status=lambda msg: None,
    progress=lambda done, total: None,
    log: RetrainLog | None = None,
) -> tuple[pd.DataFrame, dict, dict]:
    """Iterative pruning: prune the smallest normalised magnitudes, retrain, repeat.

    Every round starts from the last accepted model (its retrained weights): it keeps a
    share of that model's surviving weights (first :data:`FIRST_KEEP`), retrains with
    the masks fixed and scores the fitness split. A round within ``tolerance_pp`` of
    baseline is accepted; a failed one halves the step in log-space (keep -> sqrt(keep),
    at most :data:`MAX_KEEP`), so the rounds converge on the smallest model that holds.
    It stops after ``rounds`` rounds, or earlier when the smallest step fails
    (retraining is seeded, so a retry would repeat that round exactly).

    Args:
        finetuner: a :class:`~evoprune.refine.retrain.ModelFinetuner`; its ``base`` weights are
            moved to the accepted model between rounds (:meth:`rebase`).
        log: each round is logged as it finishes (key ``round r``: its masks' key,
            accuracies and retrained weights); rounds already there are replayed, not
            retrained, so a resumed schedule continues with the next round.

    Returns:
        One row per round (``eval_index`` = round, ``nonzero``, ``accuracy``,
        ``test_accuracy``, ``keep``, ``accepted``), ``round -> masks`` and ``round -> every
        model weight after its retraining``.
    """
    scores_of = normalized_magnitudes  # rescored on the accepted model's weights each round
    masks = [np.ones(k.shape, dtype=bool) for k in kernels]
    weights, keep = list(finetuner.base), FIRST_KEEP
    positions = finetuner.target.weight_positions(finetuner.model)
    log = log if log is not None else RetrainLog(None, Config())
    rows, all_masks, all_weights = [], {}, {}
    bar = accuracy_bar(base_accuracy, tolerance_pp)
    for r in range(rounds):
        current = [np.asarray(weights[i]) for i in positions]
        trial = prune_to(scores_of(current), masks, int(round(keep * sum(m.sum() for m in masks))))
        accuracy, test_accuracy, all_weights[r] = _retrain_round(finetuner, log, f"round {r}", weights, trial)
        accepted = accuracy >= bar
        nonzero = int(sum(m.sum() for m in trial))
        status(
            f"magnitude round {r}: keep {keep:.3f}, nonzero {nonzero}, accuracy {accuracy:.4f}"
            f"{'' if accepted else ' (rejected)'}"
        )
        rows.append(
            {
                "eval_index": r,
                "keep": keep,
                "nonzero": nonzero,
                "accuracy": accuracy,
                "test_accuracy": test_accuracy,
                "accepted": accepted,
            }
        )
        all_masks[r] = trial
        last = not accepted and keep >= MAX_KEEP  # the smallest step failed: a retry would repeat it
        progress(r + 1, r + 1 if last else rounds)  # stopping early completes the bar
        if accepted:
            weights, masks = all_weights[r], trial
        elif last:
            break
        else:
            keep = min(math.sqrt(keep), MAX_KEEP)
    return pd.DataFrame(rows), all_masks, all_weights


def _retrain_round(finetuner, log: RetrainLog, key: str, weights: list, trial: list) -> tuple:
    """One round's ``(accuracy, test accuracy, weights)``: from the log, else retrained and logged.

    The round retrains ``trial`` from ``weights`` (the model it prunes further).

    Raises:
        CheckpointError: the logged round pruned other masks (a log of another schedule).
    """
    if log.done(key):
        row = log.row(key)
        if row.get("masks") != mask_key(trial):
            raise CheckpointError(f"Retraining log does not match magnitude {key}: {log.path}")
        return row["accuracy"], row["test_accuracy"], log.weights(key)
    finetuner.rebase(weights)
    tuned = finetuner.tuned_weights(trial)
    accuracy, test_accuracy = finetuner.evaluate(tuned)
    log.add(key, {"masks": mask_key(trial), "accuracy": accuracy, "test_accuracy": test_accuracy}, tuned)
    return accuracy, test_accuracy, tuned


def level_steps(levels: list[float]) -> list[float]:
    """The compressions an iterative schedule passes through to reach every level: 2x, 4x, 8x, ...
    below the largest level, and the levels themselves."""
    top = max(levels)
    doubling = [2.0**k for k in range(1, 64) if 2.0**k < top]
    return sorted(set(doubling) | {float(level) for level in levels})


def magnitude_levels(
    finetuner,
    kernels: list[np.ndarray],
    levels: list[float],
    status=lambda msg: None,
    progress=lambda done, total: None,
    log: RetrainLog | None = None,
) -> tuple[pd.DataFrame, dict, dict]:
    """Iterative pruning through fixed compressions: prune to each step, retrain, go on.

    Each step (see :func:`level_steps`) keeps exactly ``round(total / step)`` weights, the
    largest normalised magnitudes (:func:`normalized_magnitudes`) of the previous step's
    retrained model, and retrains ``finetuner.epochs`` from it with the masks fixed; the
    model at a level is the step at that level, so every level had one final retraining
    of the same length. Returns rows as :func:`magnitude_schedule` (every round accepted)
    with the step's ``compression`` in ``keep``'s place, masks and weights by round.
    Each step is logged as it finishes (``log``; key ``step r``), as the rounds of
    :func:`magnitude_schedule` are.
    """
    steps = level_steps(levels)
    total = int(sum(np.count_nonzero(k) for k in kernels))
    masks = [np.ones(k.shape, dtype=bool) for k in kernels]
    weights = list(finetuner.base)
    rows, all_masks, all_weights = [], {}, {}
    log = log if log is not None else RetrainLog(None, Config())
    positions = finetuner.target.weight_positions(finetuner.model)
    for r, step in enumerate(steps):
        current = [np.asarray(weights[i]) for i in positions]
        masks = prune_to(normalized_magnitudes(current), masks, target_nonzero(total, step))
        accuracy, test_accuracy, weights = _retrain_round(finetuner, log, f"step {r}", weights, masks)
        nonzero = int(sum(m.sum() for m in masks))
        status(f"magnitude step {r}: {step:g}x, nonzero {nonzero}, accuracy {accuracy:.4f}")
        rows.append(
            {
                "eval_index": r,
                "keep": 1.0 / step,
                "nonzero": nonzero,
                "accuracy": accuracy,
                "test_accuracy": test_accuracy,
                "accepted": True,
            }
        )
        all_masks[r], all_weights[r] = masks, weights
        progress(r + 1, len(steps))
    return pd.DataFrame(rows), all_masks, all_weights
