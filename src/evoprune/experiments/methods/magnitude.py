"""The magnitude baseline as a method: Han et al.'s iterative pruning and retraining, at equal budget."""

from __future__ import annotations

import time

from evoprune.config import Config
from evoprune.errors import plural
from evoprune.experiments import curve
from evoprune.experiments.assemble import (
    Prepared,
    loss_bound,
    make_model_finetuner,
    make_problem,
    point_model,
    retrain_log,
)
from evoprune.experiments.context import RunContext
from evoprune.experiments.methods.base import Method, retrained_tables
from evoprune.experiments.result import RunResult
from evoprune.refine.magnitude import level_steps, magnitude_levels, magnitude_schedule, retrain_budget_epochs
from evoprune.refine.select import select

COLUMNS = [
    "eval_index",
    "genome",
    "accuracy",
    "test_accuracy",
    "nonzero",
    "compression",
    "fitness",
    "keep",
    "accepted",
]


def run_magnitude(config: Config, prepared: Prepared, context: RunContext = RunContext()) -> RunResult:
    """The magnitude baseline as a run: the same run-directory shape as a search.

    Without ``select.compressions`` the rounds adapt (``magnitude_schedule``, at
    evolution's retraining budget); with levels they pass through 2x, 4x, 8x, ... and every
    level (``magnitude_levels``), and the model at a level is that round's. ``front`` is the
    Pareto front of the rounds, ``archive`` and ``population`` every round, ``logbook`` one
    row per round, and the summary's ``selected`` the smallest round within
    ``select.tolerance_pp`` of baseline (rounds are already retrained, and the weights of
    the front's rounds are kept for export).
    """
    wall_start = time.perf_counter()
    problem = make_problem(
        config.with_overrides({"finetune.refine": "none"}), prepared, context.status, scoring="keras"
    )
    target = problem.evaluator.target
    finetuner = make_model_finetuner(config, prepared, target)
    levels = list(config.select.compressions)
    budget = retrain_budget_epochs(config)
    rounds = len(level_steps(levels)) if levels else max(budget // config.finetune.epochs, 1)
    if levels:  # Han's iterative pruning through the levels: one final retraining each
        budget = rounds * config.finetune.epochs
    context.status(
        f"Magnitude pruning: {plural(rounds, 'round')} of {plural(config.finetune.epochs, 'epoch')} "
        f"({budget} in all)"
    )
    start = time.perf_counter()
    setup_time = start - wall_start
    original = finetuner.base
    log = retrain_log(config, prepared, context, "magnitude round")  # a resumed run replays its rounds
    if len(log):
        context.status(f"Resuming: {len(log)} rounds retrained before the interruption")
    report = lambda done, total: context.progress("round", done, total, "")  # noqa: E731
    try:
        if levels:
            table, masks, weights = magnitude_levels(
                finetuner, problem.evaluator.kernels, levels, context.status, report, log
            )
        else:
            table, masks, weights = magnitude_schedule(
                finetuner,
                problem.evaluator.kernels,
                problem.base_accuracy,
                rounds,
                config.select.tolerance_pp,
                context.status,
                report,
                log,
            )
    finally:
        finetuner.rebase(original)
        finetuner.model.set_weights(original)
    search_time = time.perf_counter() - start
    table["genome"] = [
        " ".join(f"{v:.4g}" for v in target.kept_fractions(masks[i]).values()) for i in table["eval_index"]
    ]
    table, front, logbook, summary = retrained_tables(
        config, prepared, problem, table, search_time, wall_start, COLUMNS, setup_time
    )
    summary["magnitude"] = {
        "rule": "global over |w|/std(layer) (Han's per-layer threshold q*std, one q)",
        "retrain_budget_epochs": budget,
        "rounds": rounds,
        "rounds_run": len(table),
        "epochs_per_round": config.finetune.epochs,
    }
    bound = loss_bound(config, prepared, lambda i: point_model(config, prepared, weights=weights[i])[0])
    summary["selected"] = select(
        front,
        None,
        summary["baseline"],
        config.select.tolerance_pp,
        lambda i: table.at[i, "genome"],
        lambda i: masks[i],
        target,
        bound,
    )
    if summary["selected"] is not None:
        summary["selected"]["refined"] = True
    kept = {int(i): weights[int(i)] for i in front["eval_index"]}
    result = RunResult(config, summary, logbook, table, front, table, weights=kept)
    if not levels:
        return result
    steps = level_steps(levels)

    def made(level: float) -> curve.Point:
        r = steps.index(float(level))
        accuracy, test_accuracy = float(table.at[r, "accuracy"]), float(table.at[r, "test_accuracy"])
        return curve.Point(level, weights[r], masks[r], accuracy, test_accuracy)

    return curve.with_curve(config, prepared, result, made, context)


METHODS = [
    Method(
        "magnitude",
        "Han et al.'s iterative magnitude pruning and retraining, at evolution's retraining budget",
        run_magnitude,
    )
]
