"""Variation and selection operators with DEAP signatures, one registry per role.

Randomness: every operator here draws from Python's ``random`` module, as DEAP's own
operators do, so ``random.seed`` pins their output.
"""

from __future__ import annotations

import numbers
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


def _bounds(low, up, n: int) -> tuple[list, list]:
    """Per-gene bound lists from scalars or sequences (NumPy arrays included)."""
    as_list = lambda b: [b] * n if isinstance(b, numbers.Real) else list(b)  # noqa: E731
    return as_list(low), as_list(up)


def _clip(individual: list, lows: Sequence, ups: Sequence) -> None:
    """Clips each gene into ``[lows[i], ups[i]]`` in place."""
    for i, (lo, hi) in enumerate(zip(lows, ups)):
        individual[i] = min(max(individual[i], lo), hi)


def _rate(indpb: float | None, n: int) -> float:
    """Per-gene probability: ``indpb``, or ``1 / n`` when it is ``None``."""
    return 1.0 / max(n, 1) if indpb is None else indpb


def cx_blend(ind1: list, ind2: list, low, up, alpha: float = 0.5) -> tuple[list, list]:
    """BLX-alpha (DEAP ``cxBlend``), then clipped to the per-gene bounds ``[low, up]``.

    Before clipping, each child gene lies in ``[min - alpha*d, max + alpha*d]`` with
    ``d = |x1 - x2|``. Uses one ``random.random`` per gene.
    """
    tools.cxBlend(ind1, ind2, alpha)
    lows, ups = _bounds(low, up, min(len(ind1), len(ind2)))
    _clip(ind1, lows, ups)
    _clip(ind2, lows, ups)
    return ind1, ind2


def cx_sbx(ind1: list, ind2: list, low, up, eta: float = 20.0) -> tuple[list, list]:
    """Bounded simulated binary crossover (DEAP ``cxSimulatedBinaryBounded``), clipped.

    ``low``/``up`` are scalars or per-gene sequences. Uses ``random.random``.
    """
    lows, ups = _bounds(low, up, min(len(ind1), len(ind2)))
    tools.cxSimulatedBinaryBounded(ind1, ind2, eta, lows, ups)
    _clip(ind1, lows, ups)
    _clip(ind2, lows, ups)
    return ind1, ind2


def cx_uniform(ind1: list, ind2: list, indpb: float = 0.5) -> tuple[list, list]:
    """Uniform crossover (DEAP ``cxUniform``): swaps each gene with probability ``indpb``.

    Real or binary genomes. Uses one ``random.random`` per gene.
    """
    return tools.cxUniform(ind1, ind2, indpb)


def cx_two_point(ind1: list, ind2: list) -> tuple[list, list]:
    """Two-point crossover (DEAP ``cxTwoPoint``): swaps one contiguous segment.

    Uses two ``random.randint``.

    Raises:
        ValueError: a genome shorter than 2 genes.
    """
    size = min(len(ind1), len(ind2))
    if size < 2:
        raise ValueError(f"Expected genomes of length >= 2 for two-point crossover. Received: length={size}")
    return tools.cxTwoPoint(ind1, ind2)


def mut_random_reset(individual: list, low, up, indpb: float = 1.0,
                     binary: bool = False) -> tuple[list]:
    """Random reset: each gene, with probability ``indpb``, is redrawn uniformly in ``[low, up]``.

    ``low``/``up`` are scalars or per-gene sequences. With ``binary`` a redrawn gene is a
    random bit (0 or 1) and the bounds are ignored. Uses ``random.random`` (only when
    ``indpb < 1``) and ``random.uniform`` (``random.randint`` for bits).
    """
    n = len(individual)
    lows, ups = ([], []) if binary else _bounds(low, up, n)
    for i in range(n):
        if indpb >= 1.0 or random.random() < indpb:
            individual[i] = random.randint(0, 1) if binary else random.uniform(lows[i], ups[i])
    return (individual,)


def mut_gaussian(individual: list, low, up, sigma: float = 0.1,
                 indpb: float | None = None) -> tuple[list]:
    """Gaussian mutation (DEAP ``mutGaussian``), clipped to ``[low, up]``.

    Each gene, with probability ``indpb`` (``None``: ``1 / len``), gets ``N(0, s)`` added,
    ``s = sigma * (up - low)`` per gene. Uses ``random.random`` and ``random.gauss``.
    """
    n = len(individual)
    lows, ups = _bounds(low, up, n)
    tools.mutGaussian(individual, 0.0, [sigma * (hi - lo) for lo, hi in zip(lows, ups)], _rate(indpb, n))
    _clip(individual, lows, ups)
    return (individual,)


def mut_polynomial(individual: list, low, up, eta: float = 20.0,
                   indpb: float | None = None) -> tuple[list]:
    """Bounded polynomial mutation (DEAP ``mutPolynomialBounded``), ``indpb`` ``None``: ``1 / len``.

    Genes with ``low == up`` are pinned to the bound and draw nothing (DEAP would divide
    by zero). Uses ``random.random``.
    """
    n = len(individual)
    lows, ups = _bounds(low, up, n)
    live = [i for i in range(n) if ups[i] > lows[i]]
    genes = [individual[i] for i in live]
    tools.mutPolynomialBounded(genes, eta, [lows[i] for i in live], [ups[i] for i in live],
                               _rate(indpb, n))
    for i, gene in zip(live, genes):
        individual[i] = gene
    _clip(individual, lows, ups)
    return (individual,)


