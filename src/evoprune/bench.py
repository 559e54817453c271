"""``evoprune bench``: genome x algorithm x operator variant x seeds, equal budgets, local or Dask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd

from evoprune.config import Config, from_dict
from evoprune.magnitude import MAGNITUDE
from evoprune.errors import ConfigError
from evoprune.results import atomic_write_text

PAPER = "threshold/paper/average+random_reset"
PEER = "pymoo-nsga2"
METRICS = {"hypervolume": True, "best_fitness": True, "best_test_accuracy": True,
           "nonzero_within_1pp": False, "selected_1pp_test_drop_pp": False,
           "test_nonzero_within_1pp": False, "refined_nonzero_within_1pp": False,
           "refined_test_drop_pp": False, "selected_compression": True, "selected_test_drop_pp": False}
MAGNITUDE_CELL = f"-/{MAGNITUDE}/-"  # the magnitude baseline has no genome and no operators


def trial_config(config: Config, encoding: str, algorithm: str, variant: str, seed: int) -> Config:
    """The run config of one grid cell and seed."""
    crossover, mutation = variant.split("+")
    return config.with_overrides({"search.encoding": encoding, "search.algorithm": algorithm,
                                  "search.crossover": crossover, "search.mutation": mutation,
                                  "search.seed": seed})


def grid(config: Config, lengths: dict[str, int]) -> tuple[list[dict], list[str]]:
    """Trial specs (plain dicts) for the grid, and the cells skipped as invalid pairings.

    Args:
        lengths: genome length of each encoding on this model (two_point needs >= 2).
    """
    from evoprune.encodings import ENCODINGS
    from evoprune.operators import check_pairing

    specs, skipped = [], []
    b = config.bench
    for encoding in b.encodings:
        for variant in b.variants:
            crossover, mutation = variant.split("+")
            try:
                check_pairing(ENCODINGS[encoding].kind, lengths[encoding], crossover, mutation,
                              encoding=encoding)
            except ConfigError as exc:
                skipped.append(f"{encoding} with {variant}: {exc}")
                continue
            for algorithm in (a for a in b.algorithms if a != MAGNITUDE):
                cell = f"{encoding}/{algorithm}/{variant}"
                for seed in range(b.seeds):
                    cfg = trial_config(config, encoding, algorithm, variant, seed)
                    specs.append({"key": f"{cell}/seed{seed}", "cell": cell, "config": cfg.to_dict()})
        if b.pymoo:
            for seed in range(b.seeds):
                cfg = config.with_overrides({"search.encoding": encoding, "search.seed": seed,
                                             "search.algorithm": "nsga2"})
                cell = f"{encoding}/{PEER}/default"
                specs.append({"key": f"{cell}/seed{seed}", "cell": cell, "config": cfg.to_dict(),
                              "peer": "pymoo"})
    if MAGNITUDE in b.algorithms:
        for seed in range(b.seeds):
            cfg = config.with_overrides({"search.algorithm": MAGNITUDE, "search.seed": seed})
            specs.append({"key": f"{MAGNITUDE_CELL}/seed{seed}", "cell": MAGNITUDE_CELL,
                          "config": cfg.to_dict()})
    if not specs:
        raise ConfigError("No valid grid cell: every operator variant mismatches every encoding. "
                          f"Received: bench.variants={list(b.variants)}")
    return specs, skipped


def run_trial(spec: dict) -> dict:
    """Runs one trial in any process (spawned or a Dask worker) and returns a plain dict row."""
    from evoprune.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    from evoprune.compare import front_metrics, selected_columns
    from evoprune.experiments import prepare, run_search
    from evoprune.peer import run_pymoo

    config = from_dict(spec["config"])
    prepared = prepare(config)
    result = run_pymoo(config, prepared) if spec.get("peer") == "pymoo" else run_search(
        config, prepared=prepared)
    s, base = result.summary, result.summary["baseline"]
    encoding, algorithm, variant = spec["cell"].split("/")
    row = {"key": spec["key"], "cell": spec["cell"], "encoding": encoding, "algorithm": algorithm,
           "variant": variant, "seed": config.search.seed, "evaluations": len(result.archive),
           "baseline_accuracy": base["accuracy"], "baseline_test_accuracy": base["test_accuracy"],
           "best_fitness": s["best"]["fitness"], "best_test_accuracy": s["best"]["test_accuracy"],
           "best_nonzero": s["best"]["nonzero"], "search_time_s": s["search_time_s"],
           "worker_pid": os.getpid()}
    row.update(front_metrics(config, result.front, None, base["accuracy"], base["test_accuracy"],
                             base["nonzero"]))
    best = (s.get("refined") or {}).get("best_within_1pp")
    row["refined_nonzero_within_1pp"] = best["nonzero"] if best else None
    row["refined_test_accuracy"] = best["refined_test_accuracy"] if best else None
    row["refined_test_drop_pp"] = (100 * (base["test_accuracy"] - best["refined_test_accuracy"])
                                   if best else None)
    row.update(selected_columns(s))
    return row


def pretrain(config: Config, status: Callable[[str], None]) -> dict[str, int]:
    """Trains (or loads) each seed's model once, before workers start; returns genome lengths."""
    from evoprune.experiments import make_problem, prepare

    lengths = {}
    for seed in range(config.bench.seeds):
        prepared = prepare(config.with_overrides({"search.seed": seed}), status)
        if seed == 0:
            for encoding in config.bench.encodings:
                cfg = config.with_overrides({"search.encoding": encoding, "finetune.refine": "none"})
                lengths[encoding] = make_problem(cfg, prepared).encoding.length
    return lengths


