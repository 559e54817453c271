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
        texts = [ax.text(x, y, f"{t:.3g}", fontsize=8)
                 for x, y, t in zip(data["accuracy"], data["compression"], data[label])]
        if texts:
            adjust_text(texts, x=list(data["accuracy"]), y=list(data["compression"]), ax=ax,
                        arrowprops=dict(arrowstyle="->", color="red", lw=0.5))
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
