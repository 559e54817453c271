"""Figures: what each one draws (axes, scales, marks, legend), from small tables; no model needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from evoprune.reporting.plots import ZOOM_PP, front_figure, run_title, save_figure, zoom_limit
from evoprune.reporting.stats import paired_differences
from evoprune.reporting.trial_plots import bench_figure, differences_figure, hypervolume_figure

BASE = {"accuracy": 0.95, "test_accuracy": 0.96, "nonzero": 1000}


def _front(drops_pp=(30.0, 8.0, 2.0, 0.5, 0.0), nonzero=(10, 100, 300, 600, 1000)) -> pd.DataFrame:
    accuracy = [BASE["accuracy"] - d / 100 for d in drops_pp]
    return pd.DataFrame(
        {
            "threshold": [0.123456, 0.0987, 0.0555, 0.0333, 0.0],
            "accuracy": accuracy,
            "test_accuracy": [a + 0.005 for a in accuracy],
            "nonzero": list(nonzero),
            "compression": [BASE["nonzero"] / n for n in nonzero],
        }
    )


def _summary(selected_drop_pp: float | None = 0.5, nonzero: int = 600, tolerance: float = 1.0) -> dict:
    selected = None
    if selected_drop_pp is not None:
        selected = {
            "nonzero": nonzero,
            "compression": BASE["nonzero"] / nonzero,
            "accuracy": BASE["accuracy"] - selected_drop_pp / 100,
            "test_accuracy": 0.955,
            "test_drop_pp": 0.5,
            "refined": False,
        }
    return {
        "algorithm": "paper",
        "encoding": "threshold",
        "dataset": "mnist-sample",
        "layers": "head",
        "seed": 3,
        "fitness_split": "validation",
        "baseline": BASE,
        "select": {"tolerance_pp": tolerance},
        "selected": selected,
    }


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def _texts(fig) -> str:
    found = [t.get_text() for ax in fig.axes for t in ax.texts] + [fig.axes[0].get_title()]
    return " ".join(found + _legend(fig))


def test_front_figure_draws_drop_against_kept_percent_with_baseline_band_and_selection():
    fig = front_figure(_front(), _summary(), title=run_title(_summary(), "paper-cnn"))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "drop" in ax.get_ylabel() and "Kept weights" in ax.get_xlabel() and "%" in ax.get_xlabel()
    assert ax.get_ylim()[1] == pytest.approx(ZOOM_PP)  # zoomed: the 30 and 8 point drops are off the chart
    legend = _legend(fig)
    assert any(text.startswith("baseline (validation 0.9500, test 0.9600") for text in legend), legend
    assert "within 1 point" in legend and "front, validation" in legend and "front, test" in legend
    assert any(text.startswith("selected (as pruned): 1.67x fewer weights") for text in legend), legend
    assert any(text.startswith("2 front points dropping more than 5 points") for text in legend), legend
    title = ax.get_title()
    assert "paper-cnn" in title and "mnist-sample" in title and "head" in title and "seed 3" in title
    assert "0.123" not in _texts(fig) and "0.0987" not in _texts(fig)  # no raw threshold labels


def test_front_figure_widens_the_zoom_for_a_selected_point_beyond_five_points():
    fig = front_figure(_front(), _summary(selected_drop_pp=8.0, nonzero=100, tolerance=10.0))
    top = fig.axes[0].get_ylim()[1]
    assert top > 10.0 and top == pytest.approx(zoom_limit(np.array([8.0]), 8.0, 10.0))
    assert "within 10 points" in _legend(fig)
    assert not any("dropping more than" in text for text in _legend(fig)[2:4])


def test_front_figure_without_selection_has_no_star():
    fig = front_figure(_front(), _summary(selected_drop_pp=None))
    assert not any(text.startswith("selected") for text in _legend(fig))


def test_front_figure_shows_fine_tuned_points_with_arrows():
    refined = pd.DataFrame(
        {
            "nonzero": [100, 300],
            "accuracy": [BASE["accuracy"] - 0.08, BASE["accuracy"] - 0.02],
            "refined_accuracy": [0.945, 0.952],
            "refined_test_accuracy": [0.95, 0.958],
        }
    )
    plain = front_figure(_front(), _summary())
    fig = front_figure(_front(), _summary(), refined)
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 2 and not [t for t in plain.axes[0].texts if getattr(t, "arrow_patch", None)]
    assert {"fine-tuned, validation", "fine-tuned, test"} <= set(_legend(fig))
    # the 0.2-point gain after fine-tuning (a negative drop) is inside the chart
    assert fig.axes[0].get_ylim()[0] < -0.2


def test_saved_front_figure_is_a_png(tmp_path):
    path = tmp_path / "front.png"
    save_figure(front_figure(_front(), _summary()), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _trials() -> pd.DataFrame:
    rows = []
    for seed in range(4):
        for algorithm, hv, size in (("paper", 0.80, 400), ("nsga2", 0.82, 300), ("sweep", 0.9, 200)):
            rows.append(
                {
                    "algorithm": algorithm,
                    "seed": seed,
                    "hypervolume": hv + 0.1 * seed,  # seeds differ far more than algorithms
                    "igd": 0.01 if algorithm == "paper" else 0.008,
                    "selected_nonzero": size if seed else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def test_paired_differences_are_per_seed_against_the_reference():
    metrics = [("hypervolume", "difference"), ("selected_nonzero", "relative")]
    table = paired_differences(_trials(), metrics, "paper", ["nsga2", "paper"])
    hv = table[table["metric"] == "hypervolume"]
    assert hv["seed"].tolist() == [0, 1, 2, 3] and set(hv["algorithm"]) == {"nsga2"}
    assert np.allclose(hv["value"], 0.02)  # the seed-to-seed spread is gone
    size = table[table["metric"] == "selected_nonzero"]
    assert size["seed"].tolist() == [1, 2, 3] and np.allclose(size["value"], -25.0)


def test_differences_figure_has_a_labelled_panel_per_metric():
    metrics = [("hypervolume", "difference"), ("igd", "difference"), ("selected_nonzero", "relative")]
    table = paired_differences(_trials(), metrics, "paper", ["nsga2"])
    fig = differences_figure(table, "paper", "each seed trains its own model")
    assert len(fig.axes) == 3
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[0] == "hypervolume: algorithm − paper" and labels[2] == "selected size: % change vs paper"
    assert all(ax.get_ylabel() for ax in fig.axes)
    for ax, (metric, _) in zip(fig.axes, metrics):  # a dot per seed and a dashed zero line
        dots = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
        assert dots == (table["metric"] == metric).sum() > 0
        assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == 0 for line in ax.lines)
    assert "each seed trains its own model" in fig.texts[0].get_text()


def test_hypervolume_figure_is_one_panel_per_algorithm():
    curves = pd.concat(
        pd.DataFrame({"algorithm": a, "evaluations": [0, 50, 100], "median": m, "q1": m, "q3": m})
        for a, m in (("paper", [0.1, 0.5, 0.6]), ("nsga2", [0.1, 0.6, 0.7]), ("spea2", [0.1, 0.4, 0.8]))
    )
    fig = hypervolume_figure(curves, pd.Series([0.9, 0.95]))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["paper", "nsga2", "spea2"]
    colours = {tuple(ax.lines[-2].get_color()) for ax in visible}  # each panel's own median line
    assert len(colours) == 3


def test_bench_figure_highlights_the_paper_cell():
    trials = pd.DataFrame(
        {
            "cell": ["a/paper/x"] * 3 + ["b/nsga2/y"] * 3,
            "hypervolume": [0.5, 0.55, 0.6, 0.7, 0.72, 0.71],
        }
    )
    fig = bench_figure(trials, ["b/nsga2/y", "a/paper/x"], highlight="a/paper/x")
    labels = {t.get_text(): t for t in fig.axes[0].get_yticklabels()}
    assert labels["a/paper/x (paper)"].get_fontweight() == "bold"
    assert labels["b/nsga2/y"].get_fontweight() != "bold"
    assert "Hypervolume" in fig.axes[0].get_xlabel()
