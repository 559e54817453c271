"""The DEAP strategies as methods: search, tabulate, fine-tune the front, select."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.errors import ConfigError, plural
from evoprune.experiments import curve
from evoprune.experiments.assemble import (
    Prepared,
    identity,
    loss_bound,
    make_problem,
    make_scorer,
    point_model,
    retrain_log,
)
from evoprune.experiments.context import RunContext
from evoprune.experiments.methods.base import Method
from evoprune.experiments.result import RunResult, native, run_summary
from evoprune.refine import gradual
from evoprune.refine.finetune import best_refined, refine_front
from evoprune.refine.retrain_log import RetrainLog, logged_score, mask_key
from evoprune.refine.select import select
from evoprune.reporting.metrics import compression, pareto_front
from evoprune.scoring.evaluate import PruningProblem
from evoprune.search import checkpoint
from evoprune.search.algorithms import STRATEGIES, LoopState, build_toolbox, evolve, finished
from evoprune.seeding import SearchRandom

# Seconds between checkpoints: a checkpoint of a long fast search (400 generations of the
# paper's head, a 2,400-genome memo) cost 20 ms, four times the generation it saved.
# A kill loses at most this much search (or CHECKPOINT_SHARE times the last write, if longer);
# a resume is exact from any checkpoint.
CHECKPOINT_EVERY_S = 1.0
# A checkpoint grows with the archive (0.11 s a write after 7,700 evaluations): the next one
# waits at least this many times the last write, so writing stays under 1/20 of the search.
CHECKPOINT_SHARE = 19.0


def checkpoint_every_s() -> float:
    """Seconds between search checkpoints: ``$EVOPRUNE_CHECKPOINT_EVERY_S`` (0: after every
    generation), else :data:`CHECKPOINT_EVERY_S`.

    Raises:
        ConfigError: a value that is not a number >= 0.
    """
    text = os.environ.get("EVOPRUNE_CHECKPOINT_EVERY_S", "").strip()
    if not text:
        return CHECKPOINT_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise ConfigError(f"Expected $EVOPRUNE_CHECKPOINT_EVERY_S >= 0 (seconds). Received: {text!r}")
    return value


def run_search(config: Config, prepared: Prepared, context: RunContext = RunContext()) -> RunResult:
    """Runs one DEAP search end to end and returns its frozen result.

    Randomness: the search draws from its own generators seeded with ``search.seed``
    (:class:`~evoprune.seeding.SearchRandom`), so a cached and a freshly trained model
    give the same search. With ``context.checkpoint`` the state is checkpointed after the
    first generation, then at most once a second (:func:`checkpoint_every_s`) and at most a
    twentieth of the time (:data:`CHECKPOINT_SHARE`), after the last one and on a stop
    request; with ``context.resume`` the search continues from that checkpoint and ends
    exactly as an uninterrupted run would.

    ``search_time_s`` is the search loop's time without the checkpoint writes, which
    ``times_s`` reports as ``checkpoint`` (a synced file, at most one a second).
    """
    wall_start = time.perf_counter()
    setup_start = time.perf_counter()
    problem = make_problem(config, prepared, context.status)
    rng = SearchRandom(config.search.seed)
    toolbox, strategy = build_toolbox(config.search, problem, rng.python)
    setup_time = time.perf_counter() - setup_start
    ident = identity(prepared)
    with rng.bound():
        state, search_time, writing = _search(config, problem, toolbox, strategy, rng, ident, context)
    result = tabulate(
        config, prepared, problem, state, search_time, setup_time, time.perf_counter() - wall_start
    )
    result.summary["times_s"] = {**result.summary["times_s"], "checkpoint": writing}
    result.summary.update(ident)  # dataset_checksum, model_sha256, model_weights_sha256
    log = retrain_log(config, prepared, context)  # fine-tuned points and curve levels, as they finish
    if config.finetune.refine == "front":
        context.status("Fine-tuning the front")
        result = refine(config, prepared, problem, result, context, log)
    result = with_selection(config, prepared, problem, result)
    if config.select.compressions:
        return evolved_curve(config, prepared, problem, result, context, log)
    return result


def _search(config: Config, problem, toolbox, strategy, rng, ident: dict, context: RunContext):
    """Runs (or resumes) the DEAP loop, checkpointed; returns its final state, search time
    and the seconds spent writing checkpoints (left out of the search time).

    A run resumed after its search had finished (interrupted while fine-tuning) does not
    enter the loop again: its checkpoint is the final state.
    """
    generations, budget = config.search.generations, config.search.max_evaluations
    state, earlier_search_time = None, 0.0
    if context.resume:
        assert context.checkpoint is not None  # a run resumes from its checkpoint file
        payload = checkpoint.load(context.checkpoint, config)
        checkpoint.check_identity(payload["meta"], ident, context.checkpoint.parent)
        state = checkpoint.restore(payload, problem, rng)
        earlier_search_time = payload["meta"]["search_time_s"]
        if finished(state, generations, toolbox.evaluations(), budget):
            context.status(f"The search had finished (generation {state.generation}); resuming after it")
            return state, earlier_search_time, 0.0
        context.status(f"Resuming after generation {state.generation}")
        context.progress("search", state.generation, generations, "resumed")
    context.status(
        f"Searching: {config.search.algorithm}, population {config.search.population}, "
        f"{plural(generations, 'generation')}"
    )
    search_start = time.perf_counter()
    writing = [0.0]  # seconds spent writing checkpoints (not search time)
    written = {"generation": -1, "at": -math.inf, "took": 0.0}  # the last checkpoint's generation, end, time
    every = checkpoint_every_s() if context.checkpoint else 0.0

    def write_checkpoint(current: LoopState) -> None:
        assert context.checkpoint is not None  # written only with a checkpoint file
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
        written.update(generation=current.generation, at=time.perf_counter())
        written["took"] = written["at"] - start
        writing[0] += written["took"]

    def save_checkpoint(current: LoopState) -> None:
        """Checkpoints a completed generation: the first, then at most one every ``every``
        seconds (a fast search spent most of its time writing) and, unless ``every`` is 0,
        not before :data:`CHECKPOINT_SHARE` times the last write's duration has passed (a
        long search's checkpoints grow); on a stop request it writes this one and then stops
        (``context.checkpointed`` raises), reading the request once so that the generation
        it names is the one written."""
        stop = context.stop_requested()
        gap = max(every, CHECKPOINT_SHARE * written["took"]) if every > 0 else 0.0
        if stop or time.perf_counter() - written["at"] >= gap:
            write_checkpoint(current)
        if stop:
            context.checkpointed(f"generation {current.generation}")

    scanned, best = [0], [-math.inf]  # the archive's best so far, as the run's ``best`` is chosen

    def report(current: LoopState) -> None:
        row = current.logbook[-1]
        entries = problem.archive()[: budget or None]  # the last generation may overshoot
        for _, evaluation in entries[scanned[0] :]:
            best[0] = max(best[0], problem.fitness(evaluation))
        scanned[0] = len(entries)
        note = f"best fitness {best[0]:.4f}, evals {row['evaluations']}"
        context.progress("search", current.generation, generations, note)

    observers = [save_checkpoint] if context.checkpoint else []
    observers += [report, *context.observers]
    population = config.search.population
    state = evolve(toolbox, strategy, population, generations, observers, state=state, max_evaluations=budget)
    if context.checkpoint and written["generation"] != state.generation:
        write_checkpoint(state)  # the final state, which fine-tuning resumes after
    return state, earlier_search_time + time.perf_counter() - search_start - writing[0], writing[0]


def front_allocation(problem: PruningProblem, front: pd.DataFrame, level: float) -> dict[str, float]:
    """The per-layer kept fractions the search found for ``level``.

    Among the front points at least as compressed as ``level``, the most accurate one
    (on the fitness split, before retraining); if none is, the most compressed point.
    """
    reached = front[front["compression"] >= level]
    row = reached.loc[reached["accuracy"].idxmax()] if len(reached) else front.loc[front["nonzero"].idxmin()]
    keys = [key for key, _ in problem.archive()]
    masks = [m[0] for m in problem.encoding.decode([keys[int(row["eval_index"])]])]
    return problem.evaluator.target.kept_fractions(masks)


def evolved_curve(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    result: RunResult,
    context: RunContext,
    log: RetrainLog | None = None,
) -> RunResult:
    """Evolution's model at each ``select.compressions`` level: its allocation, under a moving threshold.

    The search's front gives each level its per-layer allocation (:func:`front_allocation`).
    The model at the level is the same gradual-magnitude retraining as ``gmp``'s (``[gmp]``
    schedule settings, ``finetune.epochs``) under one threshold over per-layer weighted
    magnitudes (:class:`~evoprune.refine.gradual.ScaledGlobal`), the weights chosen so that
    the threshold starts at the evolved allocation; as training moves the weights the
    allocation moves too, as GMP global's does. (A static per-layer target lost to GMP
    global in the research this design came from: ``docs/results/curves-lenet-300-100``.)
    Each level is logged as it finishes (``log``, the run's retraining log by default).
    """
    g = config.section("gmp")
    initial, begin, end, frequency = (
        (g.initial_sparsity, g.begin, g.end, g.frequency)
        if g is not None
        else (gradual.INITIAL_SPARSITY, gradual.BEGIN, gradual.END, gradual.FREQUENCY)
    )
    tuner = curve.finetuner(config, prepared)
    target = problem.evaluator.target
    log = log if log is not None else retrain_log(config, prepared, context)

    def make(level: float) -> curve.Point:
        allocation = gradual.scales_for(
            target.names, target.kernels, front_allocation(problem, result.front, level)
        )

        def retrain() -> curve.Point:
            return curve.gmp_point(tuner, level, allocation, initial, begin, end, frequency, context)

        return curve.logged_point(log, f"curve {level:g}x", tuner, retrain)

    return curve.with_curve(config, prepared, result, make, context)


def with_selection(
    config: Config, prepared: Prepared, problem: PruningProblem, result: RunResult
) -> RunResult:
    """Adds ``selected`` (see :mod:`evoprune.refine.select`) to the result's summary."""
    keys = [key for key, _ in problem.archive()]
    encoding = problem.encoding
    summary = dict(result.summary)
    summary["select"] = {"tolerance_pp": config.select.tolerance_pp, "confidence": config.select.confidence}
    tuned = set(result.refined["eval_index"]) if result.refined is not None else set()

    def model_of(i: int):
        retrained = i in tuned or config.finetune.refine == "each"
        model, _ = point_model(config, prepared, keys[i], result.weights.get(i), tune=retrained)
        return model

    summary["selected"] = select(
        result.front,
        result.refined,
        summary["baseline"],
        config.select.tolerance_pp,
        lambda i: encoding.describe(keys[i]),
        lambda i: [m[0] for m in encoding.decode([keys[i]])],
        problem.evaluator.target,
        loss_bound(config, prepared, model_of),
    )
    return dataclasses.replace(result, summary=summary)


def refine(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    result: RunResult,
    context: RunContext = RunContext(),
    log: RetrainLog | None = None,
) -> RunResult:
    """Fine-tunes the front's useful points and adds ``refined`` (and their weights) to the result.

    Each fine-tuned point is logged as it finishes (``log``, the run's retraining log by
    default; see :func:`~evoprune.experiments.assemble.retrain_log`): a resumed run answers
    the logged points from the log and fine-tunes only the rest.
    """
    start = time.perf_counter()
    keys = [key for key, _ in problem.archive()]
    score, tuned_weights = make_scorer(config, prepared, problem)
    log = log if log is not None else retrain_log(config, prepared, context)
    if len(log):
        context.status(f"Resuming fine-tuning: {len(log)} points fine-tuned before the interruption")
    refined = refine_front(
        result.front,
        keys,
        problem,
        logged_score(log, score, tuned_weights),
        config.finetune.max_points,
        config.finetune.max_drop_pp,
        within_pp=config.select.tolerance_pp,
        status=context.status,
        progress=lambda done, total, note: context.progress("finetune", done, total, note),
    )
    weights = {}
    for index in refined["eval_index"]:  # the weights score measured (logged), no second training
        kept = log.weights(mask_key([m[0] for m in problem.encoding.decode([keys[int(index)]])]))
        if kept is not None:
            weights[int(index)] = kept
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
    columns: dict[str, Any] = {"eval_index": np.asarray(index, dtype=np.int64)}
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


def _with_test_accuracy(
    problem: PruningProblem, table: pd.DataFrame, keys: list, score: bool = True
) -> pd.DataFrame:
    table.insert(
        table.columns.get_loc("accuracy") + 1,
        "test_accuracy",
        problem.test_accuracy([keys[i] for i in table["eval_index"]], score=score),
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
    # the points a run reports (its front and best), one batch; the rest of the final
    # population is not scored on test (its column is empty there): on a branched model
    # scoring it too took longer than a five-generation search
    problem.test_accuracy([keys[i] for table in (front, best_row) for i in table["eval_index"]])
    test_time = time.perf_counter() - test_start
    front = _with_test_accuracy(problem, front, keys)
    population = _with_test_accuracy(problem, population, keys, score=False)
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
        checkpoint=True,
    )
    for name, strategy in STRATEGIES.items()
]
