"""Curves across seeds: median drops per level, paired tests against a subject, the report and figure."""

from __future__ import annotations

import pandas as pd
import pytest

from evoprune.reporting.curves import curve_figure, curve_report, drop_table, paired_tests


def _curves() -> pd.DataFrame:
    rows = []
    for seed in range(5):
        for level, base in ((12.0, 0.1), (24.0, 0.3)):
            rows.append(
                {
                    "seed": seed,
                    "algorithm": "evo",
                    "compression": level,
                    "test_drop_pp": base - 0.05,
                    "drop_pp": base,
                }
            )
            rows.append(
                {
                    "seed": seed,
                    "algorithm": "gmp",
                    "compression": level,
                    "test_drop_pp": base + 0.01 * seed,
                    "drop_pp": base,
                }
            )
    return pd.DataFrame(rows)


def test_drop_table_gives_medians_per_level_and_method():
    table = drop_table(_curves())
    row = table[(table["compression"] == 24.0) & (table["algorithm"] == "gmp")].iloc[0]
    assert row["seeds"] == 5 and row["test_drop_median"] == pytest.approx(0.32)
    assert row["test_drop_min"] == pytest.approx(0.3) and row["test_drop_max"] == pytest.approx(0.34)


def test_paired_tests_count_seeds_won_and_use_wilcoxon():
    tests = paired_tests(_curves(), "evo")
    assert list(tests["compression"]) == [12.0, 24.0] and set(tests["other"]) == {"gmp"}
    assert (tests["subject_wins"] == 5).all() and (tests["pairs"] == 5).all()
    assert tests["p"].iloc[0] == pytest.approx(0.0625)  # five of five: Wilcoxon's smallest p
    assert tests["median_difference_pp"].iloc[0] == pytest.approx(-0.07)
    flipped = paired_tests(_curves(), "gmp")
    assert (flipped["subject_wins"] == 0).all()


def test_report_and_figure():
    text = curve_report(_curves(), "evo")
    assert "| 24x | 0.25 [0.25, 0.25] (0.30) | 0.32 [0.30, 0.34] (0.30) |" in text
    assert "| 12x | gmp | 5 | -0.07 | 5 | 0.0625 |" in text
    fig = curve_figure(_curves())
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].lines) >= 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["evo", "gmp"]
    one_seed = _curves().query("algorithm == 'gmp' or seed == 0")  # evo on one seed beside five
    legend = curve_figure(one_seed).axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend] == ["evo (1 seed)", "gmp (5 seeds)"]  # a median of one says so


def test_figure_keeps_small_drops_readable_beside_a_collapsed_method():
    curves = _curves()
    assert curve_figure(curves).axes[0].get_yscale() == "linear"
    collapsed = curves.copy()
    collapsed.loc[collapsed["algorithm"] == "gmp", "test_drop_pp"] += 20.0
    ax = curve_figure(collapsed).axes[0]
    assert ax.get_yscale() == "symlog" and "log scale" in ax.get_ylabel()
