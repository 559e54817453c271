"""Statistics across seeds: medians and IQRs, Mann-Whitney U, Vargha-Delaney A12, Holm."""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

import numpy as np
import pandas as pd


def a12(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Vargha-Delaney A12: the probability that a draw from ``x`` beats one from ``y``.

    Ties count one half. 0.5 means no effect; 0.56 / 0.64 / 0.71 mark small / medium /
    large effects (Vargha and Delaney, 2000).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not len(x) or not len(y):
        return float("nan")
    greater = (x[:, None] > y[None, :]).sum()
    ties = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(x) * len(y)))


def effect_size_label(value: float) -> str:
    """Vargha-Delaney magnitude of an A12 value: negligible, small, medium or large."""
    distance = abs(value - 0.5)
    for limit, label in ((0.06, "negligible"), (0.14, "small"), (0.21, "medium")):
        if distance < limit:
            return label
    return "large"


def mann_whitney_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (1.0 when both samples are constant and equal)."""
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 1 or len(y) < 1:
        return float("nan")
    if np.all(x == x[0]) and np.all(y == x[0]):
        return 1.0
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (1.0 when all pairs tie)."""
    from scipy.stats import wilcoxon

    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[~np.isnan(d)]
    if not len(d) or np.all(d == 0):
        return 1.0
    return float(wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def summarize(trials: pd.DataFrame, metrics: Sequence[str], by: str = "algorithm") -> pd.DataFrame:
    """Median, first and third quartile and count of each metric per group (tidy rows)."""
    rows = []
    for group, frame in trials.groupby(by, sort=False):
        for metric in metrics:
            values = pd.to_numeric(frame[metric], errors="coerce").dropna()
            q1, median, q3 = values.quantile([0.25, 0.5, 0.75]).tolist() if len(values) else [np.nan] * 3
            rows.append({by: group, "metric": metric, "median": median, "q1": q1, "q3": q3, "n": len(values)})
    return pd.DataFrame(rows)


def pairwise_tests(
    trials: pd.DataFrame,
    metrics: Sequence[str],
    groups: Sequence[str],
    by: str = "algorithm",
    pair_on: str = "seed",
) -> pd.DataFrame:
    """Unpaired and paired tests for every pair of groups and metric, Holm-adjusted per metric.

    ``a12`` (Vargha-Delaney) and ``p_value`` (Mann-Whitney U) treat the runs as
    independent samples. When runs share ``pair_on`` (the same seed prunes the same
    model), ``wins`` is the share of pairs where the first group is larger (ties count
    one half) and ``p_paired`` the Wilcoxon signed-rank p-value over those pairs.
    """
    rows = []
    for metric in metrics:
        block: list[dict[str, Any]] = []
        for first, second in combinations(groups, 2):
            x = pd.to_numeric(trials.loc[trials[by] == first, metric], errors="coerce").dropna()
            y = pd.to_numeric(trials.loc[trials[by] == second, metric], errors="coerce").dropna()
            paired = _paired(trials, by, pair_on, metric, first, second)
            diff = paired.iloc[:, 0] - paired.iloc[:, 1]
            block.append(
                {
                    "metric": metric,
                    "a": first,
                    "b": second,
                    "a12": a12(x, y),
                    "p_value": mann_whitney_p(x, y),
                    "n_a": len(x),
                    "n_b": len(y),
                    "pairs": len(paired),
                    "wins": float(((diff > 0) + 0.5 * (diff == 0)).mean()) if len(paired) else np.nan,
                    "p_paired": wilcoxon_p(paired.iloc[:, 0], paired.iloc[:, 1]) if len(paired) else np.nan,
                }
            )
        for key in ("p_value", "p_paired"):
            for row, adjusted in zip(block, holm([r[key] for r in block])):
                row[key.replace("p_value", "p") + "_holm"] = adjusted
        for row in block:
            row["effect"] = effect_size_label(row["a12"])
        rows.extend(block)
    return pd.DataFrame(rows)


def _paired(
    trials: pd.DataFrame, by: str, pair_on: str, metric: str, first: str, second: str
) -> pd.DataFrame:
    """Values of ``metric`` for the two groups side by side, one row per shared ``pair_on``."""
    if pair_on not in trials:
        return pd.DataFrame(columns=[first, second])
    table = trials[trials[by].isin([first, second])].pivot_table(
        index=pair_on, columns=by, values=metric, aggfunc="first"
    )
    return table.reindex(columns=[first, second]).apply(pd.to_numeric, errors="coerce").dropna()


def paired_differences(
    trials: pd.DataFrame, metrics: Sequence[tuple[str, str]], reference: str, others: Sequence[str]
) -> pd.DataFrame:
    """Per-seed differences of each algorithm against ``reference`` on the same seed.

    Args:
        trials: one row per ``algorithm, seed`` with the metric columns.
        metrics: ``(column, how)`` pairs; ``how`` is ``difference`` (algorithm minus
            reference) or ``relative`` (algorithm as a percentage change of the reference).
        others: the algorithms measured against it.

    Returns:
        Tidy rows ``metric, algorithm, seed, value``; seeds where either value is missing
        (NaN, or the reference's is 0 for a relative change) are left out.
    """
    rows = []
    for column, how in metrics:
        if column not in trials:
            continue
        table = trials.pivot_table(index="seed", columns="algorithm", values=column, aggfunc="first")
        if reference not in table:
            continue
        base = pd.to_numeric(table[reference], errors="coerce")
        for algorithm in (a for a in others if a in table and a != reference):
            value = pd.to_numeric(table[algorithm], errors="coerce")
            if how == "relative":
                change = 100.0 * (value / base.where(base != 0) - 1.0)
            else:
                change = value - base
            for seed, number in change.dropna().items():
                rows.append({"metric": column, "algorithm": algorithm, "seed": seed, "value": float(number)})
    return pd.DataFrame(rows, columns=["metric", "algorithm", "seed", "value"])
