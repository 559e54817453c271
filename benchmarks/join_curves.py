"""Joins matched-compression curves from separate runs and comparisons into one report and figure.

A method added after a comparison was published (or run seed by seed, level by level, on
several cores) is paired with the published trials on the same seeds: the curves of run
directories (``curve.csv`` with the run's ``algorithm`` and ``seed`` from ``summary.json``)
and of comparisons (``curves.csv``) are stacked, and the joined ``curves.csv``, the report
section of ``evoprune compare`` (median drops, paired Wilcoxon tests of ``--subject``
against every other method) and ``curve.png`` are written to ``--out``.

Run::

    python -m benchmarks.join_curves --out OUT --subject gmp-pbt \\
        --curves docs/results/curves-lenet-300-100/curves.csv --runs RUN_DIR [RUN_DIR ...]

``--name`` renames the runs' method (a variant of a method already in ``--curves``);
``--alone NAME`` adds a ``gmp-pbt`` run's un-averaged continuation as its own method.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from evoprune.errors import plural
from evoprune.reporting.curves import curve_figure, curve_report


def run_curves(run: Path, alone: str = "", name: str = "") -> pd.DataFrame:
    """A run directory's ``curve.csv`` with its ``algorithm`` and ``seed`` columns.

    Args:
        name: the method's name in the joined curves (default: the run's ``algorithm``), to
            tell a variant (other settings of one method) from that method's published trials.
        alone: for a ``gmp-pbt`` run with ``average``, also the best member's own
            continuation at each level (``summary.json`` ``gmp.evolved.<level>.alone.*``),
            as the method ``alone`` (same mask, so same ``nonzero`` and ``per_layer``).
    """
    summary = json.loads((run / "summary.json").read_text())
    frame = pd.read_csv(run / "curve.csv")
    frame.insert(0, "seed", summary["seed"])
    frame.insert(0, "algorithm", name or summary["algorithm"])
    if not alone:
        return frame
    base, evolved = summary["baseline"], summary["gmp"]["evolved"]
    rows = frame.copy()
    rows["algorithm"] = alone
    rows["accuracy"] = [evolved[f"{c:g}"]["alone.accuracy"] for c in rows["compression"]]
    rows["test_accuracy"] = [evolved[f"{c:g}"]["alone.test_accuracy"] for c in rows["compression"]]
    rows["drop_pp"] = 100.0 * (base["accuracy"] - rows["accuracy"])
    rows["test_drop_pp"] = 100.0 * (base["test_accuracy"] - rows["test_accuracy"])
    rows = rows.drop(columns=[c for c in ("loss_bound_pp",) if c in rows])
    return pd.concat([frame, rows], ignore_index=True)


def join(curves: list[Path], runs: list[Path], alone: str = "", name: str = "") -> pd.DataFrame:
    """All curves, one row per (algorithm, seed, level); a level made twice is refused."""
    frames = [pd.read_csv(path) for path in curves] + [run_curves(run, alone, name) for run in runs]
    joined = pd.concat(frames, ignore_index=True).sort_values(
        ["algorithm", "seed", "compression"], kind="stable"
    )
    twice = joined.duplicated(["algorithm", "seed", "compression"])
    if twice.any():
        first = joined[twice].iloc[0]
        raise SystemExit(
            f"one level in two inputs: {first['algorithm']}, seed {first['seed']}, {first['compression']:g}x"
        )
    order = list(dict.fromkeys(pd.concat(frames)["algorithm"]))
    joined["_order"] = joined["algorithm"].map(order.index)
    return joined.sort_values(["_order", "seed", "compression"]).drop(columns="_order").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subject", required=True, help="the method tested against every other one")
    parser.add_argument("--curves", type=Path, nargs="*", default=[], help="comparisons' curves.csv")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run directories")
    parser.add_argument(
        "--alone", default="", help="name for the best member's own continuation in gmp-pbt runs with average"
    )
    parser.add_argument(
        "--name", default="", help="the run directories' method name (default: their algorithm)"
    )
    args = parser.parse_args(argv)
    joined = join(args.curves, args.runs, args.alone, args.name)
    args.out.mkdir(parents=True, exist_ok=True)
    joined.to_csv(args.out / "curves.csv", index=False)
    report = curve_report(joined, args.subject)
    (args.out / "report.md").write_text(f"# Joined matched-compression curves\n{report}")
    counts = joined.groupby("algorithm")["seed"].nunique()
    seeds = f", {plural(int(counts.iloc[0]), 'seed')}" if counts.nunique() == 1 else ""  # else in the legend
    figure = curve_figure(joined, title=f"{args.subject} against the others{seeds}")
    figure.savefig(args.out / "curve.png", dpi=120, bbox_inches="tight")
    print(report)


if __name__ == "__main__":
    main()
