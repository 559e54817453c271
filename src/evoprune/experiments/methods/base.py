"""What a method is: one entry ``(Config, Prepared, RunContext) -> RunResult`` of the method table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, identity
from evoprune.experiments.context import _quiet
from evoprune.experiments.result import native, run_summary
from evoprune.reporting.metrics import compression, pareto_front
from evoprune.scoring.evaluate import PruningProblem, paper_fitness


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes:
        name: its ``search.algorithm`` name.
        summary: one line for ``--help`` and the docs.
        run: ``(config, prepared, context) -> RunResult``.
        genomes: it searches a genome (bench crosses it with ``bench.encodings``).
        operators: it uses evoprune's operators (bench crosses it with ``bench.variants``).
        section: the class of its own config table (``None``: it has none).
        table: the name of that table (default: the method's name); methods that share
            settings share a table (``gmp-global`` reads ``[gmp]``).
        check: refuses settings the method cannot run with (a ``ConfigError``).
        checkpoint: it resumes from the search checkpoint (``checkpoint.npz``), which a
            resumed run must then have; a method without one resumes from its
            retraining log alone (:func:`~evoprune.experiments.assemble.retrain_log`), or
            starts again.
        extra: the ``pyproject.toml`` extra it needs (``None``: the core is enough).
        modules: the top-level modules of that extra it imports.
        fixed: keys of its table that the method fixes (``gmp-global``: ``{"allocation":
            "global"}``): the config records them in place of what the table gave.
    """

    name: str
    summary: str
    run: Callable
    genomes: bool = False
    operators: bool = False
    section: type | None = None
    table: str = ""
    check: Callable = field(default=_quiet)
    checkpoint: bool = False
    extra: str | None = None
    modules: tuple[str, ...] = ()
    fixed: dict = field(default_factory=dict, hash=False)  # a Method stays hashable

    @property
    def table_name(self) -> str:
        """The name of its config table (``[gmp]``)."""
        return self.table or self.name


def retrained_tables(
    config: Config,
    prepared: Prepared,
    problem: PruningProblem,
    table: pd.DataFrame,
    search_time: float,
    started: float,
    columns: list[str],
    setup_time: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Table, front, logbook and summary of a method whose models are retrained (one row each).

    ``table`` has ``eval_index, genome, accuracy, test_accuracy, nonzero`` (and any of
    ``columns``); ``compression`` and the paper's ``fitness`` are added. The logbook has
    one row per model, the summary the keys every run has plus ``best`` and the selection
    settings (``selected`` is the method's own). ``search_time`` is the retraining's,
    ``setup_time`` what came before it (``summary.times_s``).
    """
    nonzero = table["nonzero"].to_numpy(dtype=np.int64)
    table["compression"] = compression(problem.base_nonzero, nonzero)
    table["fitness"] = [
        paper_fitness(a, n, problem.base_accuracy, problem.base_nonzero)
        for a, n in zip(table["accuracy"], nonzero)
    ]
    table = table[columns]
    front = pareto_front(table)
    logbook = table.rename(columns={"eval_index": "gen"}).assign(evaluations=np.arange(1, len(table) + 1))
    best = table.loc[table["fitness"].idxmax()]
    summary = run_summary(config, prepared, problem, search_time, setup_time, time.perf_counter() - started)
    summary.update(identity(prepared))
    summary.update(
        {
            "evaluations": len(table),
            "model_evaluations": len(table),
            "best": {k: native(best[k]) for k in columns if k not in ("eval_index", "keep", "accepted")},
            "front_size": len(front),
            "select": {"tolerance_pp": config.select.tolerance_pp, "confidence": config.select.confidence},
        }
    )
    return table, front, logbook, summary
