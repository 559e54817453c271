"""Variation and selection operators with DEAP signatures, one registry per role.

Randomness: DEAP's operators draw from the ``random`` module, which a search binds to its
own generator (:mod:`evoprune.seeding`); evoprune's own draw from their ``rng`` argument
(the search's generator; default: the ``random`` module, so ``random.seed`` pins them).
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from deap import tools

from evoprune.errors import ConfigError, plural


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


def mut_random_reset(
    individual: list, low, up, indpb: float = 1.0, binary: bool = False, rng=random
) -> tuple[list]:
    """Random reset: each gene, with probability ``indpb``, is redrawn uniformly in ``[low, up]``.

    ``low``/``up`` are scalars or per-gene sequences. With ``binary`` a redrawn gene is a
    random bit (0 or 1) and the bounds are ignored. Uses ``rng.random`` (only when
    ``indpb < 1``) and ``rng.uniform`` (``rng.randint`` for bits).
    """
    n = len(individual)
    lows, ups = ([], []) if binary else _bounds(low, up, n)
    for i in range(n):
        if indpb >= 1.0 or rng.random() < indpb:
            individual[i] = rng.randint(0, 1) if binary else rng.uniform(lows[i], ups[i])
    return (individual,)


def mut_gaussian(individual: list, low, up, sigma: float = 0.1, indpb: float | None = None) -> tuple[list]:
    """Gaussian mutation (DEAP ``mutGaussian``), clipped to ``[low, up]``.

    Each gene, with probability ``indpb`` (``None``: ``1 / len``), gets ``N(0, s)`` added,
    ``s = sigma * (up - low)`` per gene. Uses ``random.random`` and ``random.gauss``.
    """
    n = len(individual)
    lows, ups = _bounds(low, up, n)
    tools.mutGaussian(individual, 0.0, [sigma * (hi - lo) for lo, hi in zip(lows, ups)], _rate(indpb, n))
    _clip(individual, lows, ups)
    return (individual,)


def mut_polynomial(individual: list, low, up, eta: float = 20.0, indpb: float | None = None) -> tuple[list]:
    """Bounded polynomial mutation (DEAP ``mutPolynomialBounded``), ``indpb`` ``None``: ``1 / len``.

    Genes with ``low == up`` are pinned to the bound and draw nothing (DEAP would divide
    by zero). Uses ``random.random``.
    """
    n = len(individual)
    lows, ups = _bounds(low, up, n)
    live = [i for i in range(n) if ups[i] > lows[i]]
    genes = [individual[i] for i in live]
    tools.mutPolynomialBounded(genes, eta, [lows[i] for i in live], [ups[i] for i in live], _rate(indpb, n))
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


def sel_random_pairs(individuals: Sequence, k: int, rng=random) -> list[tuple]:
    """``k`` distinct ordered pairs of distinct individuals, uniformly without replacement.

    The same distribution as the notebook's ``random.sample(permutations(pop, 2), k)``,
    without building the list of permutations. Uses ``rng.sample``.
    """
    n = len(individuals)
    if k > n * (n - 1):
        raise ValueError(
            f"Expected k <= {plural(n * (n - 1), 'pair')} of {plural(n, 'individual')}. Received: k={k}"
        )
    pairs = []
    for code in rng.sample(range(n * (n - 1)), k):
        first, second = divmod(code, n - 1)
        pairs.append((individuals[first], individuals[second + (second >= first)]))
    return pairs


@dataclass(frozen=True)
class Operator:
    """One operator's declaration: the registries, pairing checks and toolbox follow from it.

    Attributes:
        role: ``crossover``, ``mutation``, ``selection`` or ``initializer``.
        fn: the function, with DEAP's signature for its role.
        params: keyword arguments it is registered with, resolved by :func:`operator_params`
            from the config (``low``/``up`` are the genome's per-gene bounds).
        kinds: genome kinds it applies to (``real``, ``binary``).
        min_length: shortest genome it applies to.
        defaults: its own defaults for parameters, over the shared ones.
    """

    role: str
    fn: Callable
    params: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset({"real", "binary"})
    min_length: int = 1
    defaults: dict = field(default_factory=dict)

    def fits(self, kind: str, length: int) -> bool:
        """Whether it applies to genomes of this kind and length."""
        return kind in self.kinds and length >= self.min_length


REAL = frozenset({"real"})
BOUNDS = ("low", "up")

# The one declaration per operator; a new operator is one entry here.
OPERATORS: dict[str, Operator] = {
    "average": Operator("crossover", cx_average, kinds=REAL),
    "blend": Operator("crossover", cx_blend, (*BOUNDS, "alpha"), kinds=REAL),
    "sbx": Operator("crossover", cx_sbx, (*BOUNDS, "eta"), kinds=REAL),
    "uniform": Operator("crossover", cx_uniform, ("indpb",), defaults={"indpb": 0.5}),
    "two_point": Operator("crossover", cx_two_point, min_length=2),
    "random_reset": Operator("mutation", mut_random_reset, (*BOUNDS, "indpb", "binary", "rng")),
    "gaussian": Operator("mutation", mut_gaussian, (*BOUNDS, "sigma", "indpb"), kinds=REAL),
    "polynomial": Operator("mutation", mut_polynomial, (*BOUNDS, "eta", "indpb"), kinds=REAL),
    "flip_bit": Operator("mutation", mut_flip_bit, ("indpb",), kinds=frozenset({"binary"})),
    "elite": Operator("selection", sel_elite),
    "nsga2": Operator("selection", tools.selNSGA2),
    "spea2": Operator("selection", tools.selSPEA2),
    "nsga3": Operator("selection", tools.selNSGA3, ("ref_points",)),
    "tournament": Operator("selection", sel_tournament, ("tournsize",)),
    "random_pairs": Operator("selection", sel_random_pairs, ("rng",)),
    "logspace": Operator("initializer", init_logspace),
}


def _registry(role: str) -> dict[str, Callable]:
    return {name: op.fn for name, op in OPERATORS.items() if op.role == role}


CROSSOVERS, MUTATIONS = _registry("crossover"), _registry("mutation")
SELECTIONS, INITIALIZERS = _registry("selection"), _registry("initializer")
# Genome kinds each crossover/mutation applies to.
GENOME_KINDS: dict[str, set[str]] = {
    name: set(op.kinds) for name, op in OPERATORS.items() if op.role in ("crossover", "mutation")
}


def get(registry: dict[str, Any], role: str, name: str) -> Any:
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


def check_pairing(kind: str, length: int, crossover: str, mutation: str, encoding: str | None = None) -> None:
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
    kinds = sorted(set().union(*(op.kinds for op in OPERATORS.values())))
    if kind not in kinds:
        raise ConfigError(f"Unknown genome kind. Expected one of: {', '.join(kinds)}. Received: {kind!r}")
    where = f" (encoding {encoding!r})" if encoding else ""
    for role, name in (("crossover", crossover), ("mutation", mutation)):
        registry = {n: op for n, op in OPERATORS.items() if op.role == role}
        op = get(registry, role, name)
        if op.fits(kind, length):
            continue
        valid = ", ".join(sorted(n for n, other in registry.items() if other.fits(kind, length)))
        problem = (
            f"does not apply to {kind} genomes"
            if kind not in op.kinds
            else f"needs genomes of length >= {op.min_length}, not {length}"
        )
        raise ConfigError(
            f"Operator {name!r} {problem}{where}. Expected one of: {valid}. Received: search.{role}={name!r}"
        )


_SHARED_DEFAULTS = {"alpha": 0.5, "eta": 20.0, "sigma": 0.1, "tournsize": 3, "binary": False}


def _param(key: str, lows: list, ups: list, p: dict, op: Operator) -> Any:
    """One registration keyword of ``op`` from the config parameters ``p``."""
    if key == "rng":
        return p["rng"]
    if key in ("low", "up"):
        return lows if key == "low" else ups
    if key == "indpb":  # missing or 0: the operator's default, else 1 / length
        return p.get("indpb") or op.defaults.get("indpb") or 1.0 / max(len(lows), 1)
    if key == "ref_points":  # NSGA-III's reference points on the 2-objective simplex
        return tools.uniform_reference_points(2, int(p["population"]) - 1)
    value = p.get(key, op.defaults.get(key, _SHARED_DEFAULTS[key]))
    return int(value) if key == "tournsize" else bool(value) if key == "binary" else value


def operator_params(name: str, low, up, params: dict) -> dict:
    """Keyword arguments for ``toolbox.register(role, fn, **kwargs)`` of operator ``name``.

    Args:
        name: an operator name (any role).
        low, up: per-gene bounds (lists or arrays); passed on as lists.
        params: any of ``alpha`` (0.5), ``eta`` (20), ``sigma`` (0.1), ``indpb``,
            ``tournsize`` (3), ``binary`` (False) and ``population`` (NSGA-III's reference
            points) and ``rng`` (the search's generator, for operators that draw
            themselves; missing: they keep their default, the ``random`` module); missing or
            ``None`` keys take the defaults. ``indpb`` missing or 0 means ``1 / len`` for
            mutations and 0.5 for uniform crossover.

    Raises:
        ConfigError: unknown name; the message lists the valid names.

    Example:
        >>> operator_params("sbx", [0.0, 0.0], [1.0, 2.0], {"eta": 15})
        {'low': [0.0, 0.0], 'up': [1.0, 2.0], 'eta': 15}
    """
    op = get(OPERATORS, "operator", name)
    lows, ups = list(low), list(up)
    p = {key: value for key, value in params.items() if value is not None}
    return {key: _param(key, lows, ups, p, op) for key in op.params if key != "rng" or "rng" in p}


def register(toolbox, alias: str, role: str, name: str, low, up, params: dict) -> None:
    """Registers operator ``name`` of ``role`` as ``toolbox.<alias>`` with its parameters.

    Raises:
        ConfigError: unknown name for the role; the message lists the valid names.
    """
    fn = get(_registry(role), role, name)
    toolbox.register(alias, fn, **operator_params(name, low, up, params))
