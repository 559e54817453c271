"""Matched-compression curves across seeds: median drops per level and method, paired tests, a figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evoprune.errors import plural
from evoprune.reporting.stats import holm, wilcoxon_p

# Drops beyond this (points) switch the figure's y axis to linear within +-1 point and log beyond,
# so a method that collapses (GMP uniform at 100x: 23 points) does not flatten the others' curves.
COLLAPSE_PP = 5.0


def drop_table(curves: pd.DataFrame, by: str = "algorithm") -> pd.DataFrame:
    """Median [min, max] test and validation drop per level and method, with the seed count.

    Args:
        curves: one row per trial and level (``seed``, ``by``, ``compression``,
            ``test_drop_pp``, ``drop_pp``).
    """
    rows = []
    order = {name: i for i, name in enumerate(dict.fromkeys(curves[by]))}  # methods as they came
    groups = sorted(curves.groupby(["compression", by]), key=lambda g: (g[0][0], order[g[0][1]]))
    for (level, name), frame in groups:
        rows.append(
            {
                "compression": level,
                by: name,
                "seeds": frame["seed"].nunique(),
                "test_drop_median": frame["test_drop_pp"].median(),
                "test_drop_min": frame["test_drop_pp"].min(),
                "test_drop_max": frame["test_drop_pp"].max(),
                "drop_median": frame["drop_pp"].median(),
            }
        )
    return pd.DataFrame(rows)


def paired_tests(curves: pd.DataFrame, subject: str, by: str = "algorithm") -> pd.DataFrame:
    """Per level, ``subject`` against every other method on the same seeds (test drops).

    ``wins`` counts seeds where the subject's test drop is smaller (ties count one half);
    ``p`` is the two-sided Wilcoxon signed-rank p-value of the paired differences,
    Holm-adjusted over the comparisons of each level (``p_holm``).
    """
    rows = []
    for level, frame in curves.groupby("compression", sort=True):
        table = frame.pivot_table(index="seed", columns=by, values="test_drop_pp", aggfunc="first")
        if subject not in table:
            continue
        level_rows = []
        for other in (c for c in table.columns if c != subject):
            pair = table[[subject, other]].dropna()
            diff = pair[subject] - pair[other]
            level_rows.append(
                {
                    "compression": level,
                    "subject": subject,
                    "other": other,
                    "pairs": len(pair),
                    "median_difference_pp": float(diff.median()) if len(pair) else np.nan,
                    "subject_wins": float(((diff < 0) + 0.5 * (diff == 0)).sum()) if len(pair) else np.nan,
                    "p": wilcoxon_p(pair[subject], pair[other]) if len(pair) else np.nan,
                }
            )
        for row, adjusted in zip(level_rows, holm([r["p"] for r in level_rows])):
            row["p_holm"] = adjusted
        rows += level_rows
    return pd.DataFrame(rows)


def curve_report(curves: pd.DataFrame, subject: str, by: str = "algorithm") -> str:
    """The report section of the curves: medians per level and method, and the paired tests."""
    drops = drop_table(curves, by)
    lines = [
        "\n## Matched compression: test drop (points) at equal final retraining\n\n",
        "Every method's model at exactly each level (`select.compressions`), retrained for the same "
        "number of epochs; drop = baseline minus model, in points (test split; validation in "
        "parentheses). Median [min, max] over seeds.\n\n",
        "| compression | " + " | ".join(str(m) for m in drops[by].unique()) + " |\n",
        "|---|" + "---|" * drops[by].nunique() + "\n",
    ]
    for level, frame in drops.groupby("compression", sort=True):
        cells = {
            row[
                by
            ]: f"{row['test_drop_median']:.2f} [{row['test_drop_min']:.2f}, {row['test_drop_max']:.2f}] "
            f"({row['drop_median']:.2f})"
            for row in frame.to_dict("records")
        }
        lines.append(f"| {level:g}x | " + " | ".join(cells.get(m, "") for m in drops[by].unique()) + " |\n")
    tests = paired_tests(curves, subject, by)
    if len(tests):
        lines += [
            f"\nPaired by seed, `{subject}` against each other method: the median of "
            f"(its test drop - the other's), the seeds where `{subject}` loses less, and a two-sided "
            "Wilcoxon signed-rank test (Holm-adjusted within each level). With n seeds the smallest "
            "possible p is 2 / 2^n (0.0625 for five).\n\n",
            "| compression | other | seeds | median difference (pt) | seeds won | p (Holm) |\n",
            "|---|---|---|---|---|---|\n",
        ]
        for row in tests.itertuples():
            lines.append(
                f"| {row.compression:g}x | {row.other} | {row.pairs} | {row.median_difference_pp:+.2f} | "
                f"{row.subject_wins:g} | {row.p_holm:.3g} |\n"
            )
    return "".join(lines)


def curve_figure(curves: pd.DataFrame, by: str = "algorithm", title: str = ""):
    """Test drop against compression, methods overlaid: per-seed points and the median line
    (each method's seed count in the legend when they differ)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    names = list(dict.fromkeys(curves[by]))
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    seeds = curves.groupby(by)["seed"].nunique() if "seed" in curves else pd.Series(dtype=int)
    uneven = seeds.nunique() > 1  # medians of 1 and 5 seeds side by side: say so
    markers, lines = "os^DvPX", ("-", "--", "-.", ":")  # told apart without colour too
    for i, name in enumerate(names):
        frame = curves[curves[by] == name]
        medians = frame.groupby("compression")["test_drop_pp"].median()
        marker, line = markers[i % len(markers)], lines[i % len(lines)]
        ax.plot(
            medians.index,
            medians.values,
            marker=marker,
            linestyle=line,
            color=palette[name],
            label=f"{name} ({plural(int(seeds[name]), 'seed')})" if uneven else str(name),
            linewidth=2,
        )
        jitter = 1.0 + 0.015 * (i - (len(names) - 1) / 2)
        ax.scatter(
            frame["compression"] * jitter,
            frame["test_drop_pp"],
            color=palette[name],
            marker=marker,
            s=14,
            alpha=0.45,
        )
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    ax.set_xscale("log")
    levels = sorted(curves["compression"].unique())
    ax.set_xticks(levels)
    ax.set_xticklabels([f"{level:g}x" for level in levels])
    ax.minorticks_off()
    ax.set_xlabel("compression (pruned layers' weights / kept weights)")
    ylabel = "test accuracy drop (points)\nlower is better"
    low, high = float(curves["test_drop_pp"].min()), float(curves["test_drop_pp"].max())
    if max(abs(low), high) > COLLAPSE_PP:  # one collapsed method would flatten the rest
        ax.set_yscale("symlog", linthresh=1.0, linscale=2.0)
        bottom, top = min(low, 0.0) - 0.1, max(high * 1.3, 1.0)
        ax.set_ylim(bottom, top)
        ticks = [
            t for t in (-20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50, 100) if bottom <= t <= top
        ]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_locator(plt.NullLocator())
        ylabel = "test accuracy drop (points; log scale above 1)\nlower is better"
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Matched compression: median over seeds (line) and each seed (markers)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
