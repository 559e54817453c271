"""Operators: exact outputs with pinned randomness, and invariants."""

from __future__ import annotations

import random
from itertools import permutations

import numpy as np
import pytest

from evoprune.errors import ConfigError
from evoprune.search.algorithms import individual_class
from evoprune.search.operators import (
    CROSSOVERS,
    cx_average,
    get,
    init_logspace,
    mut_random_reset,
    sel_elite,
    sel_random_pairs,
)


def test_init_logspace_matches_notebook_formula():
    low, high, n = 1e-6, 0.8, 20
    expected = np.logspace(low, high, n - 1, base=16)
    expected = [low] + list(expected / expected.max() * high)
    got = init_logspace(n, low, high)
    assert len(got) == n and all(len(g) == 1 for g in got)
    assert [g[0] for g in got] == pytest.approx(expected, rel=0, abs=0)
    assert got[-1][0] == pytest.approx(high)
    assert [g[0] for g in got] == sorted(g[0] for g in got)


def test_cx_average_sets_both_children_to_the_mean_in_place():
    a, b = [0.2, 1.0], [0.4, 3.0]
    c1, c2 = cx_average(a, b)
    assert c1 is a and c2 is b
    assert a == [pytest.approx(0.3), 2.0] and b == a


def test_random_reset_draws_uniform_with_pinned_seed():
    random.seed(42)
    expected = random.uniform(0.1, 0.9)
    random.seed(42)
    ind = [0.5]
    (out,) = mut_random_reset(ind, 0.1, 0.9)
    assert out is ind and ind[0] == expected


def test_random_reset_stays_in_bounds():
    random.seed(0)
    values = [mut_random_reset([0.0], 0.25, 0.5)[0][0] for _ in range(500)]
    assert min(values) >= 0.25 and max(values) <= 0.5
    assert max(values) - min(values) > 0.2


def test_random_pairs_are_distinct_ordered_pairs_of_distinct_individuals():
    pop = [[float(i)] for i in range(20)]
    random.seed(3)
    pairs = sel_random_pairs(pop, 5)
    keys = [(a[0], b[0]) for a, b in pairs]
    assert len(set(keys)) == 5 and all(a != b for a, b in keys)
    with pytest.raises(ValueError):
        sel_random_pairs(pop[:2], 3)


def test_random_pairs_cover_all_permutations_uniformly():
    pop = [[float(i)] for i in range(4)]
    random.seed(0)
    counts = {}
    for _ in range(6000):
        ((a, b),) = sel_random_pairs(pop, 1)
        counts[(a[0], b[0])] = counts.get((a[0], b[0]), 0) + 1
    assert set(counts) == {(a[0], b[0]) for a, b in permutations(pop, 2)}
    assert min(counts.values()) > 400 and max(counts.values()) < 600


def test_sel_elite_keeps_the_best():
    cls = individual_class(1)
    pop = [cls([float(i)]) for i in range(6)]
    for ind, fit in zip(pop, [0.3, 0.9, 0.1, 0.5, 0.9, 0.2]):
        ind.fitness.values = (fit,)
    best = sel_elite(pop, 3)
    assert [ind.fitness.values[0] for ind in best] == [0.9, 0.9, 0.5]


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match=r"Expected one of: average, blend, .*Received: 'pmx'"):
        get(CROSSOVERS, "crossover", "pmx")
