"""Trials of compare and bench: the budget, ``within(pp)``, the trial task and row, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from evoprune.config import Config
from evoprune.errors import EvopruneError
from evoprune.experiments import methods
from evoprune.experiments.assemble import prepare
from evoprune.experiments.configure import from_dict
from evoprune.experiments.executors import run_tasks
from evoprune.experiments.result import RunResult
from evoprune.io import atomic_write_text
from evoprune.models.training import import_tensorflow_quietly
from evoprune.reporting.metrics import hypervolume, igd, pareto_front, within

# the one task every executor runs: a plain dict in, a plain dict out
TASK = "evoprune.experiments.trials:run_trial"
INT_COLUMNS = (
    "seed",
    "evaluations",
    "baseline_nonzero",
    "best_nonzero",
    "front_size",
    "gen",
    "nonzero",
    "nonzero_within_0.5pp",
    "nonzero_within_1pp",
    "test_nonzero_within_0.5pp",
    "test_nonzero_within_1pp",
    "selected_nonzero",
)
Progress = Callable[[str, int, int], None]  # (label, trials done, trials in all)


def with_budget(config: Config) -> Config:
    """Equal budgets: without ``search.max_evaluations`` it is population x generations
    (the notebook's 20 x 30 = 600), and generations only bound the loop from above."""
    search = config.search
    budget = search.max_evaluations or search.population * search.generations
    return config.with_overrides(
        {"search.max_evaluations": budget, "search.generations": max(search.generations, 10 * budget)}
    )


def budget_text(config: Config, equal: bool = True) -> str:
    """The line compare and bench print first: each trial's budget and the keys it comes from.

    ``equal``: the budget of :func:`with_budget` (compare), where ``search.max_evaluations``
    replaces ``search.generations``; else the loop's own (bench), whichever ends first.
    """
    search = config.search
    if not search.max_evaluations:
        return (
            f"Budget: {search.population * search.generations:,} distinct evaluations a trial "
            f"(search.population {search.population} x search.generations {search.generations})"
        )
    if equal:
        return (
            f"Budget: {search.max_evaluations:,} distinct evaluations a trial (search.max_evaluations, "
            f"which replaces search.generations={search.generations} here; set it to shorten the trials)"
        )
    return (
        f"Budget: {search.max_evaluations:,} distinct evaluations or {search.generations} generations "
        "a trial, whichever comes first (search.max_evaluations, search.generations)"
    )


def front_igd(front: pd.DataFrame, exact: pd.DataFrame | None, base_nonzero: int) -> float:
    """IGD of ``front`` to the reference front ``exact`` (NaN without one)."""
    if exact is None:
        return float("nan")
    cols = ["accuracy", "nonzero"]
    return igd(front[cols].to_numpy(), exact[cols].to_numpy(), base_nonzero)


def front_metrics(
    config: Config,
    front: pd.DataFrame,
    exact: pd.DataFrame | None,
    base_accuracy: float,
    base_test_accuracy: float,
    base_nonzero: int,
) -> dict:
    """Hypervolume, IGD to the exact front (NaN without one), smallest sizes within 0.5 / 1 points."""
    ref_nonzero = config.metrics.ref_nonzero or base_nonzero
    row: dict[str, Any] = {
        "hypervolume": hypervolume(
            front["accuracy"], front["nonzero"], base_nonzero, config.metrics.ref_accuracy, ref_nonzero
        ),
        "igd": front_igd(front, exact, base_nonzero),
    }
    for points in (0.5, 1.0):
        tag = f"{points:g}pp"
        row[f"nonzero_within_{tag}"] = within(front, base_accuracy, points)
        row[f"test_nonzero_within_{tag}"] = within(
            front, base_test_accuracy, points, accuracy_col="test_accuracy"
        )
    chosen = front[front["nonzero"] == row["nonzero_within_1pp"]]
    row["selected_1pp_test_drop_pp"] = (
        100 * (base_test_accuracy - chosen["test_accuracy"].iloc[0]) if len(chosen) else None
    )
    return row


def selected_columns(summary: dict) -> dict:
    """A trial's ``summary["selected"]`` as table columns (None where nothing was within tolerance)."""
    chosen = summary.get("selected") or {}
    return {
        "selected_nonzero": chosen.get("nonzero"),
        "selected_compression": chosen.get("compression"),
        "selected_test_drop_pp": chosen.get("test_drop_pp"),
    }


def refined_columns(summary: dict) -> dict:
    """The smallest fine-tuned head within 1 point (``summary["refined"]``) as table columns."""
    best = (summary.get("refined") or {}).get("best_within_1pp")
    test = best["refined_test_accuracy"] if best else None
    return {
        "refined_nonzero_within_1pp": best["nonzero"] if best else None,
        "refined_test_accuracy": test,
        "refined_test_drop_pp": 100 * (summary["baseline"]["test_accuracy"] - test) if best else None,
    }


def trial_row(config: Config, result, exact: pd.DataFrame | None = None) -> dict:
    """Every column a trial can report (each command keeps its own subset, in this order)."""
    s, base = result.summary, result.summary["baseline"]
    row = {
        "evaluations": len(result.archive),
        "baseline_accuracy": base["accuracy"],
        "baseline_test_accuracy": base["test_accuracy"],
        "baseline_nonzero": base["nonzero"],
        "best_fitness": s["best"]["fitness"],
        "best_accuracy": s["best"]["accuracy"],
        "best_test_accuracy": s["best"]["test_accuracy"],
        "best_nonzero": s["best"]["nonzero"],
        "best_compression": s["best"]["compression"],
        "front_size": len(result.front),
        "search_time_s": s["search_time_s"],
        "worker_pid": os.getpid(),
    }
    row.update(
        front_metrics(config, result.front, exact, base["accuracy"], base["test_accuracy"], base["nonzero"])
    )
    row.update(refined_columns(s))
    row.update(selected_columns(s))
    return row


def generation_rows(config: Config, result) -> list[dict]:
    """Hypervolume and best fitness of everything evaluated up to each generation."""
    base, archive = result.summary["baseline"], result.archive
    rows = []
    for gen, evaluations in zip(result.logbook["gen"], result.logbook["evaluations"]):
        seen = archive.iloc[: min(int(evaluations), len(archive))]
        front = pareto_front(seen)
        rows.append(
            {
                "gen": int(gen),
                "evaluations": len(seen),
                "hypervolume": hypervolume(
                    front["accuracy"],
                    front["nonzero"],
                    base["nonzero"],
                    config.metrics.ref_accuracy,
                    config.metrics.ref_nonzero or base["nonzero"],
                ),
                "best_fitness": float(seen["fitness"].max()),
            }
        )
    return rows


_PREPARED: dict[str, object] = {}  # this process's last data and model: serial trials load them once


def prepared_for(config: Config, status: Callable[[str], None] = lambda msg: None, fresh: bool = False):
    """:func:`~evoprune.experiments.assemble.prepare` for a trial, reusing this process's last data and model.

    ``fresh`` forgets the process's last one first (each command starts fresh; a long-lived
    worker reloads a ``model_file`` that changed on disk).
    """
    if fresh:
        _PREPARED.clear()
    d, file = config.to_dict(), Path(config.model.model_file or "")
    stamp = file.stat().st_mtime_ns if config.model.model_file and file.is_file() else None
    key = json.dumps(
        [d["data"], d["model"], stamp, config.search.seed, config.search.layers], sort_keys=True, default=str
    )
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(config, status)
    return _PREPARED[key]


def spec(key: str, config: Config, labels: dict, columns: Iterable[str], **extra) -> dict:
    """A trial spec (a plain dict): its key, config, leading row ``labels`` and reported ``columns``.

    ``extra``: ``exact`` (the reference front's records, for IGD) and ``tables=True``
    (return the front and the generation rows too).
    """
    return {"key": key, "config": config.to_dict(), "labels": labels, "columns": list(columns), **extra}


def run_trial(spec: dict) -> dict:
    """Runs one trial in any process (this one, spawned or a Dask worker).

    Returns ``{"row", "front", "generations", "curve"}`` (the last three when there are any).
    """

    import_tensorflow_quietly()
    config = from_dict(spec["config"])
    result = run_method(config, prepared_for(config))
    exact = pd.DataFrame(spec["exact"]) if spec.get("exact") is not None else None
    full = trial_row(config, result, exact)
    out: dict[str, Any] = {"row": {**spec["labels"], **{c: full[c] for c in spec["columns"]}}}
    if result.curve is not None:  # a matched-compression curve, one row per level
        out["curve"] = [{**spec["labels"], **c} for c in result.curve.to_dict("records")]
    if spec.get("tables"):
        out["front"] = result.front.to_dict("records")
        out["generations"] = [{**spec["labels"], **g} for g in generation_rows(config, result)]
    return out


def run_method(config: Config, prepared) -> RunResult:
    """Runs the config's method (a module-level name, so tests can count trials)."""
    return methods.run(config, prepared)


def run(
    specs: list[dict],
    store: TrialStore,
    executor: str,
    workers: int,
    scheduler: str | None = None,
    on_result: Callable[[dict, dict], None] | None = None,
) -> None:
    """Runs the specs whose key is not in ``store`` on the executor (``executors.run_tasks``).

    Each result goes to ``on_result(spec, result)``, by default straight into ``store``.
    """

    add = on_result or (
        lambda s, r: store.add(r["row"], r.get("front"), r.get("generations"), r.get("curve"))
    )
    run_tasks(
        TASK,
        specs,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        done_keys=store.done,
        on_result=add,
    )


def _integers(table: pd.DataFrame) -> pd.DataFrame:
    """Count columns as nullable integers (no ``1501.0`` in the CSVs)."""
    return table.astype({c: "Int64" for c in INT_COLUMNS if c in table})


class TrialStore:
    """The tables of a trials directory, resumed from ``out``: ``trials.csv`` is the commit point.

    Args:
        out: the directory.
        key: ``row -> key`` of a ``trials.csv`` row (the spec's key).
        tables: ``("fronts", "generations", "curves")``: the trials' fronts, generations and
            matched-compression curves kept too
            (their rows carry the row's ``labels``).
        labels: the columns that name a trial in every table (an empty table's header).
        progress: ``(label, done, total)`` after each trial saved.
        total: trials in all (for ``progress``).
    """

    def __init__(
        self,
        out: Path,
        key: Callable[[dict], str],
        tables: tuple[str, ...] = (),
        labels: tuple[str, ...] = (),
        progress: Progress = lambda *a: None,
        total: int = 0,
    ) -> None:
        self.out, self.key, self.names, self.labels = Path(out), key, tables, labels
        self.progress, self.total = progress, total
        empty = pd.DataFrame(columns=list(labels))
        self.trials, self.tables = empty, {name: empty for name in tables}
        path = self.out / "trials.csv"
        if path.is_file() and path.stat().st_size:
            try:
                self.trials = pd.read_csv(path)
                keys = {key(r) for r in self.trials.to_dict("records")}
                for name in tables:
                    file = self.out / f"{name}.csv"
                    if file.is_file() and file.stat().st_size > 1:
                        table = pd.read_csv(file)
                        kept = [key(r) in keys for r in table.to_dict("records")]
                        self.tables[name] = table[kept].reset_index(drop=True) if len(table) else table
            except (pd.errors.ParserError, KeyError, ValueError) as exc:
                raise EvopruneError(f"Cannot resume: {path} is unreadable ({exc})") from exc
        self.done = {key(r) for r in self.trials.to_dict("records")}

    def add(
        self,
        row: dict,
        front: list | pd.DataFrame | None = None,
        generations: list | None = None,
        curve: list | None = None,
    ) -> None:
        """Adds one finished trial (its front, generations and curve first, then its row) and saves."""
        if "fronts" in self.tables and front is not None:
            named = pd.DataFrame(front).assign(**{c: row[c] for c in self.labels})
            self.tables["fronts"] = pd.concat([self.tables["fronts"], named], ignore_index=True)
        if "curves" in self.tables and curve:
            self.tables["curves"] = pd.concat([self.tables["curves"], pd.DataFrame(curve)], ignore_index=True)
        if "generations" in self.tables and generations is not None:
            self.tables["generations"] = pd.concat(
                [self.tables["generations"], pd.DataFrame(generations)], ignore_index=True
            )
        self.trials = pd.concat([self.trials, pd.DataFrame([row])], ignore_index=True)
        for name in self.names:  # a table no trial has rows for (curves without levels) is not written
            file = self.out / f"{name}.csv"
            if len(self.tables[name]) or file.is_file():
                atomic_write_text(file, _integers(self.tables[name]).to_csv(index=False))
        atomic_write_text(self.out / "trials.csv", _integers(self.trials).to_csv(index=False))
        self.done.add(self.key(row))
        self.progress(self.key(row), len(self.done), self.total)
