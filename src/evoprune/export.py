"""Export a run's pruned (and fine-tuned) model as a Keras file, with its sizes."""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evoprune.errors import EvopruneError


@dataclass(frozen=True)
class ExportReport:
    """What was exported and how big it is."""

    path: Path
    eval_index: int
    nonzero: int
    base_nonzero: int
    refined: bool
    gzip_bytes: int
    base_gzip_bytes: int


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip (level 9): a proxy for the size a sparse model ships at."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def _genomes(run_dir: Path) -> list:
    from evoprune.algorithms import individual_class

    individual_class(1), individual_class(2)
    try:
        with (run_dir / "checkpoint.pkl").open("rb") as handle:
            return list(pickle.load(handle)["problem"]["by_genome"])
    except (OSError, pickle.UnpicklingError, KeyError, EOFError) as exc:
        raise EvopruneError(f"Cannot read the run's genomes from {run_dir / 'checkpoint.pkl'} "
                            f"({exc.__class__.__name__})") from exc


def choose(run_dir: Path, rank: int, summary: dict) -> tuple[pd.Series, bool]:
    """The front point of the given rank (0 = the run's ``selected`` model, else the best).

    Rank 0 is ``summary["selected"]`` when the run selected one. Otherwise refined runs rank the fine-tuned heads within 1 point of baseline (fitness split)
    smallest first, then the others by accuracy; other runs rank by scalar fitness.
    """
    refined = run_dir / "refined.csv"
    table = pd.read_csv(refined if refined.is_file() else run_dir / "front.csv")
    if refined.is_file():
        base = summary["baseline"]["accuracy"]
        table["_ok"] = table["refined_accuracy"] >= base - 0.01 - 1e-12
        table["_size"] = table["nonzero"].where(table["_ok"], 0)
        table = table.sort_values(["_ok", "_size", "refined_accuracy"], ascending=[False, True, False])
    else:
        table = table.sort_values("fitness", ascending=False, kind="stable")
    selected = summary.get("selected")
    if rank == 0 and selected is not None:
        index = "eval_index"
        table = pd.concat([table[table[index] == selected[index]], table[table[index] != selected[index]]])
    if not 0 <= rank < len(table):
        raise EvopruneError(f"Expected --rank in 0..{len(table) - 1}. Received: --rank {rank}")
    return table.iloc[rank], refined.is_file()


def export_model(run_dir: Path, out: Path, rank: int = 0) -> ExportReport:
    """Writes the chosen front point's model to ``out`` (a ``.keras`` file).

    Raises:
        EvopruneError: not a finished run directory, bad rank, or an output path that is
            not a ``.keras`` file.
    """
    from evoprune.config import load_config
    from evoprune.experiments import make_finetuner, make_model_finetuner, make_problem, prepare
    from evoprune.model import compile_model, save_model
    from evoprune.results import read_summary

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)  # refuses an unfinished run
    if out.suffix != ".keras":
        raise EvopruneError(f"Expected an output file ending in .keras. Received: --out {out}")
    config = load_config(run_dir / "config.toml")
    if config.search.algorithm == "magnitude":
        raise EvopruneError(f"Export of a magnitude-baseline run is not supported (it keeps no genomes). "
                            f"Received: {run_dir}")
    row, refined = choose(run_dir, rank, summary)
    genome = _genomes(run_dir)[int(row["eval_index"])]
    prepared = prepare(config)
    problem = make_problem(config.with_overrides({"finetune.refine": "none"}), prepared)
    model = prepared.trained.model
    base_path = out.with_name(f".{out.stem}.unpruned.keras")
    compile_model(model)  # a fresh optimizer: no training state in either file
    save_model(model, base_path)
    masks = problem.encoding.decode([genome])
    for index, kernel, mask in zip(problem.evaluator.layer_indices, problem.evaluator.kernels, masks):
        model.layers[index].kernel.assign(np.where(mask[0], kernel, np.float32(0)))
    if refined and config.finetune.scope == "model":
        model.set_weights(make_model_finetuner(config, prepared, problem).tuned_weights([m[0] for m in masks]))
    elif refined:
        kernel, bias = make_finetuner(config, prepared, problem.evaluator.target).tune(masks[-1][0])
        model.layers[problem.evaluator.layer_index].set_weights([kernel, bias])
    out.parent.mkdir(parents=True, exist_ok=True)
    compile_model(model)
    save_model(model, out)
    nonzero = int(sum(np.count_nonzero(model.layers[i].kernel.numpy())
                      for i in problem.evaluator.layer_indices))
    report = ExportReport(out, int(row["eval_index"]), nonzero, problem.base_nonzero, refined,
                          gzip_size(out), gzip_size(base_path))
    base_path.unlink(missing_ok=True)
    return report
