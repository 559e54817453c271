"""The frozen result of one run and the ``summary.json`` keys every run has."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evoprune import __version__
from evoprune.config import Config

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced.

    Attributes:
        config: the resolved configuration.
        summary: the ``summary.json`` mapping (keys documented in ``docs/run-directory.md``).
        logbook: one row per generation (or round).
        population: the final population, one row per individual.
        front: the non-dominated set of everything evaluated (accuracy up, nonzero down).
        archive: every distinct genome evaluated, in order.
        refined: front points fine-tuned with their masks fixed (``finetune.refine``).
        weights: ``eval_index -> every model weight`` of the points whose weights the run
            made by retraining (fine-tuned points, retrained rounds); a model of any
            other point is its genome's masks on the original weights.
        curve: one row per ``select.compressions`` level (the matched-compression curve).
        curve_weights: ``curve row -> every model weight`` of the curve's models.
    """

    config: Config
    summary: dict[str, Any]
    logbook: pd.DataFrame
    population: pd.DataFrame
    front: pd.DataFrame
    archive: pd.DataFrame = field(repr=False)
    refined: pd.DataFrame | None = None
    weights: dict[int, list] = field(default_factory=dict, repr=False, compare=False)
    curve: pd.DataFrame | None = None
    curve_weights: dict[int, list] = field(default_factory=dict, repr=False, compare=False)


def finite(value: Any) -> Any:
    """JSON has no inf/NaN: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def native(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (anything else unchanged)."""
    return value.item() if hasattr(value, "item") else value


def run_summary(
    config: Config, prepared, problem, search_time: float, setup_time: float, wall_time: float
) -> dict:
    """The ``summary.json`` keys every run has (a search adds ``best`` and ``front_size``)."""
    return {
        "version": SUMMARY_VERSION,
        "algorithm": config.search.algorithm,
        "seed": config.search.seed,
        "dataset": prepared.dataset.name,
        "dataset_checksum": prepared.dataset.checksum,
        "fitness_split": config.data.fitness_split,
        # the mode that scored the fitness split: search.evaluator, or "keras" for a method
        # that scores only the unpruned model (GMP, magnitude)
        "evaluator": problem.evaluator.mode,
        "encoding": problem.encoding.name,  # "auto" resolved for the model
        "layers": config.search.layers,
        "population": config.search.population,
        "generations": config.search.generations,
        "baseline": {
            "accuracy": problem.base_accuracy,
            "test_accuracy": problem.base_test_accuracy,
            "nonzero": problem.base_nonzero,
        },
        "evaluations": problem.evaluations,
        "model_evaluations": problem.model_evaluations,
        "search_time_s": search_time,
        "setup_time_s": setup_time,
        "train_time_s": prepared.trained.train_time_s,
        "model_cached": prepared.trained.cached,
        "wall_time_s": wall_time,
        "times_s": {"setup": setup_time, "search": search_time},  # the run adds its other phases
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Versions of evoprune and the libraries a result depends on."""
    import deap
    import keras
    import tensorflow as tf

    return {
        "evoprune": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "deap": deap.__version__,
        "pandas": pd.__version__,
    }
