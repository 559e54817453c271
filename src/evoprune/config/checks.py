"""Config checks: name choices read from the registries, finite numbers in range, paths."""

from __future__ import annotations

import math
import re

from evoprune.errors import ConfigError

SAMPLE_DATASET = "mnist-sample"
# A tensorflow-datasets name: ``name``, ``name/config``, optionally ``:version``.
TFDS_NAME = re.compile(r"^[a-z0-9_]+(/[a-z0-9_.]+)?(:[0-9.]+)?$")
FITNESS_SPLITS = ("validation", "test")
EVALUATORS = ("fast", "exact")
REFINES = ("none", "front", "each")


def registry_names(registry: str) -> tuple[str, ...]:
    """Valid names of a registry, read from the module that declares it (imported on first use).

    Args:
        registry: ``algorithm``, ``encoding``, ``executor``, ``crossover``, ``mutation``,
            ``architecture`` or ``layers`` (the named layer sets).
    """
    if registry == "algorithm":
        from evoprune.refine.magnitude import MAGNITUDE
        from evoprune.search.algorithms import STRATEGIES

        names = (*STRATEGIES, MAGNITUDE)  # the magnitude baseline is not a DEAP strategy
    elif registry == "encoding":
        from evoprune.search.encodings import ENCODINGS as names
    elif registry == "executor":
        from evoprune.experiments.executors import EXECUTORS as names
    elif registry == "architecture":
        from evoprune.models.architectures import ARCHITECTURES as names
    elif registry == "layers":
        from evoprune.models.target import LAYER_SETS as names
    else:
        from evoprune.search.operators import OPERATORS

        names = [name for name, op in OPERATORS.items() if op.role == registry]
    return tuple(names)


def _check_choice(name: str, value: str, choices: tuple[str, ...] | str) -> None:
    """Refuses a value outside ``choices`` (a tuple, or a registry name for :func:`registry_names`)."""
    choices = registry_names(choices) if isinstance(choices, str) else choices
    if value not in choices:
        raise ConfigError(
            f"Unknown {name}. Expected one of: {', '.join(choices)}. Received: {name}={value!r}"
        )


SEED_MAX = 2**32 - 1  # NumPy's and Keras' seeds are 32-bit
POPULATION_MAX = 100_000
COUNT_MAX = 10**9  # generations, steps, evaluations: more would not finish in a lifetime


def _check_range(
    name: str, value: float, low: float, high: float | None = None, low_open: bool = False
) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"Expected {name} to be a finite number. Received: {name}={value!r}")
    too_low = value <= low if low_open else value < low
    too_high = high is not None and value > high
    if too_low or too_high:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"Expected {name} {bound}. Received: {name}={value!r}")


def _check_path(name: str, value: str) -> None:
    if "\x00" in value:
        raise ConfigError(f"Expected {name} to be a path without NUL characters. Received: {name}={value!r}")
