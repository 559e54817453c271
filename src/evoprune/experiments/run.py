"""Experiments: prepare data and model, run one search, and tabulate its result."""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from evoprune import __version__
from evoprune.config import Config
from evoprune.data.dataset import Dataset, load_dataset
from evoprune.experiments.rundir import identity
from evoprune.models.target import PruneTarget, build_target
from evoprune.models.training import TrainedModel, load_or_train
from evoprune.refine.finetune import (
    FinetuneSettings,
    HeadFinetuner,
    RefiningEvaluator,
    best_refined,
    head_scorer,
    refine_front,
)
from evoprune.refine.magnitude import MAGNITUDE
from evoprune.refine.retrain import ModelFinetuner
from evoprune.reporting.metrics import compression, pareto_front
from evoprune.reporting.results import SUMMARY_VERSION, RunResult, native
from evoprune.scoring.evaluate import KerasEvaluator, PruningProblem
from evoprune.search import checkpoint
from evoprune.search.algorithms import LoopState, Observer, build_toolbox, evolve
from evoprune.search.encodings import make_encoding
from evoprune.search.seeding import SearchRandom

Status = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A loaded dataset and the trained model for one seed."""

    dataset: Dataset
    trained: TrainedModel

    def target(self, layers) -> PruneTarget:
        """The prune target of this model for a ``search.layers`` setting."""
        return build_target(self.trained.model, layers)


def prepare(config: Config, status: Status = lambda msg: None) -> Prepared:
    """Loads the dataset and loads (or trains and caches) the model for the run's seed."""
    status(f"Loading dataset {config.data.source}")
    dataset = load_dataset(config.data)
    if not len(dataset.split(config.data.fitness_split)[1]):
        from evoprune.errors import DataError

        raise DataError(
            f"The {config.data.fitness_split} split of {dataset.name} is empty (too few images "
            f"per class to carve it). Raise data.validation_fraction or add images. Received: "
            f"data.validation_fraction={config.data.validation_fraction}"
        )
    status(
        f"Loading model {config.model.model_file}"
        if config.model.model_file
        else f"Preparing model {config.model.architecture} (seed {config.search.seed}, "
        f"{config.model.epochs} epochs if not cached)"
    )
    trained = load_or_train(dataset, config.model, config.search.seed)
    prepared = Prepared(dataset, trained)
    prepared.target(config.search.layers)  # a layer name the model lacks fails before any output
    return prepared


def make_problem(config: Config, prepared: Prepared) -> PruningProblem:
    """Builds the encoding and the evaluators on the fitness split (and test, for reports)."""
    model, dataset = prepared.trained.model, prepared.dataset
    target = prepared.target(config.search.layers)
    fitness = KerasEvaluator(
        model,
        dataset.split(config.data.fitness_split),
        config.search.evaluator,
        config.model.batch_size,
        target,
    )
    test = (
        fitness
        if config.data.fitness_split == "test"
        else KerasEvaluator(model, dataset.test, "fast", config.model.batch_size, target)
    )
    encoding = make_encoding(config.search.encoding, fitness.kernels, config.search.min_threshold)
    if config.finetune.refine == "each":  # both splits score the fine-tuned head
        finetuner = make_finetuner(config, prepared, target)
        fitness_refined = RefiningEvaluator(fitness, finetuner)
        test = fitness_refined if test is fitness else RefiningEvaluator(test, finetuner)
        fitness = fitness_refined
    return PruningProblem(encoding, fitness, test)


def make_finetuner(config: Config, prepared: Prepared, target: PruneTarget) -> HeadFinetuner:
    """A head fine-tuner on the training split's cached features."""
    train = KerasEvaluator(
        prepared.trained.model, prepared.dataset.train, "fast", config.model.batch_size, target
    )
    f = config.finetune
    return HeadFinetuner(
        train.features,
        train.labels,
        train.kernel,
        train.bias,
        FinetuneSettings(f.steps, f.batch_size, f.learning_rate, config.search.seed),
        train_bias=target.layers[-1].bias is not None,
    )


