"""Plots: functions take DataFrames and return matplotlib Figures; they compute nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_figure(front: pd.DataFrame, title: str = "Pareto front", label: str = "threshold"):
    """Accuracy vs compression of a front, points labelled by ``label`` (adjustText).

    Rows with zero nonzero weights (infinite compression) are not drawn.
    """
    from adjustText import adjust_text

    plt = _pyplot()
    data = front[front["nonzero"] > 0]
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    ax.scatter(data["accuracy"], data["compression"], color="tab:blue", zorder=3)
    ax.set_xlabel("Accuracy (fitness split)")
    ax.set_ylabel("Compression (base nonzero / nonzero)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if label in data and len(data) <= 60:
        texts = [
            ax.text(x, y, f"{t:.3g}", fontsize=8)
            for x, y, t in zip(data["accuracy"], data["compression"], data[label])
        ]
        if texts:
            adjust_text(
                texts,
                x=list(data["accuracy"]),
                y=list(data["compression"]),
                ax=ax,
                arrowprops=dict(arrowstyle="->", color="red", lw=0.5),
            )
    return fig


def save_figure(fig, path: Path) -> None:
    """Saves a figure atomically as PNG and closes it."""
    plt = _pyplot()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def fronts_figure(fronts: pd.DataFrame, reference: str = "sweep", seed: int = 0):
    """Fronts of every algorithm for one seed, overlaid on the exact front (nonzero vs accuracy)."""
    plt = _pyplot()
    data = fronts[(fronts["seed"] == seed) & (fronts["nonzero"] > 0)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    exact = data[data["algorithm"] == reference]
    best = exact["accuracy"].max() if len(exact) else data["accuracy"].max()
    for ax, zoom in zip(axes, (False, True)):
        if len(exact):
            ax.step(
                exact["nonzero"],
                exact["accuracy"],
                where="post",
                color="black",
                lw=1,
                label=f"{reference} (exact)",
            )
        for name, frame in data[data["algorithm"] != reference].groupby("algorithm", sort=False):
            ax.scatter(frame["nonzero"], frame["accuracy"], s=18, label=name, alpha=0.8)
        ax.set_xlabel("Nonzero weights in the pruned layer")
        ax.set_ylabel("Accuracy (fitness split)")
        ax.grid(True, alpha=0.3)
        if zoom:
            ax.set_ylim(best - 0.05, best + 0.005)
            ax.set_title(f"Zoom: within 5 points of the best (seed {seed})")
        else:
            ax.set_xscale("log")
            ax.set_title(f"Fronts, seed {seed}")
    axes[0].legend()
    return fig


def boxplots_figure(trials: pd.DataFrame):
    """Across seeds, the best individual's test accuracy, compression ratio and fitness."""
    plt = _pyplot()
    panels = (
        ("best_test_accuracy", "Test accuracy of the best"),
        ("best_compression", "Compression ratio of the best (size ratio)"),
        ("best_fitness", "Fitness of the best"),
    )
    names = list(trials["algorithm"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), constrained_layout=True)
    for ax, (column, title) in zip(axes, panels):
        ax.boxplot([trials.loc[trials["algorithm"] == n, column].dropna() for n in names])
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{trials['seed'].nunique()} seeds, each pruning its own model")
    return fig


def hypervolume_figure(curves: pd.DataFrame, reference_hv: pd.Series | None = None):
    """Median (and IQR band) hypervolume vs evaluations per algorithm, across seeds.

    Args:
        curves: tidy rows ``algorithm, evaluations, median, q1, q3``.
        reference_hv: hypervolumes of the exact fronts, drawn as their median.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    for name, frame in curves.groupby("algorithm", sort=False):
        ax.plot(frame["evaluations"], frame["median"], label=name)
        ax.fill_between(frame["evaluations"], frame["q1"], frame["q3"], alpha=0.2)
    if reference_hv is not None and len(reference_hv):
        ax.axhline(reference_hv.median(), color="black", ls="--", lw=1, label="exact front (median)")
    ax.set_xlabel("Evaluations")
    ax.set_ylabel("Hypervolume (normalized, fixed reference)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def bench_figure(trials: pd.DataFrame, order: list[str]):
    """Hypervolume across seeds per grid cell (best median first), as horizontal boxplots."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(order) + 1.5), constrained_layout=True)
    data = [trials.loc[trials["cell"] == cell, "hypervolume"].dropna() for cell in order]
    ax.boxplot(data[::-1], vert=False)
    ax.set_yticks(range(1, len(order) + 1), order[::-1], fontsize=8)
    ax.set_xlabel("Hypervolume (normalized, fixed reference)")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