def bench(config: Config, out: Path, executor: str | None = None, workers: int | None = None,
          scheduler: str | None = None, progress: Callable[[str, int, int], None] = lambda *a: None,
          status: Callable[[str], None] = lambda msg: None) -> pd.DataFrame:
    """Runs the grid; each finished trial is appended to ``out/trials.csv`` at once.

    A rerun skips the trials already recorded there.
    """
    from evoprune.executors import run_tasks

    lengths = pretrain(config, status)
    specs, skipped = grid(config, lengths)
    atomic_write_text(out / "skipped.txt", "".join(f"{line}\n" for line in skipped))
    path = out / "trials.csv"
    trials = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
    done = set(trials["key"]) if len(trials) else set()
    rows = trials.to_dict("records")

    def on_result(spec: dict, row: dict) -> None:
        rows.append(row)
        atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
        progress(spec["key"], len(rows), len(specs))

    progress("", len(done), len(specs))
    run_tasks("evoprune.bench:run_trial", specs, executor=executor or config.bench.executor,
              workers=workers or config.bench.workers, scheduler=scheduler, done_keys=done,
              on_result=on_result)
    return pd.DataFrame(rows)


def ranking(trials: pd.DataFrame) -> pd.DataFrame:
    """Cells ranked by median hypervolume, with A12 and Holm-adjusted p against the paper's cell."""
    from evoprune.stats import a12, holm, mann_whitney_p

    paper = trials.loc[trials["cell"] == PAPER, "hypervolume"]
    rows = []
    for cell, frame in trials.groupby("cell", sort=False):
        hv = frame["hypervolume"]
        row = {"cell": cell, "seeds": len(frame), "hv_median": hv.median(),
               "hv_q1": hv.quantile(0.25), "hv_q3": hv.quantile(0.75),
               "a12_vs_paper": a12(hv, paper) if len(paper) else float("nan"),
               "p_vs_paper": mann_whitney_p(hv, paper) if len(paper) and cell != PAPER else float("nan")}
        for metric in METRICS:
            if metric != "hypervolume":
                row[metric] = pd.to_numeric(frame[metric], errors="coerce").median()
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("hv_median", ascending=False, kind="stable")
    table["p_holm"] = holm(table["p_vs_paper"].tolist())
    return table.reset_index(drop=True)


def write_outputs(config: Config, trials: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Writes ranking.csv, report.md and hypervolume.png for a bench directory."""
    from evoprune.plots import bench_figure, save_figure
    from evoprune.report import bench_report

    table = ranking(trials)
    atomic_write_text(out / "ranking.csv", table.to_csv(index=False))
    skipped = (out / "skipped.txt").read_text().splitlines() if (out / "skipped.txt").is_file() else []
    context = {"dataset": config.data.source,
               "evaluation budget per trial": config.search.max_evaluations or "all generations",
               "population": config.search.population, "seeds": trials["seed"].nunique(),
               "fine-tuning": config.finetune.refine,
               "baseline test accuracy (median)": f"{trials['baseline_test_accuracy'].median():.4f}"}
    atomic_write_text(out / "report.md", bench_report(table, context, skipped, PAPER))
    save_figure(bench_figure(trials, list(table["cell"])), out / "hypervolume.png")
    return table