def run_search(
    config: Config,
    observers: Sequence[Observer] = (),
    prepared: Prepared | None = None,
    status: Status = lambda msg: None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> RunResult:
    """Runs one search end to end and returns its frozen result.

    Randomness: the search draws from its own generators seeded with ``search.seed``
    (:class:`~evoprune.search.seeding.SearchRandom`), so a cached and a freshly trained model
    give the same search.
    With ``checkpoint_dir`` the state is checkpointed after every generation; with
    ``resume`` the search continues from that checkpoint and ends exactly as an
    uninterrupted run would.
    """
    wall_start = time.perf_counter()
    prepared = prepared or prepare(config, status)
    if config.search.algorithm == MAGNITUDE:
        from evoprune.refine.magnitude import run_magnitude

        result = run_magnitude(config, prepared, status)
        result.summary.update(identity(prepared))  # dataset_checksum, model_sha256, model_weights_sha256
        return result
    setup_start = time.perf_counter()
    problem = make_problem(config, prepared)
    rng = SearchRandom(config.search.seed)
    toolbox, strategy = build_toolbox(config.search, problem, rng.python)
    setup_time = time.perf_counter() - setup_start
    ident = identity(prepared)
    with rng.bound():
        state, earlier_search_time = None, 0.0
        if resume:
            payload = checkpoint.load(Path(checkpoint_dir) / checkpoint.CHECKPOINT, config)
            checkpoint.check_identity(payload["meta"], ident, Path(checkpoint_dir))
            state = checkpoint.restore(payload, problem, rng)
            earlier_search_time = payload["meta"]["search_time_s"]
            status(f"Resuming after generation {state.generation}")
        status(
            f"Searching: {config.search.algorithm}, population {config.search.population}, "
            f"{config.search.generations} generations"
        )
        search_start = time.perf_counter()

        def save_checkpoint(current: LoopState) -> None:
            checkpoint.save(
                Path(checkpoint_dir) / checkpoint.CHECKPOINT,
                current,
                problem,
                rng,
                config,
                earlier_search_time + time.perf_counter() - search_start,
                ident,
            )

        observers = ([save_checkpoint] if checkpoint_dir else []) + list(observers)
        state = evolve(
            toolbox,
            strategy,
            config.search.population,
            config.search.generations,
            observers,
            state=state,
            max_evaluations=config.search.max_evaluations,
        )
        search_time = earlier_search_time + time.perf_counter() - search_start
    result = tabulate(
        config, prepared, problem, state, search_time, setup_time, time.perf_counter() - wall_start
    )
    result.summary.update(ident)  # dataset_checksum, model_sha256, model_weights_sha256
    if config.finetune.refine == "front":
        status("Fine-tuning the front")
        result = refine(config, prepared, problem, result, status)
    return with_selection(config, problem, result)


def with_selection(config: Config, problem: PruningProblem, result: RunResult) -> RunResult:
    """Adds ``selected`` (see :mod:`evoprune.refine.select`) to the result's summary."""
    from evoprune.refine.select import select

    keys = [key for key, _ in problem.archive()]
    encoding = problem.encoding
    summary = dict(result.summary)
    summary["select"] = {"tolerance_pp": config.select.tolerance_pp}
    summary["selected"] = select(
        result.front,
        result.refined,
        summary["baseline"],
        config.select.tolerance_pp,
        lambda i: encoding.describe(keys[i]),
        lambda i: [m[0] for m in encoding.decode([keys[i]])],
        problem.evaluator.target,
    )
    return dataclasses.replace(result, summary=summary)


def make_model_finetuner(config: Config, prepared: Prepared, problem: PruningProblem) -> ModelFinetuner:
    """Whole-model fine-tuning (``finetune.scope = "model"``) of this run's model."""
    f, ds = config.finetune, prepared.dataset
    return ModelFinetuner(
        prepared.trained.model,
        ds.train,
        ds.split(config.data.fitness_split),
        ds.test,
        problem.evaluator.target,
        f.epochs,
        f.model_learning_rate,
        f.batch_size,
        config.search.seed,
        f.model_lr_schedule,
        f.distill,
        f.temperature,
        f.l2,
    )


def make_scorer(config: Config, prepared: Prepared, problem: PruningProblem):
    """``mask -> (fitness-split, test accuracy)`` after fine-tuning with the configured scope."""
    if config.finetune.scope == "model":
        return make_model_finetuner(config, prepared, problem).score
    finetuner = make_finetuner(config, prepared, problem.evaluator.target)
    return head_scorer(finetuner, problem.evaluator, problem.test_evaluator)


def refine(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    result: RunResult,
    status: Status = lambda msg: None,
) -> RunResult:
    """Fine-tunes the front's useful points and adds ``refined`` to the result and summary."""
    start = time.perf_counter()
    keys = [key for key, _ in problem.archive()]
    refined = refine_front(
        result.front,
        keys,
        problem,
        make_scorer(config, prepared, problem),
        config.finetune.max_points,
        config.finetune.max_drop_pp,
        within_pp=config.select.tolerance_pp,
        status=status,
    )
    summary = dict(result.summary)
    summary["refined"] = {
        "points": len(refined),
        "time_s": time.perf_counter() - start,
        "best_within_1pp": best_refined(refined, problem.base_accuracy),
    }
    return dataclasses.replace(result, summary=summary, refined=refined)


def _table(problem: PruningProblem, genomes: list, evaluations: list, index: list) -> pd.DataFrame:
    """One row per genome; ``eval_index`` is its position in the run's evaluation order."""
    nonzero = np.array([ev.nonzero for ev in evaluations], dtype=np.int64)
    columns = {"eval_index": np.asarray(index, dtype=np.int64)}
    if problem.encoding.name == "threshold":
        columns["threshold"] = [float(g[0]) for g in genomes]
    else:
        columns["genome"] = [problem.encoding.describe(g) for g in genomes]
    return pd.DataFrame(
        {
            **columns,
            "accuracy": [ev.accuracy for ev in evaluations],
            "nonzero": nonzero,
            "compression": compression(problem.base_nonzero, nonzero),
            "fitness": [problem.fitness(ev) for ev in evaluations],
        }
    )


def _with_test_accuracy(problem: PruningProblem, table: pd.DataFrame, keys: list) -> pd.DataFrame:
    table.insert(
        table.columns.get_loc("accuracy") + 1,
        "test_accuracy",
        problem.test_accuracy([keys[i] for i in table["eval_index"]]),
    )
    return table


def tabulate(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    state: LoopState,
    search_time: float,
    setup_time: float,
    wall_time: float,
) -> RunResult:
    """Builds the result tables and ``summary.json`` mapping from the final loop state."""
    keys, evals = (list(x) for x in zip(*problem.archive()))
    budget = config.search.max_evaluations or len(keys)  # the last generation may overshoot
    archive = _table(problem, keys[:budget], evals[:budget], list(range(min(budget, len(keys)))))
    front = pareto_front(archive)
    position = {key: i for i, key in enumerate(keys)}
    pop_keys = [tuple(float(x) for x in ind) for ind in state.population]
    population = _table(
        problem, pop_keys, [i.evaluation for i in state.population], [position[k] for k in pop_keys]
    )
    best_row = archive.loc[[archive["fitness"].idxmax()]].reset_index(drop=True)
    problem.test_accuracy(
        [
            keys[i]
            for table in (front, population, best_row)  # one batch, memoized
            for i in table["eval_index"]
        ]
    )
    front = _with_test_accuracy(problem, front, keys)
    population = _with_test_accuracy(problem, population, keys)
    population = population.sort_values("fitness", ascending=False, kind="stable").reset_index(drop=True)
    best_row = _with_test_accuracy(problem, best_row, keys)
    best = {key: native(best_row.at[0, key]) for key in best_row.columns if key != "eval_index"}
    logbook = pd.DataFrame(state.logbook)
    logbook["best_genome"] = logbook["best_genome"].map(lambda g: " ".join(f"{x:.8g}" for x in g))
    summary = run_summary(config, prepared, problem, search_time, setup_time, wall_time)
    summary.update({"best": best, "front_size": len(front)})
    return RunResult(config, summary, logbook, population, front, archive)


def run_summary(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    search_time: float,
    setup_time: float,
    wall_time: float,
) -> dict:
    """The ``summary.json`` keys every run has (a search adds ``best`` and ``front_size``)."""
    return {
        "version": SUMMARY_VERSION,
        "algorithm": config.search.algorithm,
        "seed": config.search.seed,
        "dataset": prepared.dataset.name,
        "dataset_checksum": prepared.dataset.checksum,
        "fitness_split": config.data.fitness_split,
        "evaluator": config.search.evaluator,
        "encoding": config.search.encoding,
        "layers": config.search.layers,
        "population": config.search.population,
        "generations": config.search.generations,
        "baseline": {
            "accuracy": problem.base_accuracy,
            "test_accuracy": problem.base_test_accuracy,
            "nonzero": problem.base_nonzero,
        },
        "evaluations": problem.evaluations,
        "model_evaluations": problem.model_evaluations,
        "search_time_s": search_time,
        "setup_time_s": setup_time,
        "train_time_s": prepared.trained.train_time_s,
        "model_cached": prepared.trained.cached,
        "wall_time_s": wall_time,
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import deap
    import keras
    import tensorflow as tf

    return {
        "evoprune": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "deap": deap.__version__,
        "pandas": pd.__version__,
    }
