"""``evoprune compare``: algorithms x seeds on each seed's own model, at equal budgets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.errors import EvopruneError
from evoprune.experiments import Prepared, make_problem, prepare, run_search
from evoprune.rundir import check_resumable  # noqa: F401  (compare's public name)
from evoprune.metrics import hypervolume, igd, pareto_front, smallest_nonzero_within
from evoprune.results import RunResult, atomic_write_text

REFERENCE = "sweep"
UNION = "union"  # the reference where no exact front exists: non-dominated union of the seed's trials
# the reference is the one-threshold genome's exact front: fast evaluator, no fine-tuning
REFERENCE_SETTINGS = {"search.encoding": "threshold", "search.evaluator": "fast", "finetune.refine": "none"}
KEY = ["algorithm", "seed"]
# metric -> True when higher is better
METRICS = {
    "hypervolume": True, "igd": False, "best_fitness": True, "best_accuracy": True,
    "best_test_accuracy": True, "best_compression": True,
    "nonzero_within_0.5pp": False, "nonzero_within_1pp": False,
    "test_nonzero_within_0.5pp": False, "test_nonzero_within_1pp": False,
    "selected_1pp_test_drop_pp": False,
    "selected_compression": True, "selected_test_drop_pp": False,
}


@dataclass(frozen=True)
class CompareResult:
    """The tidy tables of a comparison (one row per algorithm x seed in ``trials``)."""

    trials: pd.DataFrame
    generations: pd.DataFrame
    fronts: pd.DataFrame


def with_budget(config: Config) -> Config:
    """Equal budgets: without ``search.max_evaluations`` it is population x generations
    (the notebook's 20 x 30 = 600), and generations only bound the loop from above."""
    search = config.search
    budget = search.max_evaluations or search.population * search.generations
    return config.with_overrides({"search.max_evaluations": budget,
                                  "search.generations": max(search.generations, 10 * budget)})


def algorithm_config(config: Config, algorithm: str, seed: int) -> Config:
    """The run config of one trial (validates algorithm-specific sizes, e.g. DCD's 4s)."""
    return with_budget(config).with_overrides({"search.algorithm": algorithm, "search.seed": seed})


def front_metrics(config: Config, front: pd.DataFrame, exact: pd.DataFrame | None,
                  base_accuracy: float, base_test_accuracy: float, base_nonzero: int) -> dict:
    """Hypervolume, IGD to the exact front (NaN without one), smallest sizes within 0.5 / 1 points."""
    ref_nonzero = config.metrics.ref_nonzero or base_nonzero
    row = {
        "hypervolume": hypervolume(front["accuracy"], front["nonzero"], base_nonzero,
                                   config.metrics.ref_accuracy, ref_nonzero),
        "igd": (igd(front[["accuracy", "nonzero"]].to_numpy(), exact[["accuracy", "nonzero"]].to_numpy(),
                    base_nonzero) if exact is not None else float("nan")),
    }
    for points in (0.5, 1.0):
        tag = f"{points:g}pp"
        row[f"nonzero_within_{tag}"] = smallest_nonzero_within(front, base_accuracy, points)
        row[f"test_nonzero_within_{tag}"] = smallest_nonzero_within(
            front, base_test_accuracy, points, accuracy_col="test_accuracy")
    chosen = front[front["nonzero"] == row["nonzero_within_1pp"]]
    row["selected_1pp_test_drop_pp"] = (100 * (base_test_accuracy - chosen["test_accuracy"].iloc[0])
                                        if len(chosen) else None)
    return row


def _trial_row(config: Config, algorithm: str, seed: int, result: RunResult,
               exact: pd.DataFrame) -> dict:
    s = result.summary
    base = s["baseline"]
    row = {"algorithm": algorithm, "seed": seed, "evaluations": len(result.archive),
           "baseline_accuracy": base["accuracy"], "baseline_test_accuracy": base["test_accuracy"],
           "baseline_nonzero": base["nonzero"], "best_fitness": s["best"]["fitness"],
           "best_accuracy": s["best"]["accuracy"], "best_test_accuracy": s["best"]["test_accuracy"],
           "best_nonzero": s["best"]["nonzero"], "best_compression": s["best"]["compression"],
           "front_size": len(result.front), "search_time_s": s["search_time_s"]}
    row.update(front_metrics(config, result.front, exact, base["accuracy"], base["test_accuracy"],
                             base["nonzero"]))
    row.update(selected_columns(s))
    return row


def selected_columns(summary: dict) -> dict:
    """A trial's ``summary["selected"]`` as table columns (None where nothing was within tolerance)."""
    chosen = summary.get("selected") or {}
    return {"selected_nonzero": chosen.get("nonzero"), "selected_compression": chosen.get("compression"),
            "selected_test_drop_pp": chosen.get("test_drop_pp")}


def _generation_rows(config: Config, algorithm: str, seed: int, result: RunResult) -> pd.DataFrame:
    base = result.summary["baseline"]
    archive = result.archive
    rows = []
    for gen, evaluations in zip(result.logbook["gen"], result.logbook["evaluations"]):
        seen = archive.iloc[:min(int(evaluations), len(archive))]
        front = pareto_front(seen)
        rows.append({"algorithm": algorithm, "seed": seed, "gen": int(gen), "evaluations": len(seen),
                     "hypervolume": hypervolume(front["accuracy"], front["nonzero"], base["nonzero"],
                                                config.metrics.ref_accuracy,
                                                config.metrics.ref_nonzero or base["nonzero"]),
                     "best_fitness": float(seen["fitness"].max())})
    return pd.DataFrame(rows)


def uses_sweep(config: Config, prepared: Prepared) -> bool:
    """True when the exact sweep is the reference: the threshold genome on one final Dense
    layer whose activation keeps the argmax (otherwise the union of the trials' fronts)."""
    return config.search.encoding == "threshold" and prepared.target(config.search.layers).head_only


def _reference_row(name: str, seed: int, evaluations: int, base: dict, table: pd.DataFrame,
                   front: pd.DataFrame, best_test: float, config: Config) -> dict:
    """The trials.csv row of a reference front (``table``: everything it was taken from)."""
    best = table.loc[table["fitness"].idxmax()]
    row = {"algorithm": name, "seed": seed, "evaluations": evaluations,
           "baseline_accuracy": base["accuracy"], "baseline_test_accuracy": base["test_accuracy"],
           "baseline_nonzero": base["nonzero"], "best_fitness": float(best["fitness"]),
           "best_accuracy": float(best["accuracy"]), "best_test_accuracy": best_test,
           "best_nonzero": int(best["nonzero"]),
           "best_compression": base["nonzero"] / max(int(best["nonzero"]), 1),
           "front_size": len(front), "search_time_s": float("nan")}
    row.update(front_metrics(config, front, front, base["accuracy"], base["test_accuracy"], base["nonzero"]))
    return row


def reference_trial(config: Config, prepared: Prepared, seed: int) -> tuple[dict, pd.DataFrame]:
    """The exact sweep of one seed's model: its trial row and its (exact) front.

    The front of one magnitude threshold on the head, on the same model and fitness
    split, whatever evaluator path the compared searches use (the fast and exact paths
    give the same counts).
    """
    from evoprune.sweep import exact_sweep

    problem = make_problem(config.with_overrides(REFERENCE_SETTINGS), prepared)
    sweep = exact_sweep(problem.evaluator)
    sweep["fitness"] = [problem.fitness(_Eval(a, n)) for a, n in zip(sweep["accuracy"], sweep["nonzero"])]
    front = pareto_front(sweep)
    front["test_accuracy"] = problem.test_accuracy(front[["threshold"]].to_numpy())
    best = sweep.loc[sweep["fitness"].idxmax()]
    base = {"accuracy": problem.base_accuracy, "test_accuracy": problem.base_test_accuracy,
            "nonzero": problem.base_nonzero}
    row = _reference_row(REFERENCE, seed, len(sweep), base, sweep, front,
                         problem.test_accuracy([[best["threshold"]]])[0], config)
    return row, front


def union_trial(config: Config, seed: int, fronts: list[pd.DataFrame], base: dict,
                evaluations: int) -> tuple[dict, pd.DataFrame]:
    """The union reference of one seed: the non-dominated points of all its trials' fronts."""
    columns = ["accuracy", "test_accuracy", "nonzero", "compression", "fitness"]
    table = pd.concat([f[columns] for f in fronts], ignore_index=True)
    front = pareto_front(table)
    best = table.loc[table["fitness"].idxmax()]
    return _reference_row(UNION, seed, evaluations, base, table, front, float(best["test_accuracy"]),
                          config), front


@dataclass(frozen=True)
class _Eval:
    accuracy: float
    nonzero: int


Progress = Callable[[str, int], None]


def check_config(config: Config) -> None:
    """Fails fast, before any work, on settings a comparison cannot run with.

    Raises:
        ConfigError: a population an algorithm cannot use (e.g. DCD's multiples of 4), or
            operators that do not fit the genome.
    """
    from evoprune.encodings import ENCODINGS
    from evoprune.operators import check_pairing

    for algorithm in config.compare.algorithms:
        algorithm_config(config, algorithm, 0)
    search = config.search        # the genome's length is known once the model is; 1 or 2 decide pairing
    one_layer = search.layers == "head" or (not isinstance(search.layers, str) and len(search.layers) == 1)
    one_gene = search.encoding == "threshold" or (search.encoding == "layer_thresholds" and one_layer)
    length = 1 if one_gene else 2
    check_pairing(ENCODINGS[search.encoding].kind, length, search.crossover, search.mutation,
                  encoding=search.encoding)


def compare(config: Config, out: Path, progress: Progress = lambda label, done: None,
            status: Callable[[str], None] = lambda msg: None) -> CompareResult:
    """Runs every algorithm on every seed's model at the same budget; resumes from ``out``.

    Trials already in ``out/trials.csv`` are skipped. Each finished trial is written
    at once (fronts and generations first, then its ``trials.csv`` row), so an
    interrupted comparison loses at most the trial in progress.
    """
    check_config(config)
    done = _load_existing(out)
    trials, generations, fronts = done.trials, done.generations, done.fronts
    finished = set(zip(trials["algorithm"], trials["seed"])) if len(trials) else set()
    for seed in range(config.compare.seeds):
        todo = [a for a in config.compare.algorithms if (a, seed) not in finished]
        if not todo and {(REFERENCE, seed), (UNION, seed)} & finished:
            continue
        seed_config = with_budget(config).with_overrides({"search.seed": seed})
        prepared = prepare(seed_config, status)
        sweep = uses_sweep(seed_config, prepared)
        new: list[tuple] = []                    # (algorithm, trials row, front, generation rows)
        if sweep:                                # each trial is saved as soon as it ends
            row, exact = reference_trial(seed_config, prepared, seed)
            new = [] if (REFERENCE, seed) in finished else [(REFERENCE, row, exact, pd.DataFrame())]
            trials, generations, fronts = _save_new(out, trials, generations, fronts, new, finished, progress)
        results = {}
        for algorithm, result in _run_trials(config, todo, seed, prepared):
            results[algorithm] = result
            if sweep:
                new.append((algorithm, _trial_row(config, algorithm, seed, result, exact), result.front,
                            _generation_rows(config, algorithm, seed, result)))
                trials, generations, fronts = _save_new(out, trials, generations, fronts, new, finished,
                                                        progress)
        if not sweep and results:                # the union needs every front of the seed first
            saved = [f for _, f in fronts[fronts["seed"] == seed].groupby("algorithm")] if len(fronts) else []
            base = next(iter(results.values())).summary["baseline"]
            union_row, union = union_trial(config, seed, [r.front for r in results.values()] + saved, base,
                                           sum(len(r.archive) for r in results.values()))
            if (UNION, seed) not in finished:
                new.append((UNION, union_row, union, pd.DataFrame()))
            new += [(a, _trial_row(config, a, seed, r, union), r.front, _generation_rows(config, a, seed, r))
                    for a, r in results.items()]
        trials, generations, fronts = _save_new(out, trials, generations, fronts, new, finished, progress)
    return CompareResult(trials, generations, fronts)


def run_trial(spec: dict) -> dict:
    """Runs one trial in any process (spawned or a Dask worker); returns its tables and summary."""
    from evoprune.config import from_dict
    from evoprune.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    result = run_search(from_dict(spec["config"]))
    return {"summary": result.summary, "front": result.front, "archive": result.archive,
            "logbook": result.logbook}


def _run_trials(config: Config, algorithms: list[str], seed: int, prepared: Prepared):
    """Yields ``(algorithm, result)`` for one seed's trials as they end, on ``compare.executor``.

    ``serial`` runs them here on the already loaded model; ``local`` and ``dask`` send
    each trial to a worker, which loads the model that :func:`prepare` cached.
    """
    from types import SimpleNamespace

    from evoprune.executors import run_tasks

    if config.compare.executor == "serial":
        for algorithm in algorithms:
            yield algorithm, run_search(algorithm_config(config, algorithm, seed), prepared=prepared)
        return
    specs = [{"key": f"{a}/seed{seed}", "algorithm": a, "config": algorithm_config(config, a, seed).to_dict()}
             for a in algorithms]
    done: list = []
    run_tasks("evoprune.compare:run_trial", specs, executor=config.compare.executor,
              workers=config.compare.workers, on_result=lambda spec, r: done.append((spec["algorithm"], r)))
    for algorithm, r in done:  # saved in order of completion, after the seed's trials all ended
        yield algorithm, SimpleNamespace(**r)


def _save_new(out: Path, trials: pd.DataFrame, generations: pd.DataFrame, fronts: pd.DataFrame,
              new: list, finished: set, progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Adds finished trials (fronts and generations first, then trials.csv rows), saves, empties ``new``."""
    while new:
        algorithm, row, front, gens = new.pop(0)
        fronts = pd.concat([fronts, front.assign(algorithm=algorithm, seed=row["seed"])], ignore_index=True)
        generations = pd.concat([generations, gens], ignore_index=True)
        trials = pd.concat([trials, pd.DataFrame([row])], ignore_index=True)
        _save(out, trials, generations, fronts)
        finished.add((algorithm, row["seed"]))
        progress(f"{algorithm} seed {row['seed']}", len(finished))
    return trials, generations, fronts


INT_COLUMNS = ("seed", "evaluations", "baseline_nonzero", "best_nonzero", "front_size", "gen", "nonzero",
               "nonzero_within_0.5pp", "nonzero_within_1pp", "test_nonzero_within_0.5pp",
               "test_nonzero_within_1pp", "selected_nonzero")


def _integers(table: pd.DataFrame) -> pd.DataFrame:
    """Count columns as nullable integers (no ``1501.0`` in the CSVs)."""
    return table.astype({c: "Int64" for c in INT_COLUMNS if c in table})


def _save(out: Path, trials: pd.DataFrame, generations: pd.DataFrame, fronts: pd.DataFrame) -> None:
    trials, generations, fronts = (_integers(t) for t in (trials, generations, fronts))
    atomic_write_text(out / "fronts.csv", fronts.to_csv(index=False))
    atomic_write_text(out / "generations.csv", generations.to_csv(index=False))
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))  # the commit point


def _load_existing(out: Path) -> CompareResult:
    """Finished trials from an earlier, interrupted compare in ``out`` (else empty tables)."""
    empty = CompareResult(pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY))
    if not (out / "trials.csv").is_file():
        return empty
    try:
        trials = pd.read_csv(out / "trials.csv")
        keys = set(zip(trials["algorithm"], trials["seed"]))
        tables = [pd.read_csv(out / name) if (out / name).is_file() and (out / name).stat().st_size > 1
                  else pd.DataFrame(columns=KEY) for name in ("generations.csv", "fronts.csv")]
    except (pd.errors.ParserError, KeyError, ValueError) as exc:
        raise EvopruneError(f"Cannot resume: {out / 'trials.csv'} is unreadable ({exc})") from exc
    kept = [t[[k in keys for k in zip(t["algorithm"], t["seed"])]] if len(t) else t for t in tables]
    return CompareResult(trials, kept[0].reset_index(drop=True), kept[1].reset_index(drop=True))


def convergence(generations: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Median and IQR of hypervolume across seeds on a common grid of evaluations.

    Each trial's hypervolume is a step function of its evaluations (the value after the
    last generation at or below a grid point), so seeds that reach the budget at
    different generations are compared at equal evaluations.
    """
    if generations.empty:
        return pd.DataFrame(columns=["algorithm", "evaluations", "median", "q1", "q3"])
    grid = np.unique(np.linspace(generations["evaluations"].min(), generations["evaluations"].max(),
                                 points).round().astype(int))
    rows = []
    for algorithm, frame in generations.groupby("algorithm", sort=False):
        curves = []
        for _, trial in frame.groupby("seed"):
            trial = trial.sort_values("evaluations")
            index = np.searchsorted(trial["evaluations"].to_numpy(), grid, side="right") - 1
            values = trial["hypervolume"].to_numpy()[np.clip(index, 0, None)]
            curves.append(np.where(index >= 0, values, np.nan))
        q1, median, q3 = np.nanpercentile(np.array(curves), [25, 50, 75], axis=0)
        rows.append(pd.DataFrame({"algorithm": algorithm, "evaluations": grid, "median": median,
                                  "q1": q1, "q3": q3}))
    return pd.concat(rows, ignore_index=True)


def total_trials(config: Config) -> int:
    """Number of trials in a comparison, the exact sweep included."""
    return config.compare.seeds * (len(config.compare.algorithms) + 1)


def median_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Median per algorithm of every metric (for quick looks and the README)."""
    metrics = [m for m in METRICS if m in trials]
    return trials.groupby("algorithm", sort=False)[metrics].median(numeric_only=True)



def write_outputs(config: Config, result: CompareResult, out: Path) -> None:
    """Writes report.md and the plots.

    The CSVs are written trial by trial, ``config.toml`` when the directory was opened
    (:func:`evoprune.rundir.open_trials_dir`).
    """
    from evoprune.plots import boxplots_figure, fronts_figure, hypervolume_figure, save_figure
    from evoprune.report import compare_report

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
    atomic_write_text(out / "report.md", compare_report(trials, METRICS, reference, context))
    save_figure(fronts_figure(result.fronts, reference, int(trials["seed"].min())), out / "fronts.png")
    save_figure(boxplots_figure(trials), out / "boxplots.png")
    reference_hv = trials.loc[trials["algorithm"] == reference, "hypervolume"]
    if len(result.generations):
        save_figure(hypervolume_figure(convergence(result.generations), reference_hv),
                    out / "hypervolume.png")
