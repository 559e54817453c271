"""Tests for the front metrics: Pareto extraction, hypervolume, IGD and size at a fixed loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evoprune.reporting.metrics import hypervolume, igd, pareto_front
from evoprune.reporting.metrics import within as smallest_nonzero_within

BASE = 100


# hypervolume


def test_hypervolume_two_points_by_hand():
    # Minimization space (1 - acc, nonzero / 100), reference (1, 1):
    # A = (0.9, 20) -> (0.1, 0.2): box 0.9 * 0.8 = 0.72
    # B = (0.8, 10) -> (0.2, 0.1): box 0.8 * 0.9 = 0.72
    # overlap [0.2, 1] x [0.2, 1] = 0.8 * 0.8 = 0.64 -> union 0.72 + 0.72 - 0.64 = 0.80
    assert hypervolume([0.9, 0.8], [20, 10], BASE) == pytest.approx(0.80)
    assert hypervolume(np.array([0.8, 0.9]), np.array([10, 20]), BASE) == pytest.approx(0.80)


def test_hypervolume_dominated_point_changes_nothing():
    # (0.75, 25) -> (0.25, 0.25) is dominated by both A and B
    assert hypervolume([0.9, 0.8, 0.75], [20, 10, 25], BASE) == pytest.approx(0.80)


def test_hypervolume_reference_is_fixed_not_the_fronts_worst():
    # one point: a reference derived from the front (worst + 1) would always give 1.0
    assert hypervolume([0.9], [20], BASE) == pytest.approx(0.9 * 0.8)
    assert hypervolume([0.5], [60], BASE) == pytest.approx(0.5 * 0.4)
    # a worse (but non-dominated) extra point adds only its own strip, the rest is unchanged:
    # (0.95, 90) -> (0.05, 0.9) adds [0.05, 0.1] x [0.9, 1] = 0.05 * 0.1 = 0.005
    assert hypervolume([0.9, 0.8, 0.95], [20, 10, 90], BASE) == pytest.approx(0.805)


def test_hypervolume_normalization():
    assert hypervolume([1.0], [0], BASE) == pytest.approx(1.0)
    assert hypervolume([1.0], [0], 1500) == pytest.approx(1.0)
    # with another reference the ideal point still scores 1; A scores its share of the box:
    # ref (1 - 0.5, 50 / 100) = (0.5, 0.5), A -> (0.1, 0.2): 0.4 * 0.3 / (0.5 * 0.5) = 0.48
    assert hypervolume([1.0], [0], BASE, ref_accuracy=0.5, ref_nonzero=50) == pytest.approx(1.0)
    assert hypervolume([0.9], [20], BASE, ref_accuracy=0.5, ref_nonzero=50) == pytest.approx(0.48)
    values = [hypervolume(np.random.default_rng(s).random(5), np.arange(5) * 20, BASE) for s in range(5)]
    assert all(0.0 <= v <= 1.0 for v in values)


def test_hypervolume_points_outside_the_box_add_nothing():
    ref = dict(ref_accuracy=0.5, ref_nonzero=50)
    inside = hypervolume([0.9], [20], BASE, **ref)
    assert hypervolume([0.9, 0.4, 0.99], [20, 5, 60], BASE, **ref) == pytest.approx(inside)
    assert hypervolume([0.4, 0.99], [5, 60], BASE, **ref) == 0.0
    assert hypervolume([0.5, 0.9], [10, 50], BASE, **ref) == 0.0  # on the box's edge
    assert hypervolume([], [], BASE) == 0.0


def test_hypervolume_rejects_bad_input():
    with pytest.raises(ValueError):
        hypervolume([0.9], [20], 0)
    with pytest.raises(ValueError):
        hypervolume([0.9, 0.8], [20], BASE)


# igd


def test_igd_zero_for_identical_fronts():
    front = [(0.99, 1500), (0.97, 300), (0.9, 40)]
    assert igd(front, front, 1500) == 0.0
    assert igd(front + [(0.5, 10)], front, 1500) == 0.0  # extra points do not hurt


def test_igd_by_hand():
    # reference (1, 0) -> (0, 0) and (0.5, 50) -> (0.5, 0.5); approximation (0.8, 0) -> (0.2, 0)
    # distances 0.2 and sqrt(0.3^2 + 0.5^2) = sqrt(0.34); mean (0.2 + 0.583095) / 2
    expected = (0.2 + math.sqrt(0.34)) / 2
    assert igd([(0.8, 0)], [(1.0, 0), (0.5, 50)], BASE) == pytest.approx(expected)
    assert igd(np.array([[0.8, 0.0]]), np.array([[1.0, 0], [0.5, 50]]), BASE) == pytest.approx(0.3915476)


def test_igd_edge_cases():
    assert igd([], [(1.0, 0)], BASE) == math.inf
    with pytest.raises(ValueError):
        igd([(1.0, 0)], [], BASE)


# smallest_nonzero_within


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "accuracy": [0.99, 0.985, 0.98, 0.97],
            "nonzero": [1500, 800, 400, 100],
            "test_accuracy": [0.99, 0.99, 0.99, 0.99],
        }
    )


def test_smallest_nonzero_within():
    table = _table()
    assert smallest_nonzero_within(table, 0.99, 0.5) == 800  # >= 0.985, boundary included
    assert smallest_nonzero_within(table, 0.99, 1.0) == 400  # >= 0.98
    assert smallest_nonzero_within(table, 0.98, 1.0) == 100  # >= 0.97
    assert smallest_nonzero_within(table, 0.999, 0.5) is None
    assert smallest_nonzero_within(table, 0.994, 0.5) == 1500  # >= 0.989
    assert smallest_nonzero_within(table, 0.994, 0.5, accuracy_col="test_accuracy") == 100
    assert smallest_nonzero_within(table.iloc[:0], 0.99, 1.0) is None
    assert isinstance(smallest_nonzero_within(table, 0.99, 1.0), int)


def test_smallest_nonzero_within_counts_from_correct_predictions():
    n = 2000
    table = pd.DataFrame({"accuracy": np.array([1970, 1960, 1950]) / n, "nonzero": [900, 500, 200]})
    assert smallest_nonzero_within(table, 1970 / n, 0.5) == 500  # 0.98 exactly qualifies
    assert smallest_nonzero_within(table, 1970 / n, 1.0) == 200  # 0.975 exactly qualifies
    assert smallest_nonzero_within(table, 1971 / n, 0.5) == 900


# pareto_front


def test_pareto_front_dedups_duplicate_objective_points():
    table = pd.DataFrame(
        {
            "threshold": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
            "accuracy": [0.98, 0.98, 0.97, 0.96, 0.96, 0.90],
            "nonzero": [1000, 1000, 500, 600, 200, 200],
        }
    )
    front = pareto_front(table)
    assert front["nonzero"].tolist() == [200, 500, 1000]
    assert front["accuracy"].tolist() == [0.96, 0.97, 0.98]
    assert front["threshold"].tolist() == [0.05, 0.03, 0.01]  # first of the duplicates kept
    assert pareto_front(table.iloc[:0]).empty
