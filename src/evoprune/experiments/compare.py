"""``evoprune compare``: algorithms x seeds on each seed's own model, at equal budgets (a trials preset)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.experiments import methods
from evoprune.experiments.assemble import Prepared, make_problem
from evoprune.experiments.configure import with_overrides
from evoprune.experiments.executors import check_executor
from evoprune.experiments.rundir import open_trials_dir
from evoprune.experiments.trials import (
    Progress,
    TrialStore,
    budget_text,
    front_igd,
    front_metrics,
    prepared_for,
    run,
    spec,
    with_budget,
)
from evoprune.io import atomic_write_text
from evoprune.models.training import import_tensorflow_quietly
from evoprune.reporting.curves import curve_figure, curve_report
from evoprune.reporting.metrics import pareto_front
from evoprune.reporting.plots import save_figure
from evoprune.reporting.report import compare_report
from evoprune.reporting.stats import paired_differences
from evoprune.reporting.trial_plots import PAIRED, differences_figure, fronts_figure, hypervolume_figure
from evoprune.scoring.evaluate import paper_fitness
from evoprune.scoring.sweep import exact_sweep
from evoprune.search.encodings import ENCODINGS, resolve_encoding
from evoprune.search.operators import check_pairing

REFERENCE = "sweep"
DIFFERENCES = "differences.png"  # per-seed differences against the paper's algorithm
UNION = "union"  # the reference where no exact front exists: non-dominated union of the seed's trials
# the reference is the one-threshold genome's exact front: fast evaluator, no fine-tuning
REFERENCE_SETTINGS = {"search.encoding": "threshold", "search.evaluator": "fast", "finetune.refine": "none"}
# what report.md says each reference row is
REFERENCE_NOTES = {
    REFERENCE: "the exact front of the one-threshold genome (all distinct masks)",
    UNION: "the non-dominated union of each seed's trials' fronts (this target has no exact front)",
}
KEY = ("algorithm", "seed")
COLUMNS = (
    "evaluations",
    "baseline_accuracy",
    "baseline_test_accuracy",
    "baseline_nonzero",
    "best_fitness",
    "best_accuracy",
    "best_test_accuracy",
    "best_nonzero",
    "best_compression",
    "front_size",
    "search_time_s",
    "hypervolume",
    "igd",
    "nonzero_within_0.5pp",
    "test_nonzero_within_0.5pp",
    "nonzero_within_1pp",
    "test_nonzero_within_1pp",
    "selected_1pp_test_drop_pp",
    "selected_nonzero",
    "selected_compression",
    "selected_test_drop_pp",
)
# metric -> True when higher is better
METRICS = {
    "hypervolume": True,
    "igd": False,
    "best_fitness": True,
    "best_accuracy": True,
    "best_test_accuracy": True,
    "best_compression": True,
    "nonzero_within_0.5pp": False,
    "nonzero_within_1pp": False,
    "test_nonzero_within_0.5pp": False,
    "test_nonzero_within_1pp": False,
    "selected_1pp_test_drop_pp": False,
    "selected_compression": True,
    "selected_test_drop_pp": False,
}


@dataclass(frozen=True)
class CompareResult:
    """The tidy tables of a comparison (one row per algorithm x seed in ``trials``)."""

    trials: pd.DataFrame
    generations: pd.DataFrame
    fronts: pd.DataFrame
    curves: pd.DataFrame | None = None

    def medians(self) -> pd.DataFrame:
        """Median per algorithm of every metric (see :func:`median_table`)."""
        return median_table(self.trials)


def trial_key(algorithm: str, seed: int) -> str:
    """The key of one trial (its spec's and, through algorithm and seed, its trials.csv row's)."""
    return f"{algorithm}/seed{int(seed)}"


def _row_key(row: dict) -> str:
    return trial_key(row["algorithm"], row["seed"])


def algorithm_config(config: Config, algorithm: str, seed: int) -> Config:
    """The run config of one trial (validates algorithm-specific sizes, e.g. DCD's 4s)."""
    return with_overrides(with_budget(config), {"search.algorithm": algorithm, "search.seed": seed})


def uses_sweep(config: Config, prepared: Prepared) -> bool:
    """True when the exact sweep is the reference: the threshold genome on one final Dense
    layer whose activation keeps the argmax (otherwise the union of the trials' fronts)."""
    target = prepared.target(config.search.layers)
    return resolve_encoding(config.search.encoding, len(target.layers)) == "threshold" and target.head_only


def _reference_row(
    name: str,
    seed: int,
    evaluations: int,
    base: dict,
    table: pd.DataFrame,
    front: pd.DataFrame,
    best_test: float,
    config: Config,
) -> dict:
    """The trials.csv row of a reference front (``table``: everything it was taken from)."""
    best = table.loc[table["fitness"].idxmax()]
    row = {
        "algorithm": name,
        "seed": seed,
        "evaluations": evaluations,
        "baseline_accuracy": base["accuracy"],
        "baseline_test_accuracy": base["test_accuracy"],
        "baseline_nonzero": base["nonzero"],
        "best_fitness": float(best["fitness"]),
        "best_accuracy": float(best["accuracy"]),
        "best_test_accuracy": best_test,
        "best_nonzero": int(best["nonzero"]),
        "best_compression": base["nonzero"] / max(int(best["nonzero"]), 1),
        "front_size": len(front),
        "search_time_s": float("nan"),
    }
    row.update(front_metrics(config, front, front, base["accuracy"], base["test_accuracy"], base["nonzero"]))
    return row


def reference_trial(config: Config, prepared: Prepared, seed: int) -> tuple[dict, pd.DataFrame]:
    """The exact sweep of one seed's model: its trial row and its (exact) front.

    The front of one magnitude threshold on the head, on the same model and fitness
    split, whatever evaluator path the compared searches use (the fast and exact paths
    give the same counts).
    """

    problem = make_problem(config.with_overrides(REFERENCE_SETTINGS), prepared)
    sweep = exact_sweep(problem.evaluator)
    sweep["fitness"] = [
        paper_fitness(a, n, problem.base_accuracy, problem.base_nonzero)
        for a, n in zip(sweep["accuracy"], sweep["nonzero"])
    ]
    front = pareto_front(sweep)
    front["test_accuracy"] = problem.test_accuracy(front[["threshold"]].to_numpy())
    best = sweep.loc[sweep["fitness"].idxmax()]
    base = {
        "accuracy": problem.base_accuracy,
        "test_accuracy": problem.base_test_accuracy,
        "nonzero": problem.base_nonzero,
    }
    row = _reference_row(
        REFERENCE,
        seed,
        len(sweep),
        base,
        sweep,
        front,
        problem.test_accuracy([[best["threshold"]]])[0],
        config,
    )
    return row, front


def union_trial(
    config: Config, seed: int, fronts: list[pd.DataFrame], base: dict, evaluations: int
) -> tuple[dict, pd.DataFrame]:
    """The union reference of one seed: the non-dominated points of all its trials' fronts."""
    columns = ["accuracy", "test_accuracy", "nonzero", "compression", "fitness"]
    table = pd.concat([f[columns] for f in fronts], ignore_index=True)
    front = pareto_front(table)
    best = table.loc[table["fitness"].idxmax()]
    return _reference_row(
        UNION, seed, evaluations, base, table, front, float(best["test_accuracy"]), config
    ), front


def check_config(config: Config) -> None:
    """Fails fast, before any work, on settings a comparison cannot run with.

    Raises:
        ConfigError: a population an algorithm cannot use (e.g. DCD's multiples of 4), or
            operators that do not fit the genome.
        MissingExtraError: the executor or an algorithm needs an extra that is not installed.
    """

    check_executor(config.compare.executor)
    for algorithm in config.compare.algorithms:
        methods.require(algorithm)
        algorithm_config(config, algorithm, 0)
    search = config.search  # the genome's length is known once the model is; 1 or 2 decide pairing
    one_layer = search.layers == "head" or (not isinstance(search.layers, str) and len(search.layers) == 1)
    encoding = resolve_encoding(search.encoding, 1 if one_layer else 2)
    one_gene = encoding == "threshold" or (encoding == "layer_thresholds" and one_layer)
    length = 1 if one_gene else 2
    check_pairing(ENCODINGS[encoding].kind, length, search.crossover, search.mutation, encoding=encoding)


def trial_specs(config: Config, algorithms: list[str], seed: int, exact: pd.DataFrame | None) -> list[dict]:
    """The specs of one seed's trials (``exact``: the reference front their IGD is measured to)."""
    records = None if exact is None else exact.to_dict("records")
    return [
        spec(
            trial_key(a, seed),
            algorithm_config(config, a, seed),
            {"algorithm": a, "seed": seed},
            COLUMNS,
            exact=records,
            tables=True,
        )
        for a in algorithms
    ]


def compare(
    config: Config,
    out: Path,
    progress: Progress = lambda *a: None,
    status: Callable[[str], None] = lambda msg: None,
) -> CompareResult:
    """Runs every algorithm on every seed's model at the same budget; resumes from ``out``.

    Trials run on ``compare.executor`` (as bench's do); those already in ``out/trials.csv``
    are skipped. Each finished trial is written at once (fronts and generations first, then
    its ``trials.csv`` row), so an interrupted comparison loses at most the trials in progress;
    where the reference is the union of a seed's fronts, the seed's rows are written together.
    """
    check_config(config)
    status(budget_text(config))
    store = TrialStore(
        out, _row_key, ("fronts", "generations", "curves"), KEY, progress, total_trials(config)
    )
    executor, workers = config.compare.executor, config.compare.workers
    for seed in range(config.compare.seeds):
        todo = [a for a in config.compare.algorithms if trial_key(a, seed) not in store.done]
        if not todo and {trial_key(REFERENCE, seed), trial_key(UNION, seed)} & store.done:
            continue
        seed_config = with_budget(config).with_overrides({"search.seed": seed})
        prepared = prepared_for(seed_config, status, fresh=True)
        if uses_sweep(seed_config, prepared):  # each trial is saved as soon as it ends
            row, exact = reference_trial(seed_config, prepared, seed)
            if _row_key(row) not in store.done:
                store.add(row, exact, [])
            run(trial_specs(config, todo, seed, exact), store, executor, workers)
            continue
        results: list[dict] = []  # the union needs every front of the seed first
        run(
            trial_specs(config, todo, seed, None),
            store,
            executor,
            workers,
            # mypy cannot infer a lambda whose extra parameter binds a default (kept for B023)
            on_result=lambda _spec, result, into=results: into.append(result),  # type: ignore[misc]
        )
        if results:
            _add_union(config, store, seed, results)
    return CompareResult(
        store.trials, store.tables["generations"], store.tables["fronts"], store.tables["curves"]
    )


def _add_union(config: Config, store: TrialStore, seed: int, results: list[dict]) -> None:
    """Adds the union reference of one seed, then its trials with their IGD to it."""
    saved = store.tables["fronts"]
    saved = [f for _, f in saved[saved["seed"] == seed].groupby("algorithm")] if len(saved) else []
    fronts = [pd.DataFrame(r["front"]) for r in results]
    first = results[0]["row"]
    base = {
        "accuracy": first["baseline_accuracy"],
        "test_accuracy": first["baseline_test_accuracy"],
        "nonzero": first["baseline_nonzero"],
    }
    row, union = union_trial(
        config, seed, fronts + saved, base, sum(r["row"]["evaluations"] for r in results)
    )
    if _row_key(row) not in store.done:
        store.add(row, union, [])
    for result, front in zip(results, fronts):
        trial = {**result["row"], "igd": front_igd(front, union, base["nonzero"])}
        store.add(trial, front, result["generations"], result.get("curve"))


def convergence(generations: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Median and IQR of hypervolume across seeds on a common grid of evaluations.

    Each trial's hypervolume is a step function of its evaluations (the value after the
    last generation at or below a grid point), so seeds that reach the budget at
    different generations are compared at equal evaluations.
    """
    if generations.empty:
        return pd.DataFrame(columns=["algorithm", "evaluations", "median", "q1", "q3"])
    grid = np.unique(
        np.linspace(generations["evaluations"].min(), generations["evaluations"].max(), points)
        .round()
        .astype(int)
    )
    rows = []
    for algorithm, frame in generations.groupby("algorithm", sort=False):
        curves = []
        for _, trial in frame.groupby("seed"):
            trial = trial.sort_values("evaluations")
            index = np.searchsorted(trial["evaluations"].to_numpy(), grid, side="right") - 1
            values = trial["hypervolume"].to_numpy()[np.clip(index, 0, None)]
            curves.append(np.where(index >= 0, values, np.nan))
        with warnings.catch_warnings():  # a grid point no seed has reached yet is NaN, rightly
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            q1, median, q3 = np.nanpercentile(np.array(curves), [25, 50, 75], axis=0)
        rows.append(
            pd.DataFrame({"algorithm": algorithm, "evaluations": grid, "median": median, "q1": q1, "q3": q3})
        )
    return pd.concat(rows, ignore_index=True)


def total_trials(config: Config) -> int:
    """Number of trials in a comparison, the exact sweep included."""
    return config.compare.seeds * (len(config.compare.algorithms) + 1)


def median_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Median per algorithm of every metric (for quick looks and the README)."""
    metrics = [m for m in METRICS if m in trials]
    return trials.groupby("algorithm", sort=False)[metrics].median(numeric_only=True)


def run_compare(
    config: Config,
    out: Path,
    progress: Progress = lambda *a: None,
    status: Callable[[str], None] = lambda msg: None,
) -> CompareResult:
    """``evoprune compare``: checks, opens (or resumes) ``out``, runs the trials, writes the report."""

    check_config(config)
    open_trials_dir(out, config, free=("compare", "bench"))  # a comparison uses no [bench] setting
    import_tensorflow_quietly()
    result = compare(config, out, progress=progress, status=status)
    write_outputs(config, result, out)
    return result


def write_outputs(config: Config, result: CompareResult, out: Path) -> None:
    """Writes report.md and the plots.

    The CSVs are written trial by trial, ``config.toml`` when the directory was opened
    (:func:`evoprune.experiments.rundir.open_trials_dir`).
    """

    trials = result.trials
    context = {
        "dataset": config.data.source,
        "fitness split": config.data.fitness_split,
        "seeds": trials["seed"].nunique(),
        "evaluation budget per run": with_budget(config).search.max_evaluations,
        "population": config.search.population,
        "baseline accuracy (median)": f"{trials['baseline_accuracy'].median():.4f}",
        "baseline test accuracy (median)": f"{trials['baseline_test_accuracy'].median():.4f}",
    }
    reference = UNION if UNION in set(trials["algorithm"]) else REFERENCE
    report = compare_report(
        trials, METRICS, reference, REFERENCE_NOTES[reference], context, model_file=config.model.model_file
    )
    if result.curves is not None and len(result.curves):  # matched-compression curves
        subject = config.compare.algorithms[0]
        report += curve_report(result.curves, subject)
        save_figure(curve_figure(result.curves), out / "curve.png")
    atomic_write_text(out / "report.md", report)
    save_figure(fronts_figure(result.fronts, reference, int(trials["seed"].min())), out / "fronts.png")
    save_figure(differences_figure(*differences(trials, reference), seeds_line(config)), out / DIFFERENCES)
    reference_hv = trials.loc[trials["algorithm"] == reference, "hypervolume"]
    if len(result.generations):
        save_figure(
            hypervolume_figure(convergence(result.generations), reference_hv), out / "hypervolume.png"
        )


def differences(trials: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, str]:
    """Per-seed differences of each algorithm against the paper's (or the first one compared)."""
    searched = [a for a in trials["algorithm"].unique() if a not in (reference, REFERENCE, UNION)]
    baseline = "paper" if "paper" in searched else (searched[0] if searched else "paper")
    metrics = [(column, how) for column, _, how, _ in PAIRED]
    return paired_differences(trials, metrics, baseline, searched), baseline


def seeds_line(config: Config) -> str:
    """What differs between the seeds of a comparison, in words."""
    if config.model.model_file:
        return (
            f"every seed prunes the same model ({Path(config.model.model_file).name}); seeds vary the search"
        )
    return "each seed trains its own model; every algorithm prunes that seed's model"