def mut_flip_bit(individual: list, indpb: float | None = None) -> tuple[list]:
    """Bit flip (DEAP ``mutFlipBit``): each bit flips with probability ``indpb`` (``None``: ``1 / len``).

    Uses one ``random.random`` per gene.
    """
    return tools.mutFlipBit(individual, _rate(indpb, len(individual)))


def sel_elite(individuals: Sequence, k: int) -> list:
    """The ``k`` best individuals by fitness (ties keep population order). Deterministic."""
    return tools.selBest(list(individuals), k)


def sel_tournament(individuals: Sequence, k: int, tournsize: int = 3) -> list:
    """``k`` tournament winners of ``tournsize`` random entrants each (DEAP ``selTournament``).

    Uses ``random.choice``.
    """
    return tools.selTournament(individuals, k, tournsize)


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


CROSSOVERS: dict[str, Callable] = {
    "average": cx_average, "blend": cx_blend, "sbx": cx_sbx, "uniform": cx_uniform,
    "two_point": cx_two_point,
}
MUTATIONS: dict[str, Callable] = {
    "random_reset": mut_random_reset, "gaussian": mut_gaussian, "polynomial": mut_polynomial,
    "flip_bit": mut_flip_bit,
}
SELECTIONS: dict[str, Callable] = {
    "elite": sel_elite,
    "nsga2": tools.selNSGA2,
    "spea2": tools.selSPEA2,
    "nsga3": tools.selNSGA3,
    "tournament": sel_tournament,
}
INITIALIZERS: dict[str, Callable] = {"logspace": init_logspace}

# Genome kinds each crossover/mutation applies to; _MIN_LENGTH adds length limits.
GENOME_KINDS: dict[str, set[str]] = {
    **{name: {"real"} for name in ("average", "blend", "sbx", "gaussian", "polynomial")},
    **{name: {"real", "binary"} for name in ("uniform", "random_reset", "two_point")},
    "flip_bit": {"binary"},
}
_MIN_LENGTH: dict[str, int] = {"two_point": 2}


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


def _fits(name: str, kind: str, length: int) -> bool:
    return kind in GENOME_KINDS[name] and length >= _MIN_LENGTH.get(name, 1)


def check_pairing(kind: str, length: int, crossover: str, mutation: str,
                  encoding: str | None = None) -> None:
    """Checks that the crossover and mutation exist and apply to the genome.

    Args:
        kind: genome kind, ``real`` or ``binary``.
        length: genes per genome.
        crossover, mutation: operator names.
        encoding: encoding name, quoted in the message when given.

    Raises:
        ConfigError: unknown name, or an operator that does not fit the genome kind or
            length; one line naming the operator, the valid ones and the config field.
    """
    kinds = sorted(set().union(*GENOME_KINDS.values()))
    if kind not in kinds:
        raise ConfigError(f"Unknown genome kind. Expected one of: {', '.join(kinds)}. Received: {kind!r}")
    where = f" (encoding {encoding!r})" if encoding else ""
    for role, registry, name in (("crossover", CROSSOVERS, crossover), ("mutation", MUTATIONS, mutation)):
        get(registry, role, name)
        if _fits(name, kind, length):
            continue
        valid = ", ".join(sorted(n for n in registry if _fits(n, kind, length)))
        problem = (f"does not apply to {kind} genomes" if kind not in GENOME_KINDS[name] else
                   f"needs genomes of length >= {_MIN_LENGTH[name]}, not {length}")
        raise ConfigError(f"Operator {name!r} {problem}{where}. Expected one of: {valid}. "
                          f"Received: search.{role}={name!r}")


def operator_params(name: str, low, up, params: dict) -> dict:
    """Keyword arguments for ``toolbox.register(role, fn, **kwargs)`` of operator ``name``.

    Args:
        name: a crossover, mutation or selection name.
        low, up: per-gene bounds (lists or arrays); passed on as lists.
        params: any of ``alpha`` (0.5), ``eta`` (20), ``sigma`` (0.1), ``indpb``,
            ``tournsize`` (3) and ``binary`` (False); missing or ``None`` keys take the
            defaults. ``indpb`` missing or 0 means ``1 / len`` for mutations and 0.5 for
            uniform crossover.

    Raises:
        ConfigError: unknown name; the message lists the valid names.

    Example:
        >>> operator_params("sbx", [0.0, 0.0], [1.0, 2.0], {"eta": 15})
        {'low': [0.0, 0.0], 'up': [1.0, 2.0], 'eta': 15}
    """
    lows, ups = list(low), list(up)
    p = {key: value for key, value in params.items() if value is not None}
    indpb = p.get("indpb") or 0.0
    rate = indpb or 1.0 / max(len(lows), 1)
    bounds = {"low": lows, "up": ups}
    table = {
        "blend": {**bounds, "alpha": p.get("alpha", 0.5)},
        "sbx": {**bounds, "eta": p.get("eta", 20.0)},
        "uniform": {"indpb": indpb or 0.5},
        "random_reset": {**bounds, "indpb": rate, "binary": bool(p.get("binary", False))},
        "gaussian": {**bounds, "sigma": p.get("sigma", 0.1), "indpb": rate},
        "polynomial": {**bounds, "eta": p.get("eta", 20.0), "indpb": rate},
        "flip_bit": {"indpb": rate},
        "tournament": {"tournsize": int(p.get("tournsize", 3))},
    }
    get({**CROSSOVERS, **MUTATIONS, **SELECTIONS}, "operator", name)
    return table.get(name, {})
