"""A peer from another library: pymoo's NSGA2 on the same problem, evaluator and budget (``pymoo-nsga2``)."""

from __future__ import annotations

import random
import time

import numpy as np
from deap import tools

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, identity, make_problem
from evoprune.experiments.context import RunContext
from evoprune.experiments.methods.base import Method
from evoprune.experiments.methods.evolution import evolved_curve, refine, tabulate, with_selection
from evoprune.experiments.result import RunResult
from evoprune.search.algorithms import LoopState, generation_stats, individual_class, initializer


def _pymoo_problem(problem):
    from pymoo.core.problem import Problem

    enc = problem.encoding

    class PruningPymoo(Problem):
        """Objectives to minimize: ``-accuracy`` and nonzero weights."""

        def __init__(self) -> None:
            super().__init__(
                n_var=enc.length,
                n_obj=2,
                xl=np.asarray(enc.lows, dtype=float),
                xu=np.asarray(enc.highs, dtype=float),
                vtype=bool if enc.kind == "binary" else float,
            )

        def _evaluate(self, x, out, *args, **kwargs):
            genomes = np.asarray(x, dtype=float).tolist()
            evs = problem.evaluate(genomes)
            out["F"] = np.array([[-ev.accuracy, ev.nonzero] for ev in evs], dtype=float)

    return PruningPymoo()


def _algorithm(config: Config, kind: str, initial: np.ndarray):
    """pymoo's NSGA2 with its standard operators, started from evoprune's initial population."""
    from pymoo.algorithms.moo.nsga2 import NSGA2

    size = config.search.population
    if kind == "binary":
        from pymoo.operators.crossover.pntx import TwoPointCrossover
        from pymoo.operators.mutation.bitflip import BitflipMutation

        return NSGA2(
            pop_size=size,
            sampling=initial.astype(bool),
            crossover=TwoPointCrossover(),
            mutation=BitflipMutation(),
            eliminate_duplicates=True,
        )
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM

    return NSGA2(
        pop_size=size,
        sampling=initial,
        eliminate_duplicates=True,
        crossover=SBX(eta=config.search.eta, prob=config.search.cxpb),
        mutation=PM(eta=config.search.eta),
    )


def run_pymoo(config: Config, prepared: Prepared, context: RunContext = RunContext()) -> RunResult:
    """pymoo NSGA2 until ``search.max_evaluations`` distinct genomes have been evaluated.

    pymoo counts repeated genomes as evaluations while evoprune's memo does not, so pymoo
    is allowed twice the budget and the archive is cut at the budget, as for every run.
    """
    from pymoo.optimize import minimize

    start = time.perf_counter()
    problem = make_problem(config, prepared, context.status)
    setup = time.perf_counter() - start
    budget = config.search.max_evaluations or config.search.population * (config.search.generations + 1)
    search_start = time.perf_counter()
    rng = random.Random(config.search.seed)  # the mask initializer's bit flips
    initial = np.array(
        initializer(config.search, problem.encoding, rng)(config.search.population), dtype=float
    )
    res = minimize(
        _pymoo_problem(problem),
        _algorithm(config, problem.encoding.kind, initial),
        ("n_eval", 2 * budget),
        seed=config.search.seed,
        verbose=False,
    )
    search_time = time.perf_counter() - search_start
    cls = individual_class(2)
    population = []
    for x in np.atleast_2d(res.pop.get("X")).astype(float).tolist():
        ind = cls(x)
        ind.evaluation = problem.evaluate([x])[0]
        ind.fitness.values = (ind.evaluation.accuracy, float(ind.evaluation.nonzero))
        population.append(ind)
    logbook = tools.Logbook()
    logbook.record(
        **generation_stats(
            int(res.algorithm.n_gen),
            population,
            problem.evaluations,
            problem.evaluations,
            problem.fitness,
            search_time,
        )
    )
    state = LoopState(int(res.algorithm.n_gen), population, logbook)
    result = tabulate(config, prepared, problem, state, search_time, setup, time.perf_counter() - start)
    result.summary.update(identity(prepared))
    if config.finetune.refine == "front":
        result = refine(config, prepared, problem, result, context)
    result = with_selection(config, prepared, problem, result)
    return evolved_curve(config, prepared, problem, result, context) if config.select.compressions else result


METHODS = [
    Method(
        "pymoo-nsga2",
        "a peer from another library: pymoo's NSGA2 with its own operators, on the same problem and budget",
        run_pymoo,
        genomes=True,
        extra="peer",
        modules=("pymoo",),
    )
]
