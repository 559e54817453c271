"""Figures of comparisons and benches (seaborn on matplotlib): tables in, a Figure out.

``compare`` draws the fronts of one seed, the per-seed differences of each algorithm
against the paper's (:func:`differences_figure`) and the hypervolume over evaluations as
small multiples; ``bench`` draws its ranking with the paper's cell highlighted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evoprune.reporting.plots import PALETTE, pyplot, style

# column, axis label, "difference" (algorithm - reference) or "relative" (%), higher is better
PAIRED = (
    ("hypervolume", "hypervolume", "difference", True),
    ("igd", "IGD", "difference", False),
    ("selected_nonzero", "selected size", "relative", False),
)


def fronts_figure(fronts: pd.DataFrame, reference: str = "sweep", seed: int = 0):
    """Fronts of every algorithm for one seed, overlaid on the exact front (nonzero vs accuracy)."""
    plt = pyplot()
    data = fronts[(fronts["seed"] == seed) & (fronts["nonzero"] > 0)]
    with style() as sns:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
        exact = data[data["algorithm"] == reference]
        best = exact["accuracy"].max() if len(exact) else data["accuracy"].max()
        others = data[data["algorithm"] != reference]
        colors = dict(zip(others["algorithm"].unique(), sns.color_palette(PALETTE)))
        for ax, zoom in zip(axes, (False, True)):
            if len(exact):
                ax.step(
                    exact["nonzero"],
                    exact["accuracy"],
                    where="post",
                    color="black",
                    lw=1,
                    label=f"{reference} (reference)",
                )
            for name, frame in others.groupby("algorithm", sort=False):
                ax.scatter(
                    frame["nonzero"], frame["accuracy"], s=18, label=name, alpha=0.8, color=colors[name]
                )
            ax.set_xlabel("Nonzero weights in the pruned layers")
            ax.set_ylabel("Accuracy (fitness split)")
            ax.set_xscale("log")
            if zoom:
                ax.set_ylim(best - 0.05, best + 0.005)
                ax.set_title(f"Zoom: within 5 points of the best (seed {seed})")
            else:
                ax.set_title(f"Fronts, seed {seed}")
        axes[0].legend()
    return fig


def differences_figure(differences: pd.DataFrame, reference: str, subtitle: str = ""):
    """Per-seed differences against ``reference``: one panel per metric, a dot per seed.

    Args:
        differences: tidy rows ``metric, algorithm, seed, value`` (see
            :func:`evoprune.reporting.stats.paired_differences`), for the metrics of
            :data:`PAIRED`.
        reference: the algorithm the others are measured against (the zero line).
        subtitle: a line under the title (e.g. how the seeds differ).
    """
    plt = pyplot()
    panels = [p for p in PAIRED if p[0] in set(differences["metric"])] or list(PAIRED[:1])
    with style() as sns:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), constrained_layout=True)
        axes = np.atleast_1d(axes)
        names = list(dict.fromkeys(differences["algorithm"]))
        palette = dict(zip(names, sns.color_palette(PALETTE)))
        for ax, (metric, label, how, higher) in zip(axes, panels):
            data = differences[differences["metric"] == metric]
            ax.axhline(0, color="black", lw=1, ls="--")
            if data.empty:
                ax.text(
                    0.5,
                    0.5,
                    f"no seed with both values\n(or only {reference} ran)",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
            else:
                sns.stripplot(
                    data=data,
                    x="algorithm",
                    y="value",
                    hue="algorithm",
                    palette=palette,
                    order=names,
                    jitter=0.15,
                    size=6,
                    alpha=0.8,
                    legend=False,
                    ax=ax,
                )
                medians = data.groupby("algorithm")["value"].median()
                for i, name in enumerate(names):
                    if name in medians:
                        ax.hlines(medians[name], i - 0.3, i + 0.3, color="black", lw=2.2, zorder=4)
            change = f"% change vs {reference}" if how == "relative" else f"algorithm − {reference}"
            ax.set_ylabel(f"{label}: {change}")
            ax.set_xlabel("")
            better = "higher" if higher else "lower"
            ax.set_title(f"{label} ({better} is better)")
            ax.tick_params(axis="x", rotation=20)
        title = (
            f"Per-seed differences against {reference} (dots: seeds; bars: medians; dashed: no difference)"
        )
        fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    return fig


def hypervolume_figure(curves: pd.DataFrame, reference_hv: pd.Series | None = None):
    """Hypervolume vs evaluations, one small panel per algorithm (median line, IQR band across seeds).

    Each panel draws the other algorithms' medians in grey for context.

    Args:
        curves: tidy rows ``algorithm, evaluations, median, q1, q3``.
        reference_hv: hypervolumes of the reference fronts, drawn as their median.
    """
    plt = pyplot()
    names = list(dict.fromkeys(curves["algorithm"]))
    columns = min(len(names), 4) or 1
    rows = -(-len(names) // columns) or 1
    with style() as sns:
        colors = dict(zip(names, sns.color_palette(PALETTE)))
        fig, axes = plt.subplots(
            rows,
            columns,
            figsize=(3.6 * columns, 3.2 * rows + 0.6),
            sharex=True,
            sharey=True,
            squeeze=False,
            constrained_layout=True,
        )
        for ax, name in zip(axes.flat, names):
            for other, frame in curves.groupby("algorithm", sort=False):
                if other != name:
                    ax.plot(frame["evaluations"], frame["median"], color="0.75", lw=1)
            own = curves[curves["algorithm"] == name]
            ax.fill_between(own["evaluations"], own["q1"], own["q3"], color=colors[name], alpha=0.25, lw=0)
            ax.plot(own["evaluations"], own["median"], color=colors[name], lw=2, label="median (IQR band)")
            if reference_hv is not None and len(reference_hv):
                ax.axhline(reference_hv.median(), color="black", ls="--", lw=1, label="reference front")
            ax.set_title(name)
        for ax in axes.flat[len(names) :]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("Evaluations")
        for ax in axes[:, 0]:
            ax.set_ylabel("Hypervolume")
        axes.flat[0].legend(fontsize=8, loc="lower right")
        fig.suptitle("Hypervolume across seeds (grey: the other algorithms' medians)", fontsize=10)
    return fig


def bench_figure(trials: pd.DataFrame, order: list[str], highlight: str | None = None):
    """The bench's ranking: hypervolume per grid cell across seeds, best median on top.

    Boxes and a dot per seed; the ``highlight`` cell (the paper's) in its own colour,
    its label in bold.
    """
    plt = pyplot()
    data = trials[trials["cell"].isin(order)][["cell", "hypervolume"]].dropna()
    with style() as sns:
        base, marked = sns.color_palette(PALETTE)[0], sns.color_palette(PALETTE)[3]
        palette = {cell: marked if cell == highlight else base for cell in order}
        fig, ax = plt.subplots(figsize=(9, 0.42 * len(order) + 1.6), constrained_layout=True)
        sns.boxplot(
            data=data,
            y="cell",
            x="hypervolume",
            hue="cell",
            order=order,
            palette=palette,
            legend=False,
            fliersize=0,
            boxprops={"alpha": 0.45},
            ax=ax,
        )
        sns.stripplot(
            data=data,
            y="cell",
            x="hypervolume",
            hue="cell",
            order=order,
            palette=palette,
            legend=False,
            size=4,
            jitter=0.15,
            ax=ax,
        )
        ax.set_yticks(range(len(order)), [f"{c} (paper)" if c == highlight else c for c in order], fontsize=8)
        for label, cell in zip(ax.get_yticklabels(), order):
            if cell == highlight:
                label.set_fontweight("bold")
                label.set_color(marked)
        ax.set_xlabel("Hypervolume (normalized, fixed reference; higher is better)")
        ax.set_ylabel("genome / algorithm / operators (ranked by median)")
        ax.set_title("Bench ranking: a dot per seed")
    return fig
