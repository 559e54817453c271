"""Export a run's pruned (and fine-tuned) model as a .keras or sparse .tflite file, with a sidecar."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from evoprune.config import Config
from evoprune.errors import EvopruneError, ModelError, plural
from evoprune.experiments.assemble import (
    Prepared,
    copy_model,
    identity,
    point_model,
    prepare,
)
from evoprune.experiments.rundir import FRONT, OLD_CHECKPOINT, POPULATION, REFINED, RunDir
from evoprune.io import atomic_write_text
from evoprune.models.deploy import model_accuracy, require_litert
from evoprune.models.export import check_output, measure, nonzero_count, sidecar_path
from evoprune.models.shrink import shrink_model
from evoprune.reporting.metrics import accuracy_bar
from evoprune.search import checkpoint


@dataclass(frozen=True)
class ExportReport:
    """What was exported and how big it is.

    Attributes:
        path: the artifact written; ``sidecar`` holds the keys of ``SIDECAR_KEYS``.
        eval_index: the exported point's position in the run's evaluation order.
        source: ``"selected"`` (summary.json's selected point) or ``"rank K"``.
    """

    path: Path
    sidecar_path: Path
    eval_index: int
    base_nonzero: int
    refined: bool
    source: str
    format: str
    shrunk: bool
    sidecar: dict


def choose(run: RunDir, rank: int, summary: dict) -> tuple[pd.Series, bool]:
    """The front point of the given rank (0 = best).

    Refined runs rank the fine-tuned points within ``select.tolerance_pp`` of baseline
    (fitness split) smallest first, then the others by accuracy; other runs rank by scalar
    fitness. (Without ``--rank``, export takes the run's ``selected`` point: see :func:`pick`.)
    """
    refined = run.has(REFINED)
    columns = {
        "eval_index": "i",
        "nonzero": "i",
        **({"refined_accuracy": "f"} if refined else {"fitness": "f"}),
    }
    table = run.read_table(REFINED if refined else FRONT, columns)
    if refined:
        base = summary["baseline"]["accuracy"]
        tolerance = float((summary.get("select") or {}).get("tolerance_pp", 1.0))  # the run's own
        table["_ok"] = table["refined_accuracy"] >= accuracy_bar(base, tolerance)
        table["_size"] = table["nonzero"].where(table["_ok"], 0)
        table = table.sort_values(["_ok", "_size", "refined_accuracy"], ascending=[False, True, False])
    else:
        table = table.sort_values("fitness", ascending=False, kind="stable")
    if not 0 <= rank < len(table):
        raise EvopruneError(f"Expected a rank in 0..{len(table) - 1}. Received: {rank}")
    return table.iloc[rank], refined


def pick(run: RunDir, rank: Optional[int], summary: dict) -> tuple[int, bool, Optional[float], str]:
    """eval_index, refined, the run's test accuracy for it and where the choice came from."""
    selected = summary.get("selected") or {}
    if rank is None and selected.get("eval_index") is not None:
        index = int(selected["eval_index"])
        known = set(run.read_table(FRONT, {"eval_index": "i"})["eval_index"])
        if run.has(POPULATION):  # a retraining method's models are its population
            known |= set(run.read_table(POPULATION, {"eval_index": "i"})["eval_index"])
        if index not in known:
            raise EvopruneError(
                f"Run file is damaged: the selected point {index} is not on the front in {run.file(FRONT)}"
            )
        refined = run.has(REFINED) and index in set(run.read_table(REFINED)["eval_index"])
        return index, refined, selected.get("test_accuracy"), "selected"
    row, refined = choose(run, 0 if rank is None else rank, summary)
    test = row["refined_test_accuracy"] if refined else row["test_accuracy"]
    return int(row["eval_index"]), refined, float(test), f"rank {0 if rank is None else rank}"


def run_point(run: RunDir, config: Config, prepared: Prepared, eval_index: int, refined: bool):
    """The model of one point of a finished run: its kept weights, else its genome.

    Raises:
        EvopruneError: neither kept weights nor a genome for the point.
    """
    weights = run.read_weights()
    if eval_index in weights:
        return point_model(config, prepared, weights=weights[eval_index])
    payload = checkpoint.load(run.checkpoint, config, legacy=run.file(OLD_CHECKPOINT))
    genomes = checkpoint.archive_genomes(payload)
    checkpoint.check_identity(payload["meta"], identity(prepared), run.path)
    if not 0 <= eval_index < len(genomes):
        raise EvopruneError(
            f"Expected an eval_index of one of the run's {plural(len(genomes), 'evaluated genome')} "
            f"(0 to {len(genomes) - 1}). Received: eval_index {eval_index} in {run.path}"
        )
    tune = refined or config.finetune.refine == "each"
    return point_model(config, prepared, genome=genomes[eval_index], tune=tune)


def export_model(
    run_dir: Path,
    out: Path,
    rank: Optional[int] = None,
    fmt: Optional[str] = None,
    shrink: bool = False,
    latency_repeats: int = 100,
) -> ExportReport:
    """Writes a run's pruned model to ``out`` and its measurements to ``out.json``.

    The point is summary.json's ``selected`` one when the run has it and ``rank`` is None,
    else the front point of ``rank`` (see :func:`choose`). The sidecar's accuracy is
    measured on the written file itself (LiteRT's interpreter for ``.tflite``).

    Args:
        fmt: ``"keras"`` or ``"tflite"``; None takes it from the suffix of ``out``.
        shrink: remove dead units and filters (see :func:`evoprune.models.shrink.shrink_model`).
        latency_repeats: batch-1 calls timed for each latency median.

    Raises:
        EvopruneError: not a finished run directory, bad rank or format, unwritable output.
    """

    run, out = RunDir(run_dir), Path(out)
    summary = run.read_summary()  # refuses an unfinished run
    fmt = check_output(out, fmt)
    if fmt == "tflite":
        require_litert("export --format tflite")  # before the model loads
    config = run.read_config()
    eval_index, refined, run_test, source = pick(run, rank, summary)
    prepared = prepare(run.resolved(config), levels=False)  # a finished run, read back
    checkpoint.check_identity({"identity": summary}, identity(prepared), run.path)
    model, masks = run_point(run, config, prepared, eval_index, refined)
    base = copy_model(prepared.trained.model)
    if shrink:
        try:
            model, base = shrink_model(model, masks), shrink_model(base)
        except ModelError as exc:
            raise ModelError(f"Cannot shrink this model (--shrink; export it without): {exc}") from exc
    test = prepared.dataset.test
    image = test[0][0]
    base_path = out.with_name(f".{out.stem}.unpruned{out.suffix}")
    try:
        unpruned = measure(base, base_path, fmt, image, latency_repeats)
    finally:
        base_path.unlink(missing_ok=True)
    staged = out.with_name(f".{out.stem}.writing{out.suffix}")  # `out` appears only when measured
    try:
        pruned = measure(model, staged, fmt, image, latency_repeats)
        accuracy = model_accuracy(staged, test)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    nonzero = nonzero_count(model, masks)
    base_nonzero = int(summary["baseline"]["nonzero"])
    sidecar = {
        "nonzero": nonzero,
        "compression": base_nonzero / nonzero if nonzero else None,
        "stored_parameters": int(model.count_params()),
        "bytes": pruned["bytes"],
        "gzip_bytes": pruned["gzip_bytes"],
        "unpruned_bytes": unpruned["bytes"],
        "unpruned_gzip_bytes": unpruned["gzip_bytes"],
        "test_accuracy": accuracy,
        "run_test_accuracy": None if run_test is None else float(run_test),
        "latency_ms": pruned["latency_ms"],
        "unpruned_latency_ms": unpruned["latency_ms"],
    }
    atomic_write_text(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")
    return ExportReport(
        out, sidecar_path(out), eval_index, base_nonzero, refined, source, fmt, shrink, sidecar
    )
