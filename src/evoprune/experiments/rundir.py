"""The run directory: its file names and formats, read and written here only, and its lifecycle.

A run directory holds (``docs/run-directory.md`` documents every key):

==================  ===========================================================
``config.toml``     the resolved config (written when the run starts)
``checkpoint.npz``  the search's state after a generation (data only)
``retrain.npz``     each retraining as it finishes (fine-tuned points, magnitude
                    rounds; data only): what ``--resume`` replays; removed when the
                    run finishes (its weights are in ``weights.npz`` then)
``logbook.csv``     one row per generation (or round)
``population.csv``  the final population
``front.csv``       the non-dominated points of everything evaluated
``refined.csv``     fine-tuned front points (when the run fine-tunes)
``curve.csv``       one model per ``select.compressions`` level
``weights.npz``     every weight of the points the run retrained (data only)
``model.keras``     the model pruned, when it came from memory (``evoprune.prune``)
``data.npz``        the data, when it came from memory
``front.png``       the front, drawn: accuracy drop against kept weights
``summary.json``    written last: a directory without it holds an unfinished run
==================  ===========================================================

Nothing here executes code when read: JSON, CSV, TOML and ``.npz`` files loaded without
pickles, and a ``.keras`` file loaded in Keras' safe mode.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from evoprune.config import Config
from evoprune.data.dataset import source_dir
from evoprune.errors import EvopruneError
from evoprune.experiments import configure, methods
from evoprune.experiments.result import RunResult, finite
from evoprune.io import atomic_write_bytes, atomic_write_text, check_out_path, exclusive_lock, prepare_out_dir
from evoprune.models.training import save_model
from evoprune.reporting.plots import front_figure, run_title, save_figure
from evoprune.search import checkpoint
from evoprune.search.checkpoint import config_difference

CONFIG = "config.toml"
SUMMARY = "summary.json"
LOCK = ".evoprune.lock"
CHECKPOINT = "checkpoint.npz"
OLD_CHECKPOINT = "checkpoint.pkl"  # an old pickle checkpoint: refused, never loaded
RETRAIN = "retrain.npz"  # the log of finished retrainings (refine.retrain_log), while unfinished
LOGBOOK = "logbook.csv"
POPULATION = "population.csv"
FRONT = "front.csv"
REFINED = "refined.csv"
CURVE = "curve.csv"
WEIGHTS = "weights.npz"
MODEL = "model.keras"
DATA = "data.npz"
FIGURE = "front.png"
TRIALS = "trials.csv"  # compare and bench directories


class RunDir:
    """One run directory: where each file is, how it is written and read.

    Args:
        path: the directory (it need not exist yet).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of one of the run's files (one of this module's names)."""
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        """The search checkpoint."""
        return self.path / CHECKPOINT

    @property
    def retrain_log(self) -> Path:
        """The log of finished retrainings (see :class:`~evoprune.refine.retrain_log.RetrainLog`)."""
        return self.path / RETRAIN

    @property
    def finished(self) -> bool:
        """True when the run finished (its ``summary.json`` exists)."""
        return (self.path / SUMMARY).is_file()

    # ------------------------------------------------------------------ writing

    def write(self, result: RunResult, plots: bool = True) -> list[Path]:
        """Writes every file of a finished run, ``summary.json`` last.

        Raises:
            EvopruneError: the directory cannot be written.
        """
        out = prepare_out_dir(self.path)
        written: list[Path] = []

        def put(name: str, data: str | bytes) -> None:
            if isinstance(data, str):
                atomic_write_text(out / name, data)
            else:
                atomic_write_bytes(out / name, data)
            written.append(out / name)

        try:
            put(CONFIG, result.config.to_toml())
            put(LOGBOOK, result.logbook.to_csv(index=False))
            put(POPULATION, result.population.to_csv(index=False))
            put(FRONT, result.front.to_csv(index=False))
            if result.refined is not None:
                put(REFINED, result.refined.to_csv(index=False))
            if result.curve is not None:
                put(CURVE, result.curve.to_csv(index=False))
            if result.weights or result.curve_weights:
                put(WEIGHTS, _weights_bytes(result.weights, result.curve_weights))
            if plots:
                model = result.config.model
                name = Path(model.model_file).name if model.model_file else model.architecture
                name = "model given" if model.model_file == MODEL else name
                title = run_title(result.summary, name)
                save_figure(front_figure(result.front, result.summary, result.refined, title), out / FIGURE)
                written.append(out / FIGURE)
            put(SUMMARY, json.dumps(finite(result.summary), indent=2) + "\n")
        except OSError as exc:
            raise EvopruneError(f"Cannot write results to {out}: {exc.strerror or exc}") from exc
        return written

    def write_inputs(self, model=None, data: dict[str, np.ndarray] | None = None) -> None:
        """Keeps a model and data that came from memory, so the CLI can read the run later."""
        prepare_out_dir(self.path)
        if model is not None:
            save_model(model, self.path / MODEL)
        if data is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **data)  # type: ignore[arg-type]  # numpy's stub: **data may fill allow_pickle
            atomic_write_bytes(self.path / DATA, buffer.getvalue())

    # ------------------------------------------------------------------ reading

    def read_config(self) -> Config:
        """The run's ``config.toml``, as saved (what its checkpoint was written for)."""
        return configure.load_config(self.path / CONFIG)

    def resolved(self, config: Config) -> Config:
        """``config`` with a model and data kept inside the directory pointed at.

        A ``model.model_file`` or ``data.data_file`` that names a file of this directory
        (``model.keras``, ``data.npz``, as :meth:`write_inputs` writes them) is given its
        path here; load a run's data and model from the config this returns.
        """
        overrides = {}
        for key, name in (("model.model_file", MODEL), ("data.data_file", DATA)):
            section, field = key.split(".")
            if getattr(config.section(section), field) == name and (self.path / name).is_file():
                overrides[key] = str(self.path / name)
        return configure.with_overrides(config, overrides) if overrides else config

    def read_summary(self) -> dict[str, Any]:
        """Reads and checks a finished run's ``summary.json`` (plain JSON, nothing executable).

        Raises:
            EvopruneError: missing, not JSON, or without the keys and kinds the readers use.
        """
        path = self.path / SUMMARY
        if not path.is_file():
            raise EvopruneError(f"Not a finished run directory (no summary.json). Received: {self.path}")
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

    def read_table(self, name: str, columns: dict[str, str] | None = None) -> pd.DataFrame:
        """A run's CSV, with the columns a reader uses of the right kinds (``i`` int, ``f`` number).

        Raises:
            EvopruneError: unreadable, or a column missing, of another kind or not finite.
        """
        path = self.path / name
        try:
            table = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise EvopruneError(f"Run file is not a readable CSV: {path} ({exc.__class__.__name__})") from exc
        for column, kind in (columns or {}).items():
            if column not in table or table[column].dtype.kind not in ("i" if kind == "i" else "if"):
                raise EvopruneError(f"Run file is damaged: expected a numeric column {column!r} in {path}")
            if not np.isfinite(table[column].to_numpy(dtype=float)).all():
                raise EvopruneError(f"Run file is damaged: non-finite {column!r} in {path}")
        return table

    def has(self, name: str) -> bool:
        """True when the run has that file."""
        return (self.path / name).is_file()

    def read_weights(self, prefix: str = "p") -> dict[int, list[np.ndarray]]:
        """``eval_index -> every model weight`` of the points the run retrained (none: ``{}``).

        Args:
            prefix: ``p`` (evaluated points, by ``eval_index``) or ``c`` (curve models, by row).

        Raises:
            EvopruneError: a damaged file (it is read without pickles).
        """
        path = self.path / WEIGHTS
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as exc:  # zip, header or dtype problems of a damaged file
            raise EvopruneError(f"Run file is damaged: {path} ({exc.__class__.__name__})") from exc
        weights: dict[int, list[tuple[int, np.ndarray]]] = {}
        for name, array in arrays.items():
            point, _, position = name.partition("_")
            if not (point[:1] in "pc" and point[1:].isdigit() and position.isdigit()):
                raise EvopruneError(f"Run file is damaged: unexpected member {name!r} in {path}")
            if point[0] == prefix:
                weights.setdefault(int(point[1:]), []).append((int(position), array))
        return {point: [a for _, a in sorted(items)] for point, items in weights.items()}

    # ------------------------------------------------------------------ lifecycle

    def check(self, resume: bool, overwrite: bool) -> None:
        """The checks that create nothing, before data and model load: path, finished run, lock."""
        check_out_path(self.path)
        if not resume and not overwrite:
            self.refuse_finished()
        self.check_unlocked()

    def refuse_finished(self) -> None:
        """Refuses a directory that holds a finished run or an interrupted one that can be
        resumed (``--overwrite`` skips this check).

        Raises:
            EvopruneError: it has a ``summary.json``, or a search checkpoint or retraining
                log without one.
        """
        if self.finished:
            raise EvopruneError(
                f"Output directory holds a finished run (summary.json); choose another one or "
                f"replace it (--overwrite; overwrite=True in Python). Received: {self.path}"
            )
        saved = [name for name in (CHECKPOINT, RETRAIN) if (self.path / name).is_file()]
        if saved:
            raise EvopruneError(
                f"Output directory holds an interrupted run ({saved[0]}); continue it (--resume; "
                f"resume=True in Python), choose another one or replace it (--overwrite; "
                f"overwrite=True). Received: {self.path}"
            )

    def discard_run(self) -> None:
        """Removes what says a run finished or can resume here (``summary.json``, the search
        checkpoint, the retraining log), before another run's files replace it."""
        for name in (SUMMARY, CHECKPOINT, RETRAIN):
            (self.path / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the directory's lock; a second run is refused at once.

        Raises:
            EvopruneError: another process holds the lock.
        """
        busy = f"Another evoprune run is writing to this directory (lock {LOCK} held). Received: {self.path}"
        with exclusive_lock(self.path / LOCK, busy):
            yield

    def check_unlocked(self) -> None:
        """Refuses early (before loading anything) when a run holds the directory's lock."""
        if (self.path / LOCK).is_file():
            with self.lock():
                pass

    @contextlib.contextmanager
    def open(self, config: Config, resume: bool, overwrite: bool) -> Iterator[RunDir]:
        """Creates the directory and holds its lock for the run's life.

        A fresh run checks again that no run finished or was interrupted there meanwhile
        (unless ``overwrite``), removes ``summary.json`` (the directory is unfinished from now
        on) and an earlier run's retraining log and checkpoint, and writes ``config.toml``; a
        resumed run keeps them all.

        Raises:
            EvopruneError: unwritable path, a finished or interrupted run, or another run
                holding the lock.
        """
        prepare_out_dir(self.path)
        with self.lock():
            if not resume:
                if not overwrite:
                    self.refuse_finished()
                self.discard_run()  # an earlier run's, never this one's
                atomic_write_text(self.path / CONFIG, config.to_toml())
            yield self

    def finish(self, result: RunResult, wall_time_s: float, prepare_s: float = 0.0) -> None:
        """Records the run's wall time and writes its files, ``summary.json`` last.

        ``times_s`` gets ``prepare`` (loading data and model, before the method ran) and,
        where the model was trained now, ``train`` (``train_time_s``, taken out of
        ``prepare_s``) in front of the method's own phases, and ``other`` (selection,
        bookkeeping) so that its times add up to ``wall_time_s``. The retraining log goes
        once the run is finished: ``weights.npz`` holds what export needs.
        """
        result.summary["wall_time_s"] = wall_time_s
        train = min(float(result.summary.get("train_time_s") or 0.0), prepare_s)
        times = {
            "prepare": prepare_s - train,
            **({"train": train} if train > 0 else {}),
            **(result.summary.get("times_s") or {}),
        }
        times["other"] = max(wall_time_s - sum(times.values()), 0.0)
        result.summary["times_s"] = times
        self.write(result)
        self.retrain_log.unlink(missing_ok=True)


def _weights_bytes(weights: dict[int, list], curve: dict[int, list]) -> bytes:
    """``weights.npz``: member ``p<eval_index>_<position>`` per weight array of a point, and
    ``c<curve row>_<position>`` of a curve model (data only)."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {
        f"{prefix}{int(point)}_{i}": np.asarray(w)
        for prefix, table in (("p", weights), ("c", curve))
        for point, ws in table.items()
        for i, w in enumerate(ws)
    }
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def resolve_environment(config: Config) -> Config:
    """Writes the environment into the config, so the run directory says what it used.

    ``EVOPRUNE_DATA_DIR`` fills ``data.data_dir`` where it supplies the data (the default
    ``mnist``, neither ``data_dir`` nor ``data_file`` given), and a relative ``data.data_dir``,
    ``data.data_file`` or ``model.model_file`` is made absolute against the working
    directory: ``export``, ``evaluate`` or ``--resume`` from another directory then find the
    same files the run read.
    """
    overrides = {
        key: str(Path(value).resolve())
        for key, value in (
            ("data.data_dir", config.data.data_dir),
            ("data.data_file", config.data.data_file),
            ("model.model_file", config.model.model_file),
        )
        if value and not Path(value).is_absolute()
    }
    folder = source_dir(config.data)
    if folder and not config.data.data_dir:  # $EVOPRUNE_DATA_DIR supplies the data
        overrides["data.data_dir"] = str(Path(folder).resolve())
    # only paths change: the method's rules were applied (or, for compare and bench, waived) by the caller
    return configure.with_overrides(config, overrides, check_method=False) if overrides else config


def run_config(
    out: Path | None, resume: Path | None, config_file: Path | str | None, overrides: dict
) -> tuple[Path, Config]:
    """The run directory and its config: fresh for ``out``, or the saved config of ``resume``.

    A resumed run keeps its ``config.toml``; a ``config_file`` given too must resolve to
    the same config, and the checkpoint must load, before anything is trained.

    Raises:
        EvopruneError: neither or two different directories, a finished or foreign
            directory to resume, a config that differs from the saved one, or a bad checkpoint.
    """
    if resume is None:
        if out is None:
            raise EvopruneError("Missing option. Expected --out DIR (or --resume DIR).")
        return Path(out), resolve_environment(configure.load_config(config_file, overrides))
    run = RunDir(resume)
    if out is not None and Path(out).resolve() != run.path.resolve():
        raise EvopruneError(
            f"--out and --resume name different directories. Received: --out {out}, --resume {resume}"
        )
    if run.finished:
        raise EvopruneError(f"Run is already complete (summary.json exists). Received: {resume}")
    if not run.has(CONFIG):
        raise EvopruneError(f"Not a run directory (no config.toml). Received: {resume}")
    config = configure.with_overrides(run.read_config(), overrides)

    given = (
        resolve_environment(configure.load_config(config_file, overrides))
        if config_file is not None
        else config
    )
    if given != config:
        raise EvopruneError(
            f"The config given differs from the run being resumed: "
            f"{checkpoint.config_difference(config.to_dict(), given.to_dict())}"
        )
    if methods.get(config.search.algorithm).checkpoint:  # fail before any training
        checkpoint.load(run.checkpoint, config, legacy=run.file(OLD_CHECKPOINT))
    return run.path, config


def check_resumable(config: Config, out: Path, free: tuple[str, ...] = ("compare",)) -> None:
    """Refuses to mix trials of different settings in one directory (compare, bench).

    The ``free`` sections may change (more seeds or algorithms); nothing else may.

    Raises:
        EvopruneError: ``out`` holds trials of another config.
    """

    saved_path = Path(out) / CONFIG
    if not (Path(out) / TRIALS).is_file() or not saved_path.is_file():
        return
    saved = configure.load_config(saved_path, check_method=False).to_dict()
    current = config.to_dict()
    for section in free:
        saved.pop(section, None)
        current.pop(section, None)
    if saved != current:
        raise EvopruneError(
            f"{out} holds results of other settings ({config_difference(saved, current)}); use another --out"
        )


def open_trials_dir(out: Path, config: Config, free: tuple[str, ...]) -> Path:
    """Creates (or reopens, to resume) a directory of trials and writes its ``config.toml``.

    Raises:
        EvopruneError: unwritable path, or trials of other settings there (see
            :func:`check_resumable`).
    """
    out = prepare_out_dir(Path(out))
    check_resumable(config, out, free)
    atomic_write_text(out / CONFIG, config.to_toml())
    return out
