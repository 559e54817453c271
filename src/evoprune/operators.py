"""Variation and selection operators with DEAP signatures, one registry per role.

Randomness: every operator here draws from Python's ``random`` module, as DEAP's own
operators do, so ``random.seed`` pins their output.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np
from deap import tools

from evoprune.errors import ConfigError


def init_logspace(n: int, low: float, high: float) -> list[list[float]]:
    """The notebook's initial thresholds: ``low`` plus ``n - 1`` base-16 log-spaced values.

    The values are ``16 ** linspace(low, high, n - 1)`` rescaled so the largest is
    ``high``; deterministic (no randomness).

    Returns:
        ``n`` genomes of one gene each, ascending.
    """
    values = np.logspace(low, high, n - 1, base=16)
    values = values / values.max() * high
    return [[float(low)]] + [[float(v)] for v in values]


def cx_average(ind1: list, ind2: list) -> tuple[list, list]:
    """Averaging crossover (the paper's mating): both children get the parents' mean genes.

    Deterministic; modifies both individuals in place and returns them.
    """
    for i, (a, b) in enumerate(zip(ind1, ind2)):
        ind1[i] = ind2[i] = (a + b) / 2.0
    return ind1, ind2


def mut_random_reset(individual: list, low: float, up: float, indpb: float = 1.0) -> tuple[list]:
    """Random reset: each gene, with probability ``indpb``, is redrawn uniformly in ``[low, up]``.

    Uses ``random.random`` (only when ``indpb < 1``) and ``random.uniform``.
    """
    for i in range(len(individual)):
        if indpb >= 1.0 or random.random() < indpb:
            individual[i] = random.uniform(low, up)
    return (individual,)


def sel_elite(individuals: Sequence, k: int) -> list:
    """The ``k`` best individuals by fitness (ties keep population order). Deterministic."""
    return tools.selBest(list(individuals), k)


def sel_random_pairs(individuals: Sequence, k: int) -> list[tuple]:
    """``k`` distinct ordered pairs of distinct individuals, uniformly without replacement.

    The same distribution as the notebook's ``random.sample(permutations(pop, 2), k)``,
    without building the list of permutations. Uses ``random.sample``.
    """
    n = len(individuals)
    if k > n * (n - 1):
        raise ValueError(f"Expected k <= {n * (n - 1)} pairs of {n} individuals. Received: k={k}")
    pairs = []
    for code in random.sample(range(n * (n - 1)), k):
        first, second = divmod(code, n - 1)
        pairs.append((individuals[first], individuals[second + (second >= first)]))
    return pairs


CROSSOVERS: dict[str, Callable] = {"average": cx_average}
MUTATIONS: dict[str, Callable] = {"random_reset": mut_random_reset}
SELECTIONS: dict[str, Callable] = {
    "elite": sel_elite,
    "nsga2": tools.selNSGA2,
    "spea2": tools.selSPEA2,
    "nsga3": tools.selNSGA3,
}
INITIALIZERS: dict[str, Callable] = {"logspace": init_logspace}


def get(registry: dict[str, Callable], role: str, name: str) -> Callable:
    """Looks ``name`` up in a registry.

    Raises:
        ConfigError: unknown name; the message lists the valid names.
    """
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(
            f"Unknown {role}. Expected one of: {', '.join(sorted(registry))}. Received: {name!r}"
        ) from None
