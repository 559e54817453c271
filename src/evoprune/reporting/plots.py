"""Figures of one run (seaborn on matplotlib): functions take tables and return a Figure.

They compute nothing heavy: differences and percentages of the columns given, no model or
data. :func:`save_figure` writes one as PNG; the figures of comparisons and benches are in
:mod:`evoprune.reporting.trial_plots`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from evoprune.errors import plural

ZOOM_PP = 5.0  # the front figure shows drops up to at least this many points
PALETTE = "colorblind"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def style() -> Iterator[Any]:
    """seaborn's white-grid style and palette for the figures made inside (global state untouched)."""
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        yield sns


def save_figure(fig, path: Path) -> None:
    """Saves a figure atomically as PNG and closes it."""
    plt = pyplot()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _percent(value: float, _position=None) -> str:
    """A tick label of a kept-weights axis: ``0.5%``, ``2%``, ``100%``."""
    return f"{value:.2g}%" if value < 1 else f"{value:.3g}%"


def _drops(table: pd.DataFrame, column: str, base: float) -> np.ndarray:
    """Accuracy drop in points against ``base`` (positive: worse than the unpruned model)."""
    return 100.0 * (base - table[column].to_numpy(dtype=float))


def zoom_limit(drops: np.ndarray, selected_drop: float | None, tolerance_pp: float) -> float:
    """The top of the front figure's drop axis: ``ZOOM_PP``, or a bit beyond the selected point
    and the tolerance band when those are higher."""
    top = max(ZOOM_PP, 1.5 * tolerance_pp)
    if selected_drop is not None and np.isfinite(selected_drop):
        top = max(top, selected_drop + 0.5 * max(tolerance_pp, 1.0))
    return float(top)


def front_figure(
    front: pd.DataFrame,
    summary: dict,
    refined: pd.DataFrame | None = None,
    title: str = "",
):
    """The run's front: accuracy drop (points) against kept weights (%, log scale).

    Validation (the fitness split) and test are two marker styles; the baseline is the
    zero line, ``select.tolerance_pp`` a band above it, ``summary["selected"]`` a star,
    and fine-tuned points (``refined``) arrows from each point to its accuracy after
    fine-tuning. The drop axis is cut at :func:`zoom_limit`: points beyond it are drawn
    on the top edge as triangles and counted in the legend.

    Args:
        front: ``nonzero, accuracy, test_accuracy`` per front point.
        summary: the run's ``summary.json`` mapping (``baseline``, ``select``, ``selected``,
            ``fitness_split``).
        refined: ``refined.csv`` rows (``nonzero, refined_accuracy, refined_test_accuracy``).
    """
    plt = pyplot()

    base = summary["baseline"]
    split = summary.get("fitness_split", "validation")
    tolerance = float((summary.get("select") or {}).get("tolerance_pp", 1.0))
    chosen = summary.get("selected")
    drawn = front[front["nonzero"] > 0]
    kept = 100.0 * drawn["nonzero"].to_numpy(dtype=float) / max(int(base["nonzero"]), 1)
    series = {split: _drops(drawn, "accuracy", base["accuracy"])}
    if "test_accuracy" in drawn and split != "test":
        series["test"] = _drops(drawn, "test_accuracy", base["test_accuracy"])
    chosen_drop = None if chosen is None else 100.0 * (base["accuracy"] - chosen["accuracy"])
    top = zoom_limit(series[split], chosen_drop, tolerance)
    bottom = _bottom([*series.values(), *_refined_drops(refined, base)])
    left, right = _kept_range(kept, series, top, _also_shown(refined, chosen, base, top))
    with style() as sns:
        colors = sns.color_palette(PALETTE)
        fig, ax = plt.subplots(figsize=(10.5, 5.4), constrained_layout=True)
        ax.axhspan(
            0, tolerance, color=colors[2], alpha=0.12, lw=0, label=f"within {plural(tolerance, 'point')}"
        )
        tested = "" if split == "test" else f", test {base['test_accuracy']:.4f}"
        ax.axhline(0, color="black", lw=1, label=f"baseline ({split} {base['accuracy']:.4f}{tested})")
        off = _draw_front(ax, kept, series, top, left, colors)
        if off:
            label = f"{plural(off, 'front point')} dropping more than {plural(top, 'point')}\n"
            label += "(triangles on the top edge"
            hidden = int((kept < left).sum())
            label += f"; {hidden} smaller off the left)" if hidden else ")"
            ax.scatter([], [], marker="^", color="grey", label=label)
        _draw_refined(ax, refined, base, split, top, colors[3])
        _draw_selected(ax, chosen, base, top, colors[3])
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        _kept_axes(ax)
        ax.set_xlabel(f"Kept weights of the pruned layers (% of {int(base['nonzero']):,}, log scale)")
        ax.set_ylabel("Accuracy drop vs baseline (points, lower is better)")
        ax.set_title(title or "Front")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def _also_shown(refined: pd.DataFrame | None, chosen: dict | None, base: dict, top: float) -> np.ndarray:
    """Kept percentages of the fine-tuned points within the chart and of the selected point."""
    total = max(int(base["nonzero"]), 1)
    kept = [] if chosen is None else [100.0 * chosen["nonzero"] / total]
    if refined is not None and not refined.empty:
        drops = np.min(np.vstack(_refined_drops(refined, base)), axis=0)
        kept += list(100.0 * refined["nonzero"].to_numpy(dtype=float)[drops <= top] / total)
    return np.asarray([k for k in kept if k > 0], dtype=float)


