"""The generational loop: the paper's generation shape, bug fixes, determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evoprune.experiments.assemble import make_problem
from evoprune.experiments.methods.evolution import run_search
from evoprune.search.algorithms import build_toolbox, evaluate_invalid, evolve


@pytest.fixture()
def paper(sample_config, prepared):
    problem = make_problem(sample_config, prepared)
    toolbox, strategy = build_toolbox(sample_config.search, problem)
    return problem, toolbox, strategy


def test_paper_generation_shape_and_no_aliasing(paper):
    problem, toolbox, strategy = paper
    random.seed(1)
    pop = toolbox.population(20)
    evaluate_invalid(toolbox, pop)
    offspring = strategy.offspring(toolbox, pop)
    assert len(offspring) == 20 // 4 + 20 // 20
    assert all(not ind.fitness.valid for ind in offspring)
    assert not any(o is p for o in offspring for p in pop)  # clones, never aliases
    new = strategy.survive(toolbox, pop, offspring)
    elites = new[:14]
    assert len(new) == 20 and len({id(i) for i in new}) == 20
    best14 = sorted(pop, key=lambda i: i.fitness.values[0], reverse=True)[:14]
    assert [e.fitness.values for e in elites] == [b.fitness.values for b in best14]
    assert all(any(e is p for p in pop) for e in elites)  # elites kept, not re-created


def test_children_are_parent_means_and_resets_in_bounds(paper):
    problem, toolbox, strategy = paper
    random.seed(5)
    pop = toolbox.population(20)
    evaluate_invalid(toolbox, pop)
    genes = {ind[0] for ind in pop}
    offspring = strategy.offspring(toolbox, pop)
    means = {(a + b) / 2 for a in genes for b in genes if a != b}
    assert all(child[0] in means for child in offspring[:5])
    reset = offspring[5][0]
    assert problem.encoding.low <= reset <= problem.encoding.high


def test_elites_are_not_reevaluated_and_last_children_are(paper, sample_config):
    problem, toolbox, strategy = paper
    random.seed(0)
    state = evolve(toolbox, strategy, 20, 4)
    assert all(ind.fitness.valid for ind in state.population)
    # each generation evaluates at most its 6 new genomes, never the 14 elites
    assert all(row["nevals"] <= 6 for row in state.logbook[1:])
    assert problem.evaluations == sum(row["nevals"] for row in state.logbook)
    best = [row["fitness_max"] for row in state.logbook]
    assert best == sorted(best)  # elitism: the best is never lost


def test_same_seed_same_result_different_seed_differs(sample_config, prepared):
    a = run_search(sample_config, prepared)
    b = run_search(sample_config, prepared)
    assert a.front.equals(b.front) and a.summary["best"] == b.summary["best"]
    assert a.population.equals(b.population)
    other = run_search(sample_config.with_overrides({"search.seed": 1}), prepared)
    assert not np.array_equal(
        other.archive["threshold"].to_numpy()[20:], a.archive["threshold"].to_numpy()[20:]
    )


@pytest.mark.parametrize("algorithm", ["nsga2", "spea2", "nsga3"])
def test_multi_objective_algorithms_run_on_the_same_loop(sample_config, prepared, algorithm):
    cfg = sample_config.with_overrides({"search.algorithm": algorithm, "search.population": 20})
    result = run_search(cfg, prepared)
    assert len(result.logbook) == cfg.search.generations + 1
    assert result.summary["evaluations"] == len(result.archive)
    assert len(result.front) >= 3
    again = run_search(cfg, prepared)
    assert result.front.equals(again.front)


def test_evaluation_budget_stops_the_loop(sample_config, prepared):
    cfg = sample_config.with_overrides({"search.generations": 500, "search.max_evaluations": 50})
    result = run_search(cfg, prepared)
    evaluations = result.logbook["evaluations"].tolist()
    assert evaluations[-1] >= 50 and evaluations[-2] < 50
    assert len(result.logbook) < 500


def test_search_is_immune_to_other_threads_drawing_random(sample_config, prepared):
    """Dask workers' own threads use Python's random while a trial runs."""
    import threading

    reference = run_search(sample_config, prepared)
    stop = threading.Event()

    def noise():
        while not stop.is_set():
            random.random()

    thread = threading.Thread(target=noise)
    thread.start()
    try:
        noisy = run_search(sample_config, prepared)
    finally:
        stop.set()
        thread.join()
    assert noisy.front.equals(reference.front) and noisy.summary["best"] == reference.summary["best"]
    assert noisy.archive.equals(reference.archive)


def test_nsga2_survivors_are_the_first_fronts_then_the_least_crowded(sample_config, prepared):
    from deap import tools

    cfg = sample_config.with_overrides({"search.algorithm": "nsga2", "search.population": 20})
    problem = make_problem(cfg, prepared)
    toolbox, strategy = build_toolbox(cfg.search, problem)
    random.seed(3)
    checked_partial = False
    pop = toolbox.population(20)
    evaluate_invalid(toolbox, pop)
    pop = strategy.prepare(toolbox, pop)
    for _ in range(4):
        offspring = strategy.offspring(toolbox, pop)
        evaluate_invalid(toolbox, offspring)
        merged = pop + offspring
        survivors = strategy.survive(toolbox, pop, offspring)
        assert len(survivors) == 20 and len({id(i) for i in survivors}) == 20
        kept = {id(i) for i in survivors}
        fronts = tools.sortNondominated(merged, len(merged))
        taken = 0
        for front in fronts:
            chosen = [ind for ind in front if id(ind) in kept]
            if taken + len(front) <= 20:
                assert len(chosen) == len(front)  # every better front survives whole
                taken += len(front)
                continue
            assert len(chosen) == 20 - taken  # the rest come from the next front only
            if not chosen:
                continue
            tools.emo.assignCrowdingDist(front)
            left = [ind.fitness.crowding_dist for ind in front if id(ind) not in kept]
            assert min(ind.fitness.crowding_dist for ind in chosen) >= max(left)
            checked_partial |= 0 < len(chosen) < len(front)
            taken = 20
        assert taken == 20
        pop = survivors
    assert checked_partial  # the crowding rule was exercised, not only whole fronts


def test_each_strategy_mates_as_documented():
    """Tournament mating is the scalar GA's alone; SPEA2 and NSGA-III mate a random permutation."""
    from evoprune.search.algorithms import STRATEGIES, Strategy

    assert STRATEGIES["tournament"].parents is not Strategy.parents
    assert STRATEGIES["nsga2"].parents is not Strategy.parents  # DCD tournaments
    for name in ("spea2", "nsga3"):
        assert STRATEGIES[name].parents is Strategy.parents, name
