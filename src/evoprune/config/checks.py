"""Config checks: names among fixed choices, finite numbers in range, paths (one-line errors)."""

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
# why a model file must be .keras, for every message that refuses another one (.h5 included)
KERAS_ONLY = (
    "Keras 3's format; legacy .h5 files are not supported: load one in Keras and save it "
    "with model.save('model.keras')"
)


def check_choice(name: str, value: str, choices) -> None:
    """Refuses a value outside ``choices`` (any collection of names: a tuple, a registry's keys)."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(
            f"Unknown {name}. Expected one of: {', '.join(choices)}. Received: {name}={value!r}"
        )


def check_unique(name: str, values) -> None:
    """Refuses what is not a list of names, or names an entry twice (two trials would share a key)."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"Expected {name} to be a list of names. Received: {name}={values!r}")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(
                f"Expected each entry of {name} once. Received {value!r} twice: {name}={list(values)!r}"
            )
        seen.add(value)


SEED_MAX = 2**32 - 1  # NumPy's and Keras' seeds are 32-bit
POPULATION_MAX = 100_000
COUNT_MAX = 10**9  # generations, steps, evaluations: more would not finish in a lifetime


def check_range(
    name: str, value: float, low: float, high: float | None = None, low_open: bool = False
) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"Expected {name} to be a finite number. Received: {name}={value!r}")
    too_low = value <= low if low_open else value < low
    too_high = high is not None and value > high
    if too_low or too_high:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"Expected {name} {bound}. Received: {name}={value!r}")


def check_keras_file(name: str, value: str) -> None:
    """Refuses a model file that is not ``.keras`` (an ``.h5`` file, say), naming it."""
    if value and not value.endswith(".keras"):
        raise ConfigError(f"Expected a .keras file for {name} ({KERAS_ONLY}). Received: {name}={value}")


def check_path(name: str, value: str) -> None:
    if "\x00" in value:
        raise ConfigError(f"Expected {name} to be a path without NUL characters. Received: {name}={value!r}")