def _kept_range(
    kept: np.ndarray, series: dict[str, np.ndarray], top: float, extra: np.ndarray
) -> tuple[float, float]:
    """The kept-weights axis: from a bit left of the smallest point on the chart to 100%."""
    shown = np.zeros(len(kept), dtype=bool)
    for drop in series.values():
        shown |= drop <= top
    candidates = np.concatenate([kept[shown], extra])
    low = candidates.min() if len(candidates) else (kept.min() if len(kept) else 1.0)
    high = max(kept.max() if len(kept) else 100.0, 100.0)
    return float(low) / 1.6, float(high) * 1.25


def _kept_axes(ax) -> None:
    """Percent ticks (1-2-5) on the kept-weights axis and a compression axis on top."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = ax.get_xlim()
    subs = (1.0, 2.0, 5.0) if high / low > 20 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    top_axis = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
    for axis, label in ((ax.xaxis, _percent), (top_axis.xaxis, lambda value, _: f"{value:g}x")):
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(label))
        axis.set_minor_formatter(NullFormatter())
    top_axis.set_xlabel("Compression (times fewer weights)")


def _draw_front(ax, kept: np.ndarray, series: dict[str, np.ndarray], top: float, left: float, colors) -> int:
    """Front points per split (filled: the fitness split; hollow: test); those above ``top``
    as triangles on the top edge (right of ``left``). Returns how many are above on some split."""
    off = np.zeros(len(kept), dtype=bool)
    for (name, drop), marker, fill in zip(series.items(), ("o", "s"), (True, False)):
        color = colors[0] if fill else colors[1]
        inside = drop <= top
        off |= ~inside
        if fill:  # the attainable drop at each size: a staircase through the front
            ax.plot(kept, np.minimum(drop, top), color=color, lw=0.8, alpha=0.5, drawstyle="steps-post")
        face = color if fill else "none"
        ax.scatter(
            kept[inside],
            drop[inside],
            marker=marker,
            s=30,
            facecolors=face,
            edgecolors=color,
            label=f"front, {name}",
            zorder=3,
        )
        edge = ~inside & (kept >= left)
        if edge.any():
            ax.scatter(
                kept[edge],
                np.full(int(edge.sum()), top),
                marker="^",
                s=40,
                color=color,
                alpha=0.6,
                clip_on=False,
                zorder=3,
            )
    return int(off.sum())


def _inverse(value):
    """Kept percent <-> compression ratio (``100 / x``; the top axis of the front figure)."""
    value = np.asarray(value, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value > 0, 100.0 / np.where(value > 0, value, 1.0), np.inf)


def _refined_drops(refined: pd.DataFrame | None, base: dict) -> list[np.ndarray]:
    """Drops of fine-tuned points on both splits (none without ``refined``)."""
    if refined is None or refined.empty:
        return []
    drops = [_drops(refined, "refined_accuracy", base["accuracy"])]
    if "refined_test_accuracy" in refined:
        drops.append(_drops(refined, "refined_test_accuracy", base["test_accuracy"]))
    return drops


def _bottom(drops: list[np.ndarray]) -> float:
    """The bottom of the drop axis: below every point (gains are negative drops) and below 0."""
    values = np.concatenate([d[np.isfinite(d)] for d in drops] + [np.zeros(1)])
    return min(-0.5, float(values.min()) - 0.3)


def _draw_selected(ax, chosen: dict | None, base: dict, top: float, color) -> None:
    """The selected point as a star, labelled with its size and test drop."""
    if not chosen:
        return
    x = 100.0 * chosen["nonzero"] / max(int(base["nonzero"]), 1)
    y = min(100.0 * (base["accuracy"] - chosen["accuracy"]), top)
    how = "fine-tuned" if chosen.get("refined") else "as pruned"
    label = (
        f"selected ({how}): {chosen['compression']:.2f}x fewer weights,\n"
        f"test drop {plural(round(chosen['test_drop_pp'], 2), 'point')}"
    )
    ax.scatter([x], [y], marker="*", s=260, color=color, edgecolors="black", lw=0.6, zorder=5, label=label)


def _draw_refined(ax, refined: pd.DataFrame | None, base: dict, split: str, top: float, color) -> None:
    """Fine-tuned points: an arrow from the point as pruned to it after fine-tuning (both splits)."""
    if refined is None or refined.empty:
        return
    kept = 100.0 * refined["nonzero"].to_numpy(dtype=float) / max(int(base["nonzero"]), 1)
    before = np.minimum(_drops(refined, "accuracy", base["accuracy"]), top)
    after = np.minimum(_drops(refined, "refined_accuracy", base["accuracy"]), top)
    for x, y0, y1 in zip(kept, before, after):
        ax.annotate(
            "", xy=(x, y1), xytext=(x, y0), arrowprops=dict(arrowstyle="->", color=color, lw=0.9, alpha=0.7)
        )
    ax.scatter(kept, after, marker="D", s=30, color=color, zorder=4, label=f"fine-tuned, {split}")
    if "refined_test_accuracy" in refined and split != "test":
        test = np.minimum(_drops(refined, "refined_test_accuracy", base["test_accuracy"]), top)
        ax.scatter(
            kept,
            test,
            marker="D",
            s=30,
            facecolors="none",
            edgecolors=color,
            zorder=4,
            label="fine-tuned, test",
        )


def run_title(summary: dict, model: str) -> str:
    """The front figure's title: model and method, dataset, pruned layers and seed."""
    layers = summary.get("layers", "")
    layers = ", ".join(layers) if isinstance(layers, (list, tuple)) else str(layers)
    return (
        f"{model}, {summary['algorithm']} ({summary.get('encoding', '')}) on {summary['dataset']}\n"
        f"pruned layers: {layers}; seed {summary['seed']}"
    )
