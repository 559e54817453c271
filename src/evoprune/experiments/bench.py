"""``evoprune bench``: genome x algorithm x operator variant x seeds, equal budgets (a trials preset)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from evoprune.config import Config
from evoprune.errors import ConfigError
from evoprune.experiments import methods
from evoprune.experiments.assemble import make_problem
from evoprune.experiments.configure import with_overrides
from evoprune.experiments.executors import check_executor
from evoprune.experiments.rundir import open_trials_dir
from evoprune.experiments.trials import Progress, TrialStore, budget_text, prepared_for, run, spec
from evoprune.io import atomic_write_text
from evoprune.models.training import import_tensorflow_quietly
from evoprune.reporting.curves import curve_figure, curve_report
from evoprune.reporting.plots import save_figure
from evoprune.reporting.report import bench_report
from evoprune.reporting.stats import a12, holm, mann_whitney_p
from evoprune.reporting.trial_plots import bench_figure
from evoprune.search.encodings import ENCODINGS
from evoprune.search.operators import check_pairing

PAPER = "threshold/paper/average+random_reset"
PEER = "pymoo-nsga2"
COLUMNS = (
    "evaluations",
    "baseline_accuracy",
    "baseline_test_accuracy",
    "best_fitness",
    "best_test_accuracy",
    "best_nonzero",
    "search_time_s",
    "worker_pid",
    "hypervolume",
    "igd",
    "nonzero_within_0.5pp",
    "test_nonzero_within_0.5pp",
    "nonzero_within_1pp",
    "test_nonzero_within_1pp",
    "selected_1pp_test_drop_pp",
    "refined_nonzero_within_1pp",
    "refined_test_accuracy",
    "refined_test_drop_pp",
    "selected_nonzero",
    "selected_compression",
    "selected_test_drop_pp",
)
METRICS = {
    "hypervolume": True,
    "best_fitness": True,
    "best_test_accuracy": True,
    "nonzero_within_1pp": False,
    "selected_1pp_test_drop_pp": False,
    "test_nonzero_within_1pp": False,
    "refined_nonzero_within_1pp": False,
    "refined_test_drop_pp": False,
    "selected_compression": True,
    "selected_test_drop_pp": False,
}


def trial_config(config: Config, encoding: str, algorithm: str, variant: str, seed: int) -> Config:
    """The run config of one grid cell and seed."""
    crossover, mutation = variant.split("+")
    return with_overrides(
        config,
        {
            "search.encoding": encoding,
            "search.algorithm": algorithm,
            "search.crossover": crossover,
            "search.mutation": mutation,
            "search.seed": seed,
        },
    )


def _spec(cell: str, config: Config, **extra) -> dict:
    """The spec of one grid cell's trial; its row starts with key, cell, its three parts and seed."""
    encoding, algorithm, variant = cell.split("/")
    key = f"{cell}/seed{config.search.seed}"
    labels = {
        "key": key,
        "cell": cell,
        "encoding": encoding,
        "algorithm": algorithm,
        "variant": variant,
        "seed": config.search.seed,
    }
    return spec(key, config, labels, COLUMNS, cell=cell, **extra)


def chosen_algorithms(config: Config) -> list[str]:
    """The grid's algorithms: ``bench.algorithms`` and, with ``bench.pymoo``, the pymoo peer."""
    b = config.bench
    return [*b.algorithms, *([PEER] if b.pymoo and PEER not in b.algorithms else [])]


def check_available(config: Config, executor: str | None = None) -> None:
    """Refuses, before any model is trained, an executor or algorithm whose extra is missing.

    Raises:
        ConfigError: an unknown executor, or settings an algorithm of the grid refuses
            (e.g. the paper's population below 20).
        MissingExtraError: ``dask`` without the ``dask`` extra, pymoo's peer without ``peer``.
    """
    check_executor(executor or config.bench.executor)
    for name in chosen_algorithms(config):
        peer = name == PEER and PEER not in config.bench.algorithms
        methods.require(name, "bench.pymoo (pymoo's NSGA2 as a peer)" if peer else None)
        with_overrides(config, {"search.algorithm": name})  # its own rules, as its trials will be


def grid(config: Config, lengths: dict[str, int]) -> tuple[list[dict], list[str]]:
    """Trial specs (plain dicts) for the grid, and the cells skipped as invalid pairings.

    Args:
        lengths: genome length of each encoding on this model (two_point needs >= 2).
    """

    specs, skipped = [], []
    b = config.bench
    table = {name: methods.get(name) for name in chosen_algorithms(config)}
    for encoding in b.encodings:
        for variant in b.variants:
            crossover, mutation = variant.split("+")
            try:
                check_pairing(
                    ENCODINGS[encoding].kind, lengths[encoding], crossover, mutation, encoding=encoding
                )
            except ConfigError as exc:
                skipped.append(f"{encoding} with {variant}: {exc}")
                continue
            for algorithm in (a for a, m in table.items() if m.operators):
                specs += [
                    _spec(
                        f"{encoding}/{algorithm}/{variant}",
                        trial_config(config, encoding, algorithm, variant, seed),
                    )
                    for seed in range(b.seeds)
                ]
        for algorithm in (a for a, m in table.items() if m.genomes and not m.operators):
            specs += [
                _spec(
                    f"{encoding}/{algorithm}/default",
                    with_overrides(
                        config,
                        {"search.encoding": encoding, "search.seed": seed, "search.algorithm": algorithm},
                    ),
                )
                for seed in range(b.seeds)
            ]
    for algorithm in (a for a, m in table.items() if not m.genomes):  # no genome, no operators
        specs += [
            _spec(
                f"-/{algorithm}/-",
                with_overrides(config, {"search.algorithm": algorithm, "search.seed": seed}),
            )
            for seed in range(b.seeds)
        ]
    if not specs:
        raise ConfigError(
            "No valid grid cell: every operator variant mismatches every encoding. "
            f"Received: bench.variants={list(b.variants)}"
        )
    return specs, skipped


