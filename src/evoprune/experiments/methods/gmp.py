"""Gradual magnitude pruning (Zhu & Gupta 2017; TF Model Optimization's method) as a method: ``gmp``.

One retraining of ``finetune.epochs`` prunes the model to exactly ``[gmp] compression``:
the sparsity of the pruned layers follows the cubic schedule of
:mod:`evoprune.refine.gradual`, masks move to the largest ``|w|`` every ``frequency`` steps
inside the compiled train step, and the retraining settings (rate, schedule, distillation)
are ``[finetune]``'s, as for every method. ``gmp-uniform`` and ``gmp-global`` are the same
method with the allocation fixed, for comparisons.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import pandas as pd

from evoprune.config import Config, check_choice, check_range
from evoprune.errors import ConfigError
from evoprune.experiments import curve
from evoprune.experiments.assemble import Prepared, loss_bound, make_problem, point_model, retrain_log
from evoprune.experiments.context import RunContext
from evoprune.experiments.methods.base import Method, retrained_tables
from evoprune.experiments.result import RunResult
from evoprune.refine import gradual
from evoprune.refine.population import RANKINGS
from evoprune.refine.select import selected_summary

POPULATION = {"gmp-pbt": True}  # a field only gmp-pbt reads (left out of plain GMP's summary)


@dataclass(frozen=True)
class GmpConfig:
    """``[gmp]``: gradual magnitude pruning.

    Attributes:
        compression: the target (> 1): the final model keeps ``round(total / compression)``
            of the pruned layers' weights (``s_f = 1 - 1/compression``).
        initial_sparsity: ``s_i``, the sparsity at the first step of the schedule.
        begin, end: fractions of the retraining's steps where the sparsity starts and
            stops rising.
        frequency: optimizer steps between mask updates.
        allocation: ``uniform`` (every pruned layer at the same sparsity), ``global`` (one
            magnitude threshold over all pruned layers) or a table of kept fractions by
            layer name (its shape, scaled so the total is exact).
        members, round_epochs, rate_sigma, average, rank_by: ``gmp-pbt`` only
            (:mod:`evoprune.refine.population`): retrainings evolved side by side, epochs
            between selections, the mutation's standard deviation of a layer's log
            exchange rate, whether the answer averages the members' continuations of
            the best one after the ramp (else the best one trains on alone), and what
            ranks the members on the fitness split: ``accuracy`` or ``loss`` (its mean
            cross-entropy, which separates members whose accuracies are a few images apart).
    """

    compression: float = 12.0
    initial_sparsity: float = gradual.INITIAL_SPARSITY
    begin: float = gradual.BEGIN
    end: float = gradual.END
    frequency: int = gradual.FREQUENCY
    allocation: str | dict = field(default="uniform", metadata={"types": (str, dict)})
    members: int = field(default=4, metadata=POPULATION)
    round_epochs: int = field(default=3, metadata=POPULATION)
    rate_sigma: float = field(default=0.1, metadata=POPULATION)
    average: bool = field(default=False, metadata=POPULATION)
    rank_by: str = field(default="loss", metadata=POPULATION)

    def validate(self) -> None:
        check_range("gmp.compression", self.compression, 1.0, 1e9, low_open=True)
        check_range("gmp.initial_sparsity", self.initial_sparsity, 0.0, 1.0)
        check_range("gmp.begin", self.begin, 0.0, 1.0)
        check_range("gmp.end", self.end, 0.0, 1.0)
        check_range("gmp.frequency", self.frequency, 1, 10**9)
        check_range("gmp.members", self.members, 2, 1000)
        check_range("gmp.round_epochs", self.round_epochs, 1, 100_000)
        check_range("gmp.rate_sigma", self.rate_sigma, 0.0, 10.0)
        check_choice("gmp.rank_by", self.rank_by, RANKINGS)
        if self.end < self.begin:
            raise ConfigError(
                f"Expected gmp.begin <= gmp.end. Received: gmp.begin={self.begin}, gmp.end={self.end}"
            )
        if isinstance(self.allocation, str):
            check_choice("gmp.allocation", self.allocation, gradual.ALLOCATIONS)
            return
        if not self.allocation:
            raise ConfigError(
                "Expected gmp.allocation to name at least one layer. Received: gmp.allocation={}"
            )
        for name, kept in self.allocation.items():
            check_range(f"gmp.allocation.{name}", kept, 0.0, 1.0, low_open=True)


def settings(config: Config) -> GmpConfig:
    """The run's ``[gmp]`` table (its defaults where the config has none)."""
    return config.section("gmp", GmpConfig())


def _check(config: Config) -> None:
    table = settings(config).allocation
    if isinstance(table, dict) and isinstance(config.search.layers, tuple):
        missing = set(config.search.layers) ^ set(table)
        if missing:
            raise ConfigError(
                f"Expected gmp.allocation to give a kept fraction for each pruned layer "
                f"({', '.join(config.search.layers)}). Received: gmp.allocation={table}"
            )


