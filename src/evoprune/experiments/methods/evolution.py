"""The DEAP strategies as methods: search, tabulate, fine-tune the front, select."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, identity, make_problem, make_scorer
from evoprune.experiments.methods.base import Method, RunContext
from evoprune.experiments.result import RunResult, native, run_summary
from evoprune.refine.finetune import best_refined, refine_front
from evoprune.refine.select import select
from evoprune.reporting.metrics import compression, pareto_front
from evoprune.scoring.evaluate import PruningProblem
from evoprune.search import checkpoint
from evoprune.search.algorithms import STRATEGIES, LoopState, build_toolbox, evolve
from evoprune.seeding import SearchRandom


def run_search(config: Config, prepared: Prepared, context: RunContext = RunContext()) -> RunResult:
    """Runs one DEAP search end to end and returns its frozen result.

    Randomness: the search draws from its own generators seeded with ``search.seed``
    (:class:`~evoprune.seeding.SearchRandom`), so a cached and a freshly trained model
    give the same search. With ``context.checkpoint`` the state is checkpointed after every
    generation; with ``context.resume`` the search continues from that checkpoint and ends
    exactly as an uninterrupted run would.

    ``search_time_s`` is the search loop's time without the checkpoint writes, which
    ``times_s`` reports as ``checkpoint`` (a synced file per generation: on a small model
    they take longer than the search).
    """
    wall_start = time.perf_counter()
    setup_start = time.perf_counter()
    problem = make_problem(config, prepared, context.status)
    rng = SearchRandom(config.search.seed)
    toolbox, strategy = build_toolbox(config.search, problem, rng.python)
    setup_time = time.perf_counter() - setup_start
    ident = identity(prepared)
    generations = config.search.generations
    with rng.bound():
        state, earlier_search_time = None, 0.0
        if context.resume:
            payload = checkpoint.load(context.checkpoint, config)
            checkpoint.check_identity(payload["meta"], ident, context.checkpoint.parent)
            state = checkpoint.restore(payload, problem, rng)
            earlier_search_time = payload["meta"]["search_time_s"]
            context.status(f"Resuming after generation {state.generation}")
        context.status(
            f"Searching: {config.search.algorithm}, population {config.search.population}, "
            f"{generations} generations"
        )
        search_start = time.perf_counter()
        writing = [0.0]  # seconds spent writing checkpoints (not search time)

        def save_checkpoint(current: LoopState) -> None:
            start = time.perf_counter()
            checkpoint.save(
                context.checkpoint,
                current,
                problem,
                rng,
                config,
                earlier_search_time + start - search_start - writing[0],
                ident,
            )
            writing[0] += time.perf_counter() - start

        def report(current: LoopState) -> None:
            row = current.logbook[-1]
            note = f"best fitness {row['fitness_max']:.4f}, evals {row['evaluations']}"
            context.progress("search", current.generation, generations, note)

        observers = [save_checkpoint] if context.checkpoint else []
        observers += [report, *context.observers]
        state = evolve(
            toolbox,
            strategy,
            config.search.population,
            generations,
            observers,
            state=state,
            max_evaluations=config.search.max_evaluations,
        )
        search_time = earlier_search_time + time.perf_counter() - search_start - writing[0]
    result = tabulate(
        config, prepared, problem, state, search_time, setup_time, time.perf_counter() - wall_start
    )
    result.summary["times_s"] = {**result.summary["times_s"], "checkpoint": writing[0]}
    result.summary.update(ident)  # dataset_checksum, model_sha256, model_weights_sha256
    if config.finetune.refine == "front":
        context.status("Fine-tuning the front")
        result = refine(config, prepared, problem, result, context)
    return with_selection(config, problem, result)


def with_selection(config: Config, problem: PruningProblem, result: RunResult) -> RunResult:
    """Adds ``selected`` (see :mod:`evoprune.refine.select`) to the result's summary."""
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


def refine(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    result: RunResult,
    context: RunContext = RunContext(),
) -> RunResult:
    """Fine-tunes the front's useful points and adds ``refined`` (and their weights) to the result."""
    start = time.perf_counter()
    keys = [key for key, _ in problem.archive()]
    score, tuned_weights = make_scorer(config, prepared, problem)
    refined = refine_front(
        result.front,
        keys,
        problem,
        score,
        config.finetune.max_points,
        config.finetune.max_drop_pp,
        within_pp=config.select.tolerance_pp,
        status=context.status,
    )
    weights = {}
    if tuned_weights is not None:  # memoized: the weights score measured, no second training
        for index in refined["eval_index"]:
            masks = [m[0] for m in problem.encoding.decode([keys[int(index)]])]
            weights[int(index)] = tuned_weights(masks)
    summary = dict(result.summary)
    elapsed = time.perf_counter() - start
    summary["times_s"] = {**summary.get("times_s", {}), "finetune": elapsed}
    summary["refined"] = {
        "points": len(refined),
        "time_s": elapsed,
        "best_within_1pp": best_refined(refined, problem.base_accuracy),
    }
    return dataclasses.replace(
        result, summary=summary, refined=refined, weights={**result.weights, **weights}
    )


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
        problem,
        pop_keys,
        [i.evaluation for i in state.population],
        [position[k] for k in pop_keys],
    )
    best_row = archive.loc[[archive["fitness"].idxmax()]].reset_index(drop=True)
    test_start = time.perf_counter()
    problem.test_accuracy(
        [
            keys[i]
            for table in (front, population, best_row)  # one batch, memoized
            for i in table["eval_index"]
        ]
    )
    test_time = time.perf_counter() - test_start
    front = _with_test_accuracy(problem, front, keys)
    population = _with_test_accuracy(problem, population, keys)
    population = population.sort_values("fitness", ascending=False, kind="stable").reset_index(drop=True)
    best_row = _with_test_accuracy(problem, best_row, keys)
    best = {key: native(best_row.at[0, key]) for key in best_row.columns if key != "eval_index"}
    logbook = pd.DataFrame(state.logbook)
    logbook["best_genome"] = logbook["best_genome"].map(lambda g: " ".join(f"{x:.8g}" for x in g))
    summary = run_summary(config, prepared, problem, search_time, setup_time, wall_time)
    summary.update({"best": best, "front_size": len(front)})
    summary["times_s"]["test"] = test_time
    return RunResult(config, summary, logbook, population, front, archive)


METHODS = [
    Method(
        name,
        strategy.summary,
        run_search,
        genomes=True,
        operators=True,
        check=lambda config, strategy=strategy: strategy.check(config.search),
    )
    for name, strategy in STRATEGIES.items()
]