def pretrain(config: Config, status: Callable[[str], None]) -> dict[str, int]:
    """Trains (or loads) each seed's model once, before workers start; returns genome lengths."""
    lengths = {}
    for seed in range(config.bench.seeds):
        prepared = prepared_for(config.with_overrides({"search.seed": seed}), status, fresh=seed == 0)
        if seed == 0:
            for encoding in config.bench.encodings:
                cfg = config.with_overrides({"search.encoding": encoding, "finetune.refine": "none"})
                lengths[encoding] = make_problem(cfg, prepared).encoding.length
    return lengths


def bench(
    config: Config,
    out: Path,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress = lambda *a: None,
    status: Callable[[str], None] = lambda msg: None,
) -> pd.DataFrame:
    """Runs the grid; each finished trial is appended to ``out/trials.csv`` at once.

    A rerun skips the trials already recorded there.

    Raises:
        MissingExtraError: before any work, when the executor or an algorithm needs an
            extra that is not installed.
    """
    check_available(config, executor)
    status(budget_text(config, equal=False))
    lengths = pretrain(config, status)
    specs, skipped = grid(config, lengths)
    atomic_write_text(out / "skipped.txt", "".join(f"{line}\n" for line in skipped))
    labels = ("key", "cell", "encoding", "algorithm", "variant", "seed")
    store = TrialStore(out, lambda row: row["key"], ("curves",), labels, progress, len(specs))
    progress("", len(store.done), len(specs))
    run(specs, store, executor or config.bench.executor, workers or config.bench.workers, scheduler)
    return store.trials


def run_bench(
    config: Config,
    out: Path,
    scheduler: str | None = None,
    progress: Progress = lambda *a: None,
    status: Callable[[str], None] = lambda msg: None,
) -> pd.DataFrame:
    """``evoprune bench``: opens (or resumes) ``out``, runs the grid, writes the report; the ranking."""

    check_available(config, "dask" if scheduler else None)
    open_trials_dir(out, config, free=("bench", "compare"))
    import_tensorflow_quietly()
    trials = bench(config, out, scheduler=scheduler, progress=progress, status=status)
    return write_outputs(config, trials, out)


def ranking(trials: pd.DataFrame) -> pd.DataFrame:
    """Cells ranked by median hypervolume, with A12 and Holm-adjusted p against the paper's cell."""

    paper = trials.loc[trials["cell"] == PAPER, "hypervolume"]
    rows = []
    for cell, frame in trials.groupby("cell", sort=False):
        hv = frame["hypervolume"]
        row = {
            "cell": cell,
            "seeds": len(frame),
            "hv_median": hv.median(),
            "hv_q1": hv.quantile(0.25),
            "hv_q3": hv.quantile(0.75),
            "a12_vs_paper": a12(hv, paper) if len(paper) else float("nan"),
            "p_vs_paper": mann_whitney_p(hv, paper) if len(paper) and cell != PAPER else float("nan"),
        }
        for metric in METRICS:
            if metric != "hypervolume":
                row[metric] = pd.to_numeric(frame[metric], errors="coerce").median()
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("hv_median", ascending=False, kind="stable")
    table["p_holm"] = holm(table["p_vs_paper"].tolist())
    return table.reset_index(drop=True)


def write_outputs(config: Config, trials: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Writes ranking.csv, report.md and hypervolume.png for a bench directory."""

    table = ranking(trials)
    atomic_write_text(out / "ranking.csv", table.to_csv(index=False))
    skipped = (out / "skipped.txt").read_text().splitlines() if (out / "skipped.txt").is_file() else []
    context = {
        "dataset": config.data.source,
        "evaluation budget per trial": config.search.max_evaluations or "all generations",
        "population": config.search.population,
        "seeds": trials["seed"].nunique(),
        "fine-tuning": config.finetune.refine,
        "baseline test accuracy (median)": f"{trials['baseline_test_accuracy'].median():.4f}",
    }
    report = bench_report(table, context, skipped, PAPER, config.model.model_file)
    curves = out / "curves.csv"
    if curves.is_file() and curves.stat().st_size > 1:  # matched-compression curves
        frame = pd.read_csv(curves)
        if len(frame):
            subject = PAPER if PAPER in set(frame["cell"]) else str(frame["cell"].iloc[0])
            report += curve_report(frame, subject, by="cell")
            save_figure(curve_figure(frame, by="cell"), out / "curve.png")
    atomic_write_text(out / "report.md", report)
    save_figure(bench_figure(trials, list(table["cell"]), PAPER), out / "hypervolume.png")
    return table
