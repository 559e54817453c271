"""Markdown reports of comparisons: medians with IQRs, pairwise tests, a plain answer."""

from __future__ import annotations

import math

import pandas as pd

from evoprune.errors import plural
from evoprune.reporting.stats import pairwise_tests, summarize

KEY_METRICS = ("hypervolume", "nonzero_within_1pp", "best_fitness", "best_test_accuracy")


def _two(value: float) -> str:
    """Two decimals, or the dash :func:`_fmt` gives a value that is missing (NaN)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def median_iqr_table(trials: pd.DataFrame, metrics: dict[str, bool], groups: list[str]) -> str:
    """Markdown table: one row per metric, one column per group, ``median [q1, q3]``."""
    stats = summarize(trials, list(metrics))
    header = "| metric | " + " | ".join(groups) + " |\n|---|" + "---|" * len(groups) + "\n"
    lines = []
    for metric, higher in metrics.items():
        cells = []
        for group in groups:
            row = stats[(stats["algorithm"] == group) & (stats["metric"] == metric)]
            cells.append(
                "–"
                if row.empty or not row["n"].iloc[0]
                else f"{_fmt(row['median'].iloc[0])} [{_fmt(row['q1'].iloc[0])}, {_fmt(row['q3'].iloc[0])}]"
            )
        arrow = "↑" if higher else "↓"
        lines.append(f"| {metric} {arrow} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + "\n"


def tests_table(tests: pd.DataFrame) -> str:
    """Markdown table of pairwise tests: Mann-Whitney U with A12, and paired Wilcoxon."""
    lines = [
        "| metric | a vs b | A12 (P(a > b)) | effect | MWU p (Holm) | seeds a > b | Wilcoxon p (Holm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in tests.itertuples():
        lines.append(
            f"| {row.metric} | {row.a} vs {row.b} | {row.a12:.2f} | {row.effect} | "
            f"{row.p_holm:.3g} | {row.wins:.0%} of {row.pairs} | {row.p_paired_holm:.3g} |"
        )
    return "\n".join(lines) + "\n"


def verdicts(tests: pd.DataFrame, metrics: dict[str, bool], baseline: str, alpha: float = 0.05) -> list[str]:
    """One sentence per algorithm and key metric: better, worse or no evidence, vs ``baseline``."""
    out = []
    for row in tests.itertuples():
        if row.metric not in KEY_METRICS or baseline not in (row.a, row.b):
            continue
        flip = row.a == baseline
        other = row.b if flip else row.a
        a12, wins = (1 - row.a12, 1 - row.wins) if flip else (row.a12, row.wins)
        stats = (
            f"higher on {wins:.0%} of {plural(int(row.pairs), 'seed')}, Wilcoxon p_Holm = "
            f"{row.p_paired_holm:.3g}; unpaired A12 = {a12:.2f}, MWU p_Holm = {row.p_holm:.3g}"
        )
        if row.p_paired_holm >= alpha or math.isnan(row.p_paired_holm):
            verdict = f"no significant difference ({stats})"
        else:
            better = (wins > 0.5) == metrics[row.metric]
            verdict = f"**{'better' if better else 'worse'}** than {baseline} ({stats})"
        out.append(f"- {other} on {row.metric}: {verdict}")
    return out


def models_sentence(model_file: str = "", what: str = "every algorithm prunes") -> str:
    """Where a comparison's models come from: a model file shared by every seed, or one per seed."""
    if model_file:
        return (
            f"Every seed prunes the same given model ({model_file}): the seeds vary the search "
            f"(and fine-tuning), not the model; {what} it"
        )
    return f"Each seed trains its own model; {what} that seed's model"


