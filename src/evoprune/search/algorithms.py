"""One generational loop; the paper's EA and the multi-objective EAs differ in selection only."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence, cast

from deap import algorithms as deap_algorithms
from deap import base, creator, tools

from evoprune.config import SearchConfig
from evoprune.errors import ConfigError
from evoprune.scoring.evaluate import Evaluation, PruningProblem
from evoprune.search.operators import INITIALIZERS, check_pairing, get, register

# Objective weights: the paper maximizes one scalar; the others maximize accuracy and
# minimize nonzero weights.
WEIGHTS = {1: (1.0,), 2: (1.0, -1.0)}


def individual_class(n_objectives: int) -> type:
    """DEAP individual class (a list of genes) with a fitness of ``n_objectives`` values.

    Classes are created in DEAP's global ``creator`` once, on first use, not at import.
    """
    fitness_name, individual_name = f"EvopruneFitness{n_objectives}", f"EvopruneIndividual{n_objectives}"
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=WEIGHTS[n_objectives])
    if not hasattr(creator, individual_name):
        creator.create(individual_name, list, fitness=getattr(creator, fitness_name))
    return getattr(creator, individual_name)


class Strategy:
    """How an algorithm makes offspring and chooses survivors (multi-objective default)."""

    n_objectives = 2
    summary = "multi-objective (mu + lambda) search"

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg

    @classmethod
    def check(cls, cfg: SearchConfig) -> None:
        """Refuses settings this strategy cannot run with (a ``ConfigError``)."""

    def prepare(self, toolbox: base.Toolbox, population: list) -> list:
        """Hook run once on the evaluated initial population."""
        return population

    def parents(self, toolbox: base.Toolbox, population: list) -> list:
        """Parents in mating order: a random permutation (SPEA2, NSGA-III as in DEAP's examples)."""
        return toolbox.sample(population, len(population))

    def offspring(self, toolbox: base.Toolbox, population: list) -> list:
        """Variation as DEAP's ``varAnd``: crossover on pairs with ``cxpb``, mutation with ``mutpb``."""
        return deap_algorithms.varAnd(
            self.parents(toolbox, population), toolbox, self.cfg.cxpb, self.cfg.mutpb
        )

    def survive(self, toolbox: base.Toolbox, population: list, offspring: list) -> list:
        """(mu + lambda) survival with the registered selection."""
        return toolbox.select(population + offspring, len(population))


class PaperStrategy(Strategy):
    """The notebook's EA, bugs fixed.

    Each generation makes ``P//4`` children by averaging crossover of random distinct
    parent pairs and ``P//20`` random resets of *clones* of random individuals (the
    notebook reset individuals in place, aliasing elites); the ``P - children - resets``
    best parents survive as elites, unchanged and not re-evaluated.
    """

    n_objectives = 1
    summary = "the notebook's elitist EA: averaging crossover, random reset, scalar fitness"

    @classmethod
    def check(cls, cfg: SearchConfig) -> None:
        if cfg.population < 20:
            raise ConfigError(
                "Expected search.population >= 20 for algorithm 'paper' (it keeps population//20 "
                f"random resets and population//4 children). Received: search.population={cfg.population}"
            )

    def offspring(self, toolbox: base.Toolbox, population: list) -> list:
        size = len(population)
        children = [
            toolbox.mate(toolbox.clone(a), toolbox.clone(b))[0]
            for a, b in toolbox.select_pairs(population, size // 4)
        ]
        resets = [toolbox.mutate(toolbox.clone(ind))[0] for ind in toolbox.sample(population, size // 20)]
        for ind in children + resets:
            del ind.fitness.values
        return children + resets

    def survive(self, toolbox: base.Toolbox, population: list, offspring: list) -> list:
        return toolbox.select(population, len(population) - len(offspring)) + offspring


class NSGA2Strategy(Strategy):
    """Deb's NSGA-II as in DEAP's example: crowding, DCD tournament, selNSGA2 survival."""

    summary = "NSGA-II: non-dominated sorting, crowding distance, DCD tournaments"

    @classmethod
    def check(cls, cfg: SearchConfig) -> None:
        if cfg.population % 4:
            raise ConfigError(
                "Expected search.population to be a multiple of 4 for 'nsga2' (selTournamentDCD "
                f"draws parents in groups of 4), such as {cfg.population // 4 * 4} or "
                f"{cfg.population // 4 * 4 + 4}. Received: search.population={cfg.population}"
            )

    def prepare(self, toolbox: base.Toolbox, population: list) -> list:
        return toolbox.select(population, len(population))  # assigns crowding distances

    def parents(self, toolbox: base.Toolbox, population: list) -> list:
        return tools.selTournamentDCD(population, len(population))


class TournamentStrategy(Strategy):
    """A scalar-fitness GA: tournament parents, ``varAnd`` variation, (mu + lambda) elitism."""

    n_objectives = 1
    summary = "scalar-fitness GA: tournament parents, (mu + lambda) elitism"

    def parents(self, toolbox: base.Toolbox, population: list) -> list:
        return toolbox.select_parents(population, len(population))


class SPEA2Strategy(Strategy):
    """Zitzler's SPEA2 survival (DEAP's selSPEA2) over random-permutation mating."""

    summary = "SPEA2: strength Pareto survival"


class NSGA3Strategy(Strategy):
    """Deb and Jain's NSGA-III survival (DEAP's selNSGA3, reference points) over random mating."""

    summary = "NSGA-III: reference-point survival"


STRATEGIES: dict[str, type[Strategy]] = {
    "paper": PaperStrategy,
    "nsga2": NSGA2Strategy,
    "spea2": SPEA2Strategy,
    "nsga3": NSGA3Strategy,
    "tournament": TournamentStrategy,
}
SURVIVAL = {"paper": "elite", "nsga2": "nsga2", "spea2": "spea2", "nsga3": "nsga3", "tournament": "elite"}


def initializer(cfg: SearchConfig, encoding, rng=random) -> Callable[[int], list]:
    """The paper's log-spaced thresholds for its genome; the encoding's own otherwise.

    ``rng`` is the generator of encodings whose initial genomes are random (``mask``).
    """
    if encoding.name != "threshold":
        return lambda n: encoding.initial(n, rng)
    low, high = cfg.min_threshold, encoding.high
    if low >= high:
        raise ConfigError(
            f"Expected search.min_threshold < largest |weight| {high:.6g}. "
            f"Received: search.min_threshold={low}"
        )
    init = get(INITIALIZERS, "initializer", "logspace")
    return lambda n: init(n, low, high)


def build_toolbox(
    cfg: SearchConfig, problem: PruningProblem, rng: random.Random | None = None
) -> tuple[base.Toolbox, Strategy]:
    """Wires operators, evaluation and selection into a DEAP toolbox from the config.

    Randomness: evoprune's own draws (``toolbox.sample``, the initial population, random
    resets and pairs) use ``rng``, the search's generator (default: the ``random``
    module); DEAP's operators draw from the generators that
    :meth:`evoprune.seeding.SearchRandom.bound` binds for the search.

    Raises:
        ConfigError: unknown operator names or an operator that does not fit the genome.
    """
    strategy = get(STRATEGIES, "algorithm", cfg.algorithm)(cfg)
    individual = individual_class(strategy.n_objectives)
    enc = problem.encoding
    check_pairing(enc.kind, enc.length, cfg.crossover, cfg.mutation, encoding=enc.name)
    rng = cast(random.Random, random) if rng is None else rng  # the module's functions are a Random's
    init = initializer(cfg, enc, rng)
    lows = list(enc.lows)
    highs = [max(h, lo) for h, lo in zip(enc.highs, lows)]
    params = {
        "alpha": cfg.alpha,
        "eta": cfg.eta,
        "sigma": cfg.sigma,
        "indpb": cfg.indpb,
        "tournsize": cfg.tournsize,
        "binary": enc.kind == "binary",
        "population": cfg.population,
        "rng": rng,
    }
    toolbox = base.Toolbox()
    toolbox.register("sample", rng.sample)
    toolbox.register("population", lambda n: [individual(g) for g in init(n)])
    for alias, role, name in (
        ("mate", "crossover", cfg.crossover),
        ("mutate", "mutation", cfg.mutation),
        ("select_pairs", "selection", "random_pairs"),
        ("select_parents", "selection", "tournament"),
        ("select", "selection", SURVIVAL[cfg.algorithm]),
    ):
        register(toolbox, alias, role, name, lows, highs, params)
    toolbox.register("evaluate", problem.evaluate)
    toolbox.register("scalar_fitness", problem.fitness)
    toolbox.register("evaluations", lambda: problem.evaluations)
    if strategy.n_objectives == 1:
        toolbox.register("fitness_values", lambda ev: (problem.fitness(ev),))
    else:
        toolbox.register("fitness_values", lambda ev: (ev.accuracy, float(ev.nonzero)))
    return toolbox, strategy


def evaluate_invalid(toolbox: base.Toolbox, individuals: Sequence) -> int:
    """Evaluates individuals without a valid fitness in one batch; returns new evaluations."""
    before = toolbox.evaluations()
    invalid = [ind for ind in individuals if not ind.fitness.valid]
    for ind, ev in zip(invalid, toolbox.evaluate(invalid)):
        ind.evaluation = ev
        ind.fitness.values = toolbox.fitness_values(ev)
    return toolbox.evaluations() - before


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands after a generation: enough to resume it."""

    generation: int
    population: list
    logbook: tools.Logbook


def record(
    toolbox: base.Toolbox,
    logbook: tools.Logbook,
    generation: int,
    population: list,
    nevals: int,
    elapsed_s: float,
) -> dict:
    """Appends one generation's statistics to the logbook and returns them."""
    row = generation_stats(
        generation, population, nevals, toolbox.evaluations(), toolbox.scalar_fitness, elapsed_s
    )
    logbook.record(**row)
    return row


def generation_stats(
    generation: int,
    population: list,
    nevals: int,
    evaluations: int,
    scalar_fitness: Callable[[Evaluation], float],
    elapsed_s: float,
) -> dict:
    """One logbook row: a generation's fitness, accuracy and size statistics (any search's)."""
    evs: list[Evaluation] = [ind.evaluation for ind in population]
    scalar = [scalar_fitness(ev) for ev in evs]
    best = max(range(len(population)), key=scalar.__getitem__)
    return dict(
        gen=generation,
        nevals=nevals,
        evaluations=evaluations,
        fitness_max=max(scalar),
        fitness_avg=sum(scalar) / len(scalar),
        fitness_min=min(scalar),
        accuracy_max=max(ev.accuracy for ev in evs),
        nonzero_min=min(ev.nonzero for ev in evs),
        best_genome=list(population[best]),
        time_s=elapsed_s,
    )


Observer = Callable[[LoopState], None]


def finished(state: LoopState, generations: int, evaluations: int, max_evaluations: int = 0) -> bool:
    """True when the loop stops at ``state``: all generations run, or the evaluation budget spent."""
    return state.generation >= generations or bool(max_evaluations and evaluations >= max_evaluations)


def evolve(
    toolbox: base.Toolbox,
    strategy: Strategy,
    population_size: int,
    generations: int,
    observers: Sequence[Observer] = (),
    state: LoopState | None = None,
    clock: Callable[[], float] | None = None,
    max_evaluations: int = 0,
) -> LoopState:
    """Runs (or resumes from ``state``) the generational loop for ``generations`` generations.

    Generation 0 is the evaluated initial population. Each later generation: offspring
    from the strategy, evaluation of the invalid ones, survival. Observers see the state
    after every generation (progress bars, checkpoints). With ``max_evaluations`` the loop
    also stops after the generation whose evaluations reach that budget.
    """
    import time

    clock = clock or time.perf_counter
    start = clock()
    if state is None:
        population = toolbox.population(population_size)
        nevals = evaluate_invalid(toolbox, population)
        population = strategy.prepare(toolbox, population)
        logbook = tools.Logbook()
        record(toolbox, logbook, 0, population, nevals, clock() - start)
        state = LoopState(0, population, logbook)
        for observer in observers:
            observer(state)
    while not finished(state, generations, toolbox.evaluations(), max_evaluations):
        offspring = strategy.offspring(toolbox, state.population)
        nevals = evaluate_invalid(toolbox, offspring)
        population = strategy.survive(toolbox, state.population, offspring)
        record(toolbox, state.logbook, state.generation + 1, population, nevals, clock() - start)
        state = LoopState(state.generation + 1, population, state.logbook)
        for observer in observers:
            observer(state)
    return state
