"""Matched-compression curves: each method's model at exactly each ``select.compressions`` level.

Every method makes its model at a level after the same final retraining (``finetune.epochs``
epochs of whole-model retraining, with ``finetune``'s rate, schedule and distillation), so
methods are compared where selection noise cannot decide: at the same size and the same
retraining. The rows are ``curve.csv`` (and ``summary.json``'s ``curve``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, loss_bound, make_model_finetuner, point_model
from evoprune.experiments.context import RunContext
from evoprune.experiments.result import RunResult
from evoprune.refine.gradual import schedule_for
from evoprune.refine.population import PopulationResult, population_retrain
from evoprune.refine.retrain import ModelFinetuner
from evoprune.refine.retrain_log import RetrainLog

INFO = "info."  # prefix of a point's info in its retraining-log row
COLUMNS = ["compression", "nonzero", "accuracy", "test_accuracy", "drop_pp", "test_drop_pp", "per_layer"]


@dataclasses.dataclass(frozen=True)
class Point:
    """A method's model at one level: its weights and what it scored."""

    compression: float
    weights: list
    masks: list
    accuracy: float
    test_accuracy: float
    info: dict = dataclasses.field(default_factory=dict)  # numbers a method keeps about it (logged)


def finetuner(config: Config, prepared: Prepared) -> ModelFinetuner:
    """The final retraining every method shares (``finetune.epochs`` of whole-model retraining)."""
    return make_model_finetuner(config, prepared, prepared.target(config.search.layers))


def gmp_point(
    tuner: ModelFinetuner,
    compression: float,
    allocation,
    initial_sparsity: float,
    begin: float,
    end: float,
    frequency: int,
    context: RunContext = RunContext(),
    start: list | None = None,
) -> Point:
    """One gradual-magnitude-pruning retraining to exactly ``compression``.

    Args:
        allocation: ``uniform``, ``global`` or a table of kept fractions by layer name.
        start: the weights to start from (default: the fine-tuner's base, the trained model).
    """
    target = tuner.target
    schedule = _schedule(tuner, compression, allocation, initial_sparsity, begin, end, frequency)
    if start is not None:
        tuner.rebase(start)
    ones = [np.ones(k.shape, dtype=bool) for k in target.kernels]
    weights = tuner.retrain(
        ones,
        schedule,
        progress=lambda done, total: context.progress("retrain", done, total, f"{compression:g}x"),
    )
    return _measured(tuner, compression, schedule, weights)


def _schedule(tuner: ModelFinetuner, compression: float, allocation, initial: float, begin, end, frequency):
    """The GMP schedule of one of ``tuner``'s retrainings to exactly ``compression``."""
    target = tuner.target
    sizes = [int(k.size) for k in target.kernels]
    return schedule_for(
        target.names, sizes, compression, allocation, tuner.steps(), initial, begin, end, frequency
    )


def _measured(tuner: ModelFinetuner, compression: float, schedule, weights: list, info=None) -> Point:
    """The point of a gradual pruning's final ``weights``: its masks (its nonzeros) and accuracies."""
    masks = [weights[i] != 0 for i in tuner.target.weight_positions(tuner.model)]
    if sum(int(m.sum()) for m in masks) > schedule.total:  # exact zeros only ever lower the count
        raise AssertionError("gradual pruning kept more weights than its schedule")
    accuracy, test_accuracy = tuner.evaluate(weights)
    return Point(compression, weights, masks, accuracy, test_accuracy, info or {})


def population_point(
    tuner: ModelFinetuner,
    compression: float,
    initial_sparsity: float,
    begin: float,
    end: float,
    frequency: int,
    population: int,
    round_epochs: int,
    sigma: float,
    context: RunContext = RunContext(),
    starts: list | None = None,
    average: bool = False,
    rank_by: str = "accuracy",
) -> tuple[Point, PopulationResult]:
    """Population-based gradual pruning to exactly ``compression`` (:mod:`evoprune.refine.population`).

    Args:
        starts: log exchange rates of the first members (default: GMP global's, all zeros).
        average: the answer is the members' average after the ramp; the point's ``info``
            then also holds the best member's own continuation's accuracies (``alone.*``).
        rank_by: members ranked by fitness-split ``accuracy`` or ``loss`` (cross-entropy).
    """
    target = tuner.target
    schedule = _schedule(tuner, compression, "global", initial_sparsity, begin, end, frequency)
    evolved = population_retrain(
        tuner,
        schedule,
        target.names,
        population,
        round_epochs,
        sigma,
        tuner.seed,
        starts or (),
        progress=lambda done, total: context.progress("population", done, total, f"{compression:g}x"),
        average=average,
        rank_by=rank_by,
    )
    info = {
        "search_epochs": evolved.search_epochs,
        "evolving_epochs": evolved.evolving_epochs,
        **{f"log_scale.{name}": value for name, value in evolved.log_scales.items()},
    }
    if evolved.alone is not None:
        info["alone.accuracy"], info["alone.test_accuracy"] = tuner.evaluate(evolved.alone)
    return _measured(tuner, compression, schedule, evolved.weights, info), evolved


