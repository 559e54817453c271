"""The magnitude baseline as a method: Han et al.'s iterative pruning and retraining, at equal budget."""

from __future__ import annotations

import time

import numpy as np

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, identity, make_model_finetuner, make_problem
from evoprune.experiments.methods.base import Method, RunContext
from evoprune.experiments.result import RunResult, native, run_summary
from evoprune.refine.magnitude import magnitude_schedule, retrain_budget_epochs
from evoprune.refine.select import select
from evoprune.reporting.metrics import compression, pareto_front
from evoprune.scoring.evaluate import paper_fitness

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

    ``front`` is the Pareto front of the rounds, ``archive`` and ``population`` every
    round, ``logbook`` one row per round, and the summary's ``selected`` the smallest
    round within ``select.tolerance_pp`` of baseline (rounds are already retrained, and
    the weights of the front's rounds are kept for export).
    """
    wall_start = time.perf_counter()
    problem = make_problem(config.with_overrides({"finetune.refine": "none"}), prepared, context.status)
    target = problem.evaluator.target
    finetuner = make_model_finetuner(config, prepared, target)
    budget = retrain_budget_epochs(config)
    rounds = max(budget // config.finetune.epochs, 1)
    context.status(f"Magnitude pruning: {rounds} rounds of {config.finetune.epochs} epochs ({budget} in all)")
    start = time.perf_counter()
    setup_time = start - wall_start
    original = finetuner.base
    try:
        table, masks, weights = magnitude_schedule(
            finetuner,
            problem.evaluator.kernels,
            problem.base_accuracy,
            rounds,
            config.select.tolerance_pp,
            context.status,
            lambda done, total: context.progress("round", done, total, ""),
        )
    finally:
        finetuner.rebase(original)
        finetuner.model.set_weights(original)
    search_time = time.perf_counter() - start
    table["compression"] = compression(problem.base_nonzero, table["nonzero"].to_numpy(dtype=np.int64))
    table["fitness"] = [
        paper_fitness(a, n, problem.base_accuracy, problem.base_nonzero)
        for a, n in zip(table["accuracy"], table["nonzero"])
    ]
    table["genome"] = [
        " ".join(f"{v:.4g}" for v in target.kept_fractions(masks[i]).values()) for i in table["eval_index"]
    ]
    table = table[COLUMNS]
    front = pareto_front(table)
    logbook = table.rename(columns={"eval_index": "gen"}).assign(evaluations=np.arange(1, len(table) + 1))
    best = table.loc[table["fitness"].idxmax()]
    wall_time = time.perf_counter() - wall_start
    summary = run_summary(config, prepared, problem, search_time, setup_time, wall_time)
    summary.update(identity(prepared))
    summary.update(
        {
            "evaluations": len(table),
            "model_evaluations": len(table),
            "best": {k: native(best[k]) for k in COLUMNS if k not in ("eval_index", "keep", "accepted")},
            "front_size": len(front),
            "magnitude": {
                "rule": "global over |w|/std(layer) (Han's per-layer threshold q*std, one q)",
                "retrain_budget_epochs": budget,
                "rounds": rounds,
                "rounds_run": len(table),
                "epochs_per_round": config.finetune.epochs,
            },
        }
    )
    summary["select"] = {"tolerance_pp": config.select.tolerance_pp}
    summary["selected"] = select(
        front,
        None,
        summary["baseline"],
        config.select.tolerance_pp,
        lambda i: table.at[i, "genome"],
        lambda i: masks[i],
        target,
    )
    if summary["selected"] is not None:
        summary["selected"]["refined"] = True
    kept = {int(i): weights[int(i)] for i in front["eval_index"]}
    return RunResult(config, summary, logbook, table, front, table, weights=kept)


METHODS = [
    Method(
        "magnitude",
        "Han et al.'s iterative magnitude pruning and retraining, at evolution's retraining budget",
        run_magnitude,
    )
]