def compare_report(
    trials: pd.DataFrame,
    metrics: dict[str, bool],
    reference: str,
    reference_note: str,
    context: dict,
    model_file: str = "",
) -> str:
    """The whole ``report.md`` of a comparison.

    Args:
        reference: the reference rows' algorithm name, left out of the tests.
        reference_note: what those rows are, for one sentence of the report.
        model_file: the model every seed prunes, if given.
    """
    algorithms = [a for a in trials["algorithm"].unique() if a != reference]
    groups = algorithms + [reference]
    searched = trials[trials["algorithm"] != reference]
    tests = pairwise_tests(searched, list(metrics), algorithms)
    parts = [
        "# evoprune compare\n",
        "".join(f"- {key}: {value}\n" for key, value in context.items()),
        f"\n{models_sentence(model_file)} with the same "
        f"evaluation budget. `{reference}` is {reference_note}, shown for reference and left "
        f"out of the tests. Metrics on the "
        f"fitness split unless named `test_`; ↑ higher is better, ↓ lower is better.\n",
        "\n## Medians [first quartile, third quartile] across seeds\n\n",
        median_iqr_table(trials, metrics, groups),
    ]
    if "paper" in algorithms and len(algorithms) > 1:
        parts += [
            "\n## Does multi-objective search beat the paper's scalar fitness?\n\n",
            "\n".join(verdicts(tests, metrics, "paper")) + "\n",
        ]
    if len(algorithms) > 1:
        parts += [
            "\n## Pairwise tests\n\nVargha-Delaney A12 is the probability that a run of "
            "*a* has the larger value, with a two-sided Mann-Whitney U test (runs as "
            "independent samples). Because every algorithm prunes the same model for a "
            "given seed, the runs are also paired: *seeds a > b* counts the seeds where *a* "
            "is larger, with a two-sided Wilcoxon signed-rank test on the per-seed "
            "differences. The paired test removes the seed-to-seed variation that "
            "dominates the unpaired one, so the verdicts above use it. All p-values are "
            "Holm-adjusted within each metric and test.\n\n",
            tests_table(tests),
        ]
    return "".join(parts)


def bench_report(
    table: pd.DataFrame, context: dict, skipped: list[str], paper: str, model_file: str = ""
) -> str:
    """The ``report.md`` of a bench: cells ranked by median hypervolume, A12 vs the paper."""
    lines = [
        "| rank | genome / algorithm / operators | seeds | HV median [IQR] | A12 vs paper | "
        "p (Holm) | best test acc | nonzero within 1 pt | its test drop (pt) | "
        "fine-tuned nonzero within 1 pt | its test drop (pt) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(table.itertuples(), start=1):
        lines.append(
            f"| {rank} | {row.cell}{' (paper)' if row.cell == paper else ''} | {row.seeds} | "
            f"{row.hv_median:.4f} [{row.hv_q1:.4f}, {row.hv_q3:.4f}] | {_two(row.a12_vs_paper)} | "
            f"{_fmt(row.p_holm)} | {_fmt(row.best_test_accuracy)} | {_fmt(row.nonzero_within_1pp)} | "
            f"{_fmt(row.selected_1pp_test_drop_pp)} | {_fmt(row.refined_nonzero_within_1pp)} | "
            f"{_fmt(row.refined_test_drop_pp)} |"
        )
    parts = [
        "# evoprune bench\n\n",
        "".join(f"- {k}: {v}\n" for k, v in context.items()),
        "\nEvery trial has the same evaluation budget. "
        f"{models_sentence(model_file, 'every trial prunes')}. "
        "HV: normalized hypervolume of (validation accuracy, nonzero) with a fixed reference; "
        "A12 = P(cell's HV > paper's HV); two-sided Mann-Whitney U, Holm-adjusted. Sizes are "
        "the smallest nonzero count within 1 accuracy point of baseline on the validation "
        "split; the test drop next to each is that selected head's loss on the test split "
        "(fine-tuned: after retraining its kept weights). With fine-tuning inside the "
        "search (refine = each) the first size is already after fine-tuning. Medians across "
        "seeds.\n\n",
        "\n".join(lines) + "\n",
    ]
    if skipped:
        parts += [
            "\n## Skipped cells (operator does not fit the genome)\n\n",
            "".join(f"- {line}\n" for line in skipped),
        ]
    return "".join(parts)
