"""The frozen result of one run and the run directory it writes (a documented contract)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evoprune.config import Config
from evoprune.errors import EvopruneError

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class RunResult:
    """Everything one search produced.

    Attributes:
        config: the resolved configuration.
        summary: the ``summary.json`` mapping (keys documented in the README).
        logbook: one row per generation.
        population: the final population, one row per individual.
        front: the non-dominated set of everything evaluated (accuracy up, nonzero down).
        archive: every distinct genome evaluated, in order.
        refined: front points fine-tuned with their masks fixed (``finetune.refine``).
    """

    config: Config
    summary: dict[str, Any]
    logbook: pd.DataFrame
    population: pd.DataFrame
    front: pd.DataFrame
    archive: pd.DataFrame = field(repr=False)
    refined: pd.DataFrame | None = None


def _finite(value: Any) -> Any:
    """JSON has no inf/NaN: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``.

    A crash or a full disk leaves either the old file or the new one, never a mixture.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def prepare_out_dir(out: Path) -> Path:
    """Creates ``out`` if needed; a file or unwritable path there is a user error."""
    if out.exists() and not out.is_dir():
        raise EvopruneError(f"Output path exists and is not a directory. Received: --out {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise EvopruneError(f"Cannot write to output directory {out}: {exc.strerror or exc}") from exc
    return out


def write_run_dir(result: RunResult, out: Path, plots: bool = True) -> list[Path]:
    """Writes config.toml, logbook.csv, population.csv, front.csv, pareto.png, summary.json.

    ``summary.json`` is written last, so a directory without it is an unfinished run.
    """
    out = prepare_out_dir(out)
    written = []

    def put(name: str, text: str) -> None:
        atomic_write_text(out / name, text)
        written.append(out / name)

    try:
        put("config.toml", result.config.to_toml())
        put("logbook.csv", result.logbook.to_csv(index=False))
        put("population.csv", result.population.to_csv(index=False))
        put("front.csv", result.front.to_csv(index=False))
        if result.refined is not None:
            put("refined.csv", result.refined.to_csv(index=False))
        if plots:
            from evoprune.reporting.plots import pareto_figure, save_figure

            save_figure(pareto_figure(result.front, title=_plot_title(result.summary)), out / "pareto.png")
            written.append(out / "pareto.png")
        put("summary.json", json.dumps(_finite(result.summary), indent=2) + "\n")
    except OSError as exc:
        raise EvopruneError(f"Cannot write results to {out}: {exc.strerror or exc}") from exc
    return written


def _plot_title(summary: dict[str, Any]) -> str:
    return f"{summary['algorithm']} on {summary['dataset']}, seed {summary['seed']}"


def read_summary(run_dir: Path) -> dict[str, Any]:
    """Reads and checks a finished run's ``summary.json`` (plain JSON, nothing executable).

    Raises:
        EvopruneError: missing, not JSON, or without the keys and kinds the readers use.
    """
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise EvopruneError(f"Not a finished run directory (no summary.json). Received: {run_dir}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvopruneError(f"summary.json is not JSON: {path} ({exc.__class__.__name__})") from exc
    baseline = summary.get("baseline") if isinstance(summary, dict) else None
    accuracy = baseline.get("accuracy") if isinstance(baseline, dict) else None
    if (
        not isinstance(accuracy, (int, float))
        or isinstance(accuracy, bool)
        or not 0 <= accuracy <= 1
        or not isinstance(summary.get("dataset_checksum"), str)
    ):
        raise EvopruneError(
            f"summary.json is damaged or not an evoprune summary: expected "
            f"baseline.accuracy in 0..1 and dataset_checksum. Received: {path}"
        )
    return summary


def describe(summary: dict[str, Any], fitness_split: str, out: Path) -> list[str]:
    """Lines a finished run prints: its best point, its selected model, evaluations, time and ``out``."""
    best, base = summary["best"], summary["baseline"]
    genome = (
        f"threshold {best['threshold']:.4g}"
        if "threshold" in best
        else f"genome {str(best.get('genome', ''))[:40]}"
    )
    chosen, tolerance = summary.get("selected"), summary["select"]["tolerance_pp"]
    return [
        f"best: {genome}, nonzero {best['nonzero']}/{base['nonzero']} ({best['compression']:.2f}x), "
        f"accuracy {best['accuracy']:.4f} (baseline {base['accuracy']:.4f}), test "
        f"{best['test_accuracy']:.4f}, fitness {best['fitness']:.4f}",
        f"selected (smallest within {tolerance:g} points on {fitness_split}): "
        + (
            f"nonzero {chosen['nonzero']} ({chosen['compression']:.2f}x), accuracy {chosen['accuracy']:.4f}, "
            f"test {chosen['test_accuracy']:.4f} (drop {chosen['test_drop_pp']:.2f} points)"
            if chosen
            else "none"
        ),
        f"{summary['evaluations']} evaluations, search {summary['search_time_s']:.2f} s; results in {out}",
    ]


def native(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (anything else unchanged)."""
    return value.item() if hasattr(value, "item") else value
