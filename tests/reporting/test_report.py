"""The report's verdicts: better, worse or no evidence, from the paired tests, either side."""

from __future__ import annotations

import math

import pandas as pd

from evoprune.experiments.compare import METRICS
from evoprune.reporting.report import verdicts


def _row(metric, a, b, wins, p_paired, a12=0.5, p=0.5, pairs=10):
    return {
        "metric": metric,
        "a": a,
        "b": b,
        "a12": a12,
        "wins": wins,
        "pairs": pairs,
        "p_holm": p,
        "p_paired_holm": p_paired,
    }


def _verdicts(*rows):
    return verdicts(pd.DataFrame(list(rows)), METRICS, "paper")


def test_higher_is_better_metric_either_side_of_the_pair():
    lines = _verdicts(
        _row("hypervolume", "nsga2", "paper", wins=0.9, p_paired=0.01, a12=0.8),
        _row("hypervolume", "paper", "spea2", wins=0.9, p_paired=0.01, a12=0.8),
    )
    assert lines[0].startswith("- nsga2 on hypervolume: **better** than paper")
    assert "higher on 90% of 10 seeds" in lines[0] and "A12 = 0.80" in lines[0]
    # paper listed first: the numbers are flipped to spea2's side
    assert lines[1].startswith("- spea2 on hypervolume: **worse** than paper")
    assert "higher on 10% of 10 seeds" in lines[1] and "A12 = 0.20" in lines[1]


def test_lower_is_better_metric():
    assert METRICS["nonzero_within_1pp"] is False
    lines = _verdicts(
        _row("nonzero_within_1pp", "nsga2", "paper", wins=0.2, p_paired=0.001),
        _row("nonzero_within_1pp", "nsga3", "paper", wins=0.8, p_paired=0.001),
    )
    assert "**better**" in lines[0] and lines[0].startswith("- nsga2")
    assert "**worse**" in lines[1] and lines[1].startswith("- nsga3")


def test_no_evidence_without_a_significant_paired_test():
    lines = _verdicts(
        _row("best_fitness", "nsga2", "paper", wins=1.0, p_paired=0.05, p=0.001),
        _row("best_fitness", "nsga3", "paper", wins=1.0, p_paired=math.nan),
    )
    assert all("no significant difference" in line and "**" not in line for line in lines)
    assert len(lines) == 2


def test_only_key_metrics_and_pairs_with_the_baseline():
    lines = _verdicts(
        _row("igd", "nsga2", "paper", wins=0.1, p_paired=0.001),
        _row("hypervolume", "nsga2", "spea2", wins=0.9, p_paired=0.001),
        _row("best_test_accuracy", "nsga2", "paper", wins=0.9, p_paired=0.001),
    )
    assert lines == [line for line in lines if "best_test_accuracy" in line] and len(lines) == 1