def logged_point(
    log: RetrainLog, key: str, tuner: ModelFinetuner, make: Callable[[], Point], masks: list | None = None
) -> Point:
    """``make()``, logged under ``key`` as it finishes; a resumed run gets it from ``log`` instead.

    Args:
        masks: the point's masks (a fixed mask's); ``None``: the nonzero weights of its
            pruned kernels (a gradual pruning's, as :func:`gmp_point` makes them).
    """
    if log.done(key):
        row, weights = log.row(key), log.weights(key)
        assert weights is not None  # every point is logged with its weights
        kept = (
            masks
            if masks is not None
            else [weights[i] != 0 for i in tuner.target.weight_positions(tuner.model)]
        )
        kept = [np.asarray(m, dtype=bool) for m in kept]
        info = {name[len(INFO) :]: value for name, value in row.items() if name.startswith(INFO)}
        return Point(row["compression"], weights, kept, row["accuracy"], row["test_accuracy"], info)
    point = make()
    row = {"compression": point.compression, "accuracy": point.accuracy, "test_accuracy": point.test_accuracy}
    log.add(key, {**row, **{INFO + name: value for name, value in point.info.items()}}, point.weights)
    return point


def fine_tuned_point(tuner: ModelFinetuner, compression: float, masks: list) -> Point:
    """A fixed mask (exactly ``compression``'s size) fine-tuned for the final retraining."""
    weights = tuner.tuned_weights(masks)
    accuracy, test_accuracy = tuner.evaluate(weights)
    return Point(compression, weights, [np.asarray(m, dtype=bool) for m in masks], accuracy, test_accuracy)


def row(point: Point, base: dict, target) -> dict:
    """One ``curve.csv`` row: drops are baseline minus model, in points (validation and test)."""
    return {
        "compression": point.compression,
        "nonzero": int(sum(int(np.count_nonzero(m)) for m in point.masks)),
        "accuracy": point.accuracy,
        "test_accuracy": point.test_accuracy,
        "drop_pp": 100.0 * (base["accuracy"] - point.accuracy),
        "test_drop_pp": 100.0 * (base["test_accuracy"] - point.test_accuracy),
        "per_layer": json.dumps(
            {k: round(v, 6) for k, v in target.kept_fractions(point.masks).items()}, sort_keys=False
        ),
    }


def table(points: list[Point], result: RunResult, target) -> pd.DataFrame:
    """``curve.csv``'s rows, one per point (see :func:`row`)."""
    base = result.summary["baseline"]
    return pd.DataFrame([row(point, base, target) for point in points], columns=COLUMNS)


def level_text(level: dict) -> str:
    """A curve row as one line, ``curve 12x: nonzero 22,183, accuracy 0.9812, test 0.9808
    (drop 0.04 points)``: what a run prints as each level finishes, and ``evoprune show`` again."""
    return (
        f"curve {level['compression']:g}x: nonzero {int(level['nonzero']):,}, accuracy "
        f"{level['accuracy']:.4f}, test {level['test_accuracy']:.4f} "
        f"(drop {level['test_drop_pp']:.2f} points)"
    )


def summary_rows(curve: pd.DataFrame) -> list[dict]:
    """``summary.json``'s ``curve``: ``curve.csv``'s rows, ``per_layer`` as an object (not JSON text)."""
    return [{**row, "per_layer": json.loads(row["per_layer"])} for row in curve.to_dict("records")]


def with_curve(
    config: Config,
    prepared: Prepared,
    result: RunResult,
    make: Callable[[float], Point],
    context: RunContext,
) -> RunResult:
    """``result`` with its curve: one point per level, made by ``make(level)``, weights kept."""
    start = time.perf_counter()
    target = prepared.target(config.search.layers)
    points = []
    for i, level in enumerate(config.select.compressions):
        context.progress("curve", i, len(config.select.compressions), f"{level:g}x")
        points.append(make(level))
        context.status(level_text(row(points[-1], result.summary["baseline"], target)))
    context.progress("curve", len(points), len(points), "")
    curve = table(points, result, target)
    bound = loss_bound(
        config, prepared, lambda i: point_model(config, prepared, weights=points[i].weights)[0]
    )
    if bound is not None:  # the selection's bound at each level, to measure its error rates
        curve["loss_bound_pp"] = [bound(i) for i in range(len(points))]
    times = {**(result.summary.get("times_s") or {})}
    times["curve"] = times.get("curve", 0.0) + time.perf_counter() - start  # its retrainings
    summary = {**result.summary, "curve": summary_rows(curve), "times_s": times}
    weights = {**result.curve_weights, **{i: p.weights for i, p in enumerate(points)}}
    return dataclasses.replace(result, summary=summary, curve=curve, curve_weights=weights)
