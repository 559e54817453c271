"""Statistics: A12 and Holm by hand, Mann-Whitney against known cases."""

from __future__ import annotations

import pandas as pd
import pytest

from evoprune.reporting.stats import a12, effect_size_label, holm, mann_whitney_p, pairwise_tests, summarize


def test_a12_by_hand():
    # pairs (x, y): 3>1, 3>2, 3=3 | 2>1, 2=2, 2<3 -> (2 + 0.5 + 1 + 0.5) / 6
    assert a12([3, 2], [1, 2, 3]) == pytest.approx(4 / 6)
    assert a12([1, 1], [1, 1]) == 0.5
    assert a12([5, 6], [1, 2]) == 1.0 and a12([1, 2], [5, 6]) == 0.0


def test_effect_labels():
    assert [effect_size_label(v) for v in (0.5, 0.6, 0.68, 0.9, 0.1)] == [
        "negligible",
        "small",
        "medium",
        "large",
        "large",
    ]


def test_holm_by_hand():
    # sorted p: 0.01*3=0.03, 0.02*2=0.04, 0.04*1=0.04 (monotone), original order kept
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_mann_whitney_separated_samples_are_significant():
    assert mann_whitney_p(range(10), range(100, 110)) < 0.001
    assert mann_whitney_p([1, 1, 1], [1, 1, 1]) == 1.0


def test_summary_and_pairwise_tables():
    trials = pd.DataFrame({"algorithm": ["a"] * 4 + ["b"] * 4, "hv": [1, 2, 3, 4, 10, 11, 12, 13]})
    stats = summarize(trials, ["hv"])
    a = stats[stats["algorithm"] == "a"].iloc[0]
    assert (a["median"], a["q1"], a["q3"], a["n"]) == (2.5, 1.75, 3.25, 4)
    tests = pairwise_tests(trials, ["hv"], ["a", "b"])
    assert tests.iloc[0]["a12"] == 0.0 and tests.iloc[0]["effect"] == "large"


def test_paired_tests_see_consistent_gains_that_unpaired_tests_miss():
    # each seed has its own level; b beats a by 0.01 on every seed
    levels = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    trials = pd.DataFrame(
        {
            "algorithm": ["a"] * 8 + ["b"] * 8,
            "seed": list(range(8)) * 2,
            "hv": levels + [v + 0.01 for v in levels],
        }
    )
    row = pairwise_tests(trials, ["hv"], ["a", "b"]).iloc[0]
    assert row["wins"] == 0.0 and row["pairs"] == 8
    assert row["p_paired"] < 0.01 and row["p_value"] > 0.5
