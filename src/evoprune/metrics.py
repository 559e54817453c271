"""Metrics over evaluated solutions: Pareto extraction and compression."""

from __future__ import annotations

import numpy as np
import pandas as pd


def compression(base_nonzero: int, nonzero: int | np.ndarray) -> float | np.ndarray:
    """Size ratio ``base_nonzero / nonzero`` (5.0 means five times fewer weights; inf at 0)."""
    with np.errstate(divide="ignore"):
        return np.float64(base_nonzero) / np.asarray(nonzero, dtype=np.float64)


def pareto_front(table: pd.DataFrame, maximize: str = "accuracy",
                 minimize: str = "nonzero") -> pd.DataFrame:
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
