"""Export a run's pruned (and fine-tuned) model as a .keras or sparse .tflite file, with a sidecar."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from evoprune.errors import EvopruneError
from evoprune.experiments.trials import accuracy_bar

FORMATS = {"keras": ".keras", "tflite": ".tflite"}
SIDECAR_KEYS = (
    "nonzero",
    "compression",
    "stored_parameters",
    "bytes",
    "gzip_bytes",
    "unpruned_bytes",
    "unpruned_gzip_bytes",
    "test_accuracy",
    "run_test_accuracy",
    "latency_ms",
    "unpruned_latency_ms",
)


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


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip (level 9): a proxy for the size a sparse model ships at."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def _genomes(run_dir: Path, config) -> tuple[list, dict]:
    """The run's evaluated genomes and its identity, from the data-only checkpoint."""
    from evoprune.search import checkpoint

    payload = checkpoint.load(run_dir / checkpoint.CHECKPOINT, config)
    return checkpoint.archive_genomes(payload), payload["meta"]


def _read_table(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A run's CSV with the columns export uses, of the right kinds (``i`` int, ``f`` number)."""
    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise EvopruneError(f"Run file is not a readable CSV: {path} ({exc.__class__.__name__})") from exc
    for name, kind in columns.items():
        if name not in table or table[name].dtype.kind not in ("i" if kind == "i" else "if"):
            raise EvopruneError(f"Run file is damaged: expected a numeric column {name!r} in {path}")
        if not np.isfinite(table[name].to_numpy(dtype=float)).all():
            raise EvopruneError(f"Run file is damaged: non-finite {name!r} in {path}")
    return table


def choose(run_dir: Path, rank: int, summary: dict) -> tuple[pd.Series, bool]:
    """The front point of the given rank (0 = best).

    Refined runs rank the fine-tuned heads within ``select.tolerance_pp`` of baseline (fitness split)
    smallest first, then the others by accuracy; other runs rank by scalar fitness.
    (Without ``--rank``, export takes the run's ``selected`` point: see :func:`_pick`.)
    """
    refined = run_dir / "refined.csv"
    columns = {
        "eval_index": "i",
        "nonzero": "i",
        **({"refined_accuracy": "f"} if refined.is_file() else {"fitness": "f"}),
    }
    table = _read_table(refined if refined.is_file() else run_dir / "front.csv", columns)
    if refined.is_file():
        base = summary["baseline"]["accuracy"]
        tolerance = float((summary.get("select") or {}).get("tolerance_pp", 1.0))  # the run's own
        table["_ok"] = table["refined_accuracy"] >= accuracy_bar(base, tolerance)
        table["_size"] = table["nonzero"].where(table["_ok"], 0)
        table = table.sort_values(["_ok", "_size", "refined_accuracy"], ascending=[False, True, False])
    else:
        table = table.sort_values("fitness", ascending=False, kind="stable")
    if not 0 <= rank < len(table):
        raise EvopruneError(f"Expected --rank in 0..{len(table) - 1}. Received: --rank {rank}")
    return table.iloc[rank], refined.is_file()


def sidecar_path(out: Path) -> Path:
    """``FILE.json`` beside the exported ``FILE``."""
    return out.with_name(out.name + ".json")


def check_output(out: Path, fmt: Optional[str]) -> str:
    """The export format (from ``fmt`` or the suffix); fails early on a bad or unwritable path.

    Raises:
        EvopruneError: an unknown format, a suffix that does not match it, or an output
            path that cannot be written.
    """
    if fmt is None:
        fmt = "tflite" if out.suffix == ".tflite" else "keras"
    if fmt not in FORMATS:
        raise EvopruneError(f"Expected --format keras or tflite. Received: --format {fmt}")
    if out.suffix != FORMATS[fmt]:
        raise EvopruneError(
            f"Expected an output file ending in {FORMATS[fmt]} for --format {fmt}. Received: --out {out}"
        )
    if out.is_dir():
        raise EvopruneError(f"Expected an output file, not a directory. Received: --out {out}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EvopruneError(
            f"Cannot write the output file ({exc.strerror or exc}). Received: --out {out}"
        ) from exc
    return fmt


def _pick(run_dir: Path, rank: Optional[int], summary: dict) -> tuple[int, bool, Optional[float], str]:
    """eval_index, refined, the run's test accuracy for it and where the choice came from."""
    selected = summary.get("selected") or {}
    if rank is None and selected.get("eval_index") is not None:
        index = int(selected["eval_index"])
        if index not in set(_read_table(run_dir / "front.csv", {"eval_index": "i"})["eval_index"]):
            raise EvopruneError(
                f"Run file is damaged: the selected point {index} is not on the front "
                f"in {run_dir / 'front.csv'}"
            )
        refined_csv = run_dir / "refined.csv"
        refined = refined_csv.is_file() and index in set(pd.read_csv(refined_csv)["eval_index"])
        return index, refined, selected.get("test_accuracy"), "selected"
    row, refined = choose(run_dir, 0 if rank is None else rank, summary)
    test = row["refined_test_accuracy"] if refined else row["test_accuracy"]
    return int(row["eval_index"]), refined, float(test), f"rank {0 if rank is None else rank}"


def compile_for_export(model) -> None:
    """Compiles as :func:`evoprune.models.training.compile_model` does (a loss that fits the output
    activation), at Adam's default rate, with the optimizer built: the saved file then
    loads without Keras' optimizer-mismatch warning.
    """
    from evoprune.models.training import compile_model

    compile_model(model, learning_rate=0.001)
    model.optimizer.build(model.trainable_variables)


def write_artifact(model, out: Path, fmt: str) -> None:
    """Writes ``model`` as ``.keras`` (compiled for export) or sparse float32 ``.tflite``."""
    from evoprune.models.deploy import to_tflite
    from evoprune.models.training import save_model
    from evoprune.reporting.results import atomic_write_bytes

    if fmt == "tflite":
        atomic_write_bytes(out, to_tflite(model))
    else:
        compile_for_export(model)
        save_model(model, out)


def _pruned_model(config, prepared, problem, genome, tune: bool):
    """The run's model with the genome's masks (and fine-tuning); masks by layer name."""
    import keras

    from evoprune.experiments.run import make_finetuner, make_model_finetuner

    model = prepared.trained.model
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    decoded = [m[0] for m in problem.encoding.decode([genome])]
    target = problem.evaluator.target
    # whole-model fine-tuning starts from (and distils from) the unpruned model, as in the run
    tuned = (
        make_model_finetuner(config, prepared, problem).tuned_weights(decoded)
        if tune and config.finetune.scope == "model"
        else None
    )
    masks = {}
    for layer, mask in zip(target.layers, decoded):
        model.layers[layer.index].kernel.assign(np.where(mask, layer.kernel, np.float32(0)))
        masks[layer.name] = np.asarray(mask, dtype=bool)
    if tuned is not None:
        model.set_weights(tuned)
    elif tune:
        kernel, bias = make_finetuner(config, prepared, target).tune(decoded[-1])
        head = model.layers[target.indices[-1]]
        head.set_weights([kernel, bias] if head.use_bias else [kernel])
    return model, base, masks


def _nonzero(model, names) -> int:
    return int(sum(np.count_nonzero(model.get_layer(name).kernel.numpy()) for name in names))


def _measure(model, out: Path, fmt: str, test_image: np.ndarray, repeats: int) -> dict[str, Any]:
    from evoprune.models.deploy import latency_ms

    write_artifact(model, out, fmt)
    return {
        "bytes": out.stat().st_size,
        "gzip_bytes": gzip_size(out),
        "latency_ms": latency_ms(out, test_image, repeats),
    }


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
    from evoprune.config import load_config
    from evoprune.experiments.run import make_problem, prepare
    from evoprune.experiments.rundir import identity
    from evoprune.models.deploy import file_accuracy
    from evoprune.models.shrink import shrink_model
    from evoprune.reporting.results import atomic_write_text, read_summary
    from evoprune.search import checkpoint

    run_dir, out = Path(run_dir), Path(out)
    summary = read_summary(run_dir)  # refuses an unfinished run
    fmt = check_output(out, fmt)
    config = load_config(run_dir / "config.toml")
    if config.search.algorithm == "magnitude":
        raise EvopruneError(
            f"Export of a magnitude-baseline run is not supported (it keeps no genomes). Received: {run_dir}"
        )
    genomes, meta = _genomes(run_dir, config)
    eval_index, refined, run_test, source = _pick(run_dir, rank, summary)
    if not 0 <= eval_index < len(genomes):
        raise EvopruneError(
            f"Run file is damaged: eval_index {eval_index} is not one "
            f"of the checkpoint's {len(genomes)} genomes in {run_dir}"
        )
    genome = genomes[eval_index]
    prepared = prepare(config)
    current = identity(prepared)
    checkpoint.check_identity(meta, current, run_dir)
    checkpoint.check_identity({"identity": summary}, current, run_dir)
    problem = make_problem(config.with_overrides({"finetune.refine": "none"}), prepared)
    model, base, masks = _pruned_model(
        config, prepared, problem, genome, refined or config.finetune.refine == "each"
    )
    if shrink:
        model, base = shrink_model(model, masks), shrink_model(base)
    test = prepared.dataset.test
    image = test[0][0]
    base_path = out.with_name(f".{out.stem}.unpruned{out.suffix}")
    try:
        unpruned = _measure(base, base_path, fmt, image, latency_repeats)
    finally:
        base_path.unlink(missing_ok=True)
    pruned = _measure(model, out, fmt, image, latency_repeats)
    nonzero = _nonzero(model, masks)
    sidecar = {
        "nonzero": nonzero,
        "compression": problem.base_nonzero / nonzero if nonzero else None,
        "stored_parameters": int(model.count_params()),
        "bytes": pruned["bytes"],
        "gzip_bytes": pruned["gzip_bytes"],
        "unpruned_bytes": unpruned["bytes"],
        "unpruned_gzip_bytes": unpruned["gzip_bytes"],
        "test_accuracy": file_accuracy(out, test),
        "run_test_accuracy": None if run_test is None else float(run_test),
        "latency_ms": pruned["latency_ms"],
        "unpruned_latency_ms": unpruned["latency_ms"],
    }
    atomic_write_text(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")
    return ExportReport(
        out, sidecar_path(out), eval_index, problem.base_nonzero, refined, source, fmt, shrink, sidecar
    )
