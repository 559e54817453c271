"""Selection: the run's answer, the smallest (fine-tuned) model within a tolerance of baseline."""

from __future__ import annotations

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


def select_row(table: pd.DataFrame, base_accuracy: float, tolerance_pp: float) -> pd.Series | None:
    """The smallest row of ``table`` whose ``accuracy`` is within ``tolerance_pp`` of baseline.

    Ties in size go to the more accurate row, then to the earlier one. ``None`` when no
    row is within the tolerance.
    """
    bar = accuracy_bar(base_accuracy, tolerance_pp)
    ok = table[(table["accuracy"] >= bar) & (table["nonzero"] > 0)]
    if ok.empty:
        return None
    ok = ok.assign(_order=np.arange(len(ok)))
    return ok.sort_values(
        ["nonzero", "accuracy", "_order"], ascending=[True, False, True], kind="stable"
    ).iloc[0]


def selected_summary(
    row: pd.Series | None, baseline: dict, genome: str, per_layer: dict[str, float]
) -> dict | None:
    """The ``summary["selected"]`` mapping of a selected row (``None`` stays ``None``).

    Keys: ``eval_index`` (row in the run's archive/evaluation order), ``genome``,
    ``nonzero``, ``compression``, ``accuracy`` (fitness split), ``test_accuracy``,
    ``test_drop_pp`` (baseline test accuracy minus the selected one, in points),
    ``per_layer`` (kept fraction by layer name), ``refined`` (fine-tuned or not).
    """
    if row is None:
        return None
    test = float(row["test_accuracy"])
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
    }


def select(
    front: pd.DataFrame,
    refined: pd.DataFrame | None,
    baseline: dict,
    tolerance_pp: float,
    describe: Callable[[int], str],
    masks: Callable[[int], Sequence[np.ndarray]],
    target,
) -> dict | None:
    """Selects the run's model and returns its ``summary["selected"]`` mapping.

    Args:
        front, refined: the run's front and its fine-tuned points (or ``None``).
        baseline: ``summary["baseline"]`` (``accuracy`` on the fitness split, ``test_accuracy``).
        tolerance_pp: ``select.tolerance_pp``.
        describe: ``eval_index -> genome text``.
        masks: ``eval_index -> one mask per pruned layer``.
        target: the :class:`~evoprune.models.target.PruneTarget` (names the layers).
    """
    row = select_row(candidates(front, refined), baseline["accuracy"], tolerance_pp)
    if row is None:
        return None
    index = int(row["eval_index"])
    return selected_summary(row, baseline, describe(index), target.kept_fractions(masks(index)))
