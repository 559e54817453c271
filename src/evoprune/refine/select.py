"""Selection: the run's answer, the smallest (fine-tuned) model within a tolerance of baseline."""

from __future__ import annotations

from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from evoprune.reporting.metrics import accuracy_bar


def candidates(front: pd.DataFrame, refined: pd.DataFrame | None) -> pd.DataFrame:
    """The models selection chooses from, with the accuracy that decides.

    A refined run chooses among its fine-tuned points (their accuracy after fine-tuning);
    any other run among its front points as evaluated.

    Returns:
        ``eval_index, nonzero, compression, accuracy, test_accuracy, refined``.
    """
    columns = ["eval_index", "nonzero", "compression", "accuracy", "test_accuracy"]
    if refined is not None:
        table = refined[
            ["eval_index", "nonzero", "compression", "refined_accuracy", "refined_test_accuracy"]
        ].set_axis(columns, axis=1)
        return table.assign(refined=True)
    return front[columns].assign(refined=False)


def loss_bound_pp(base_correct: np.ndarray, correct: np.ndarray, confidence: float) -> float:
    """One-sided upper confidence bound, in points, on the accuracy a model loses against the baseline.

    From paired per-image correctness on the same images: the per-image differences
    ``d = base - model`` (each -1, 0 or 1) have mean ``m`` (the observed loss) and sample
    standard deviation ``s``; the bound is ``m + z_confidence x s / sqrt(n)`` (the normal
    approximation of the paired test; only the discordant images contribute to ``s``).
    """
    d = np.asarray(base_correct, dtype=np.float64) - np.asarray(correct, dtype=np.float64)
    n = len(d)
    spread = float(d.std(ddof=1)) if n > 1 else 0.0
    return 100.0 * (float(d.mean()) + NormalDist().inv_cdf(confidence) * spread / np.sqrt(max(n, 1)))


def select_row(
    table: pd.DataFrame,
    base_accuracy: float,
    tolerance_pp: float,
    bound: Callable[[int], float] | None = None,
) -> pd.Series | None:
    """The smallest row of ``table`` within ``tolerance_pp`` of baseline.

    Without ``bound`` a row is within when its ``accuracy`` is; with it, when
    ``bound(eval_index)`` (an upper bound on its loss in points, see :func:`loss_bound_pp`)
    is at most ``tolerance_pp``, computed for the rows in the order they are considered.
    Ties in size go to the more accurate row, then to the earlier one. ``None`` when no
    row is within the tolerance.
    """
    ok = table[table["nonzero"] > 0]
    if bound is None:
        ok = ok[ok["accuracy"] >= accuracy_bar(base_accuracy, tolerance_pp)]
    ok = ok.assign(_order=np.arange(len(ok)))
    ordered = ok.sort_values(["nonzero", "accuracy", "_order"], ascending=[True, False, True], kind="stable")
    for _, row in ordered.iterrows():
        if bound is None:
            return row.drop("_order")
        loss = bound(int(row["eval_index"]))
        if loss <= tolerance_pp + 1e-9:
            return pd.concat([row.drop("_order"), pd.Series({"loss_bound_pp": loss})])
    return None


def selected_summary(
    row: pd.Series | None, baseline: dict, genome: str, per_layer: dict[str, float]
) -> dict | None:
    """The ``summary["selected"]`` mapping of a selected row (``None`` stays ``None``).

    Keys: ``eval_index`` (row in the run's archive/evaluation order), ``genome``,
    ``nonzero``, ``compression``, ``accuracy`` (fitness split), ``test_accuracy``,
    ``test_drop_pp`` (baseline test accuracy minus the selected one, in points),
    ``per_layer`` (kept fraction by layer name), ``refined`` (fine-tuned or not), and
    ``loss_bound_pp`` when selection used a confidence bound.
    """
    if row is None:
        return None
    test = float(row["test_accuracy"])
    extra = {"loss_bound_pp": float(row["loss_bound_pp"])} if "loss_bound_pp" in row else {}
    return {
        "eval_index": int(row["eval_index"]),
        "genome": genome,
        "nonzero": int(row["nonzero"]),
        "compression": float(row["compression"]),
        "accuracy": float(row["accuracy"]),
        "test_accuracy": test,
        "test_drop_pp": 100.0 * (baseline["test_accuracy"] - test),
        "per_layer": per_layer,
        "refined": bool(row["refined"]),
    } | extra


def select(
    front: pd.DataFrame,
    refined: pd.DataFrame | None,
    baseline: dict,
    tolerance_pp: float,
    describe: Callable[[int], str],
    masks: Callable[[int], Sequence[np.ndarray]],
    target,
    bound: Callable[[int], float] | None = None,
) -> dict | None:
    """Selects the run's model and returns its ``summary["selected"]`` mapping.

    Args:
        front, refined: the run's front and its fine-tuned points (or ``None``).
        baseline: ``summary["baseline"]`` (``accuracy`` on the fitness split, ``test_accuracy``).
        tolerance_pp: ``select.tolerance_pp``.
        describe: ``eval_index -> genome text``.
        masks: ``eval_index -> one mask per pruned layer``.
        target: the :class:`~evoprune.models.target.PruneTarget` (names the layers).
        bound: ``eval_index -> upper bound on its loss in points`` (``select.confidence``;
            ``None``: the point estimate decides).
    """
    row = select_row(candidates(front, refined), baseline["accuracy"], tolerance_pp, bound)
    if row is None:
        return None
    index = int(row["eval_index"])
    return selected_summary(row, baseline, describe(index), target.kept_fractions(masks(index)))