def run_gmp(
    config: Config,
    prepared: Prepared,
    context: RunContext = RunContext(),
    evolve: bool = False,
) -> RunResult:
    """One GMP retraining to ``[gmp] compression``, and one per ``select.compressions`` level.

    ``selected`` is the model at ``[gmp] compression`` (whether or not it is within
    ``select.tolerance_pp``: ``within_tolerance`` says); its weights are kept for export.
    With ``evolve``, each level is a population-based retraining (``gmp-pbt``): the
    summary's ``gmp.evolved`` gives each level's winning log exchange rates, and
    ``search_epochs`` the epochs its other members trained.
    """
    wall_start = time.perf_counter()
    g = settings(config)
    allocation = g.allocation  # the variants' fixed one is in the config (Method.fixed)
    problem = make_problem(config.with_overrides({"finetune.refine": "none"}), prepared, scoring="keras")
    target = problem.evaluator.target
    gradual.check_levels("gmp.compression", g.compression, target.base_nonzero)
    tuner = curve.finetuner(config, prepared)
    setup_time = time.perf_counter() - wall_start
    levels = [g.compression] + [level for level in config.select.compressions if level != g.compression]
    log = retrain_log(config, prepared, context, "GMP level")  # a resumed run replays its levels
    start = time.perf_counter()
    points = []
    evolved: dict[str, dict] = {}
    for i, level in enumerate(levels):
        kind = "population-based" if evolve else allocation if isinstance(allocation, str) else "table"
        context.status(f"GMP to {level:g}x ({kind} allocation)")

        def make(level: float = level) -> curve.Point:
            if not evolve:
                return curve.gmp_point(
                    tuner, level, allocation, g.initial_sparsity, g.begin, g.end, g.frequency, context
                )
            point, _ = curve.population_point(
                tuner,
                level,
                g.initial_sparsity,
                g.begin,
                g.end,
                g.frequency,
                g.members,
                g.round_epochs,
                g.rate_sigma,
                context,
                average=g.average,
                rank_by=g.rank_by,
            )
            return point

        points.append(curve.logged_point(log, f"level {level:g}x", tuner, make))
        if evolve:  # from the log's row too, when the level was replayed
            info = points[-1].info
            evolved[f"{level:g}"] = {
                "log_scales": {k.split(".", 1)[1]: v for k, v in info.items() if k.startswith("log_scale.")},
                "search_epochs": int(info["search_epochs"]),
                "evolving_epochs": int(info["evolving_epochs"]),
                **{k: v for k, v in info.items() if k.startswith("alone.")},
            }
        context.progress("level", i + 1, len(levels), f"{level:g}x")
    search_time = time.perf_counter() - start
    rows = []
    for i, point in enumerate(points):
        kept = target.kept_fractions(point.masks)
        rows.append(
            {
                "eval_index": i,
                "genome": " ".join(f"{v:.4g}" for v in kept.values()),
                "accuracy": point.accuracy,
                "test_accuracy": point.test_accuracy,
                "nonzero": int(sum(int(m.sum()) for m in point.masks)),
            }
        )
    columns = ["eval_index", "genome", "accuracy", "test_accuracy", "nonzero", "compression", "fitness"]
    table, front, logbook, summary = retrained_tables(
        config, prepared, problem, pd.DataFrame(rows), search_time, wall_start, columns, setup_time
    )
    population_only = () if evolve else [f.name for f in dataclasses.fields(g) if f.metadata == POPULATION]
    summary["gmp"] = {
        **{k: v for k, v in dataclasses.asdict(g).items() if k not in population_only},
        "allocation": "population-based" if evolve else allocation,
        "retrain_epochs": config.finetune.epochs,
    }
    if evolve:
        summary["gmp"]["evolved"] = evolved
        summary["gmp"]["search_epochs"] = sum(level["search_epochs"] for level in evolved.values())
    first = pd.concat([table.iloc[0], pd.Series({"refined": True})])
    chosen = selected_summary(
        first, summary["baseline"], first["genome"], target.kept_fractions(points[0].masks)
    )
    assert chosen is not None  # a row always gives a mapping
    bound = loss_bound(
        config, prepared, lambda i: point_model(config, prepared, weights=points[i].weights)[0]
    )
    if bound is None:
        within = points[0].accuracy >= problem.base_accuracy - config.select.tolerance_pp / 100.0 - 1e-12
        summary["selected"] = {**chosen, "within_tolerance": bool(within)}
    else:
        loss = bound(0)
        within = loss <= config.select.tolerance_pp + 1e-9
        summary["selected"] = {**chosen, "within_tolerance": bool(within), "loss_bound_pp": loss}
    result = RunResult(
        config, summary, logbook, table, front, table, weights={i: p.weights for i, p in enumerate(points)}
    )
    if config.select.compressions:
        made = dict(zip(levels, points))
        result = curve.with_curve(config, prepared, result, lambda level: made[level], context)
    return result


def run_pbt(config: Config, prepared: Prepared, context: RunContext = RunContext()) -> RunResult:
    """``gmp-pbt``: each level's model from a population of GMP retrainings evolved as they train."""
    return run_gmp(config, prepared, context, evolve=True)


METHODS = [
    Method(
        "gmp",
        "gradual magnitude pruning (Zhu & Gupta 2017), one retraining to [gmp] compression",
        run_gmp,
        section=GmpConfig,
        check=_check,
    ),
    Method(
        "gmp-uniform",
        "gmp with every pruned layer at the same sparsity",
        run_gmp,
        section=GmpConfig,
        table="gmp",
        check=_check,
        fixed={"allocation": "uniform"},
    ),
    Method(
        "gmp-global",
        "gmp with one magnitude threshold over all pruned layers",
        run_gmp,
        section=GmpConfig,
        table="gmp",
        check=_check,
        fixed={"allocation": "global"},
    ),
    Method(
        "gmp-pbt",
        "gmp-global retrained as an evolving population: [gmp] members retrainings, the worse "
        "half replaced every round_epochs by mutated copies of the better (per-layer exchange rates)",
        run_pbt,
        section=GmpConfig,
        table="gmp",
        check=_check,
        fixed={"allocation": "global"},
    ),
]
