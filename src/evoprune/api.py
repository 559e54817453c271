"""evoprune's public API: prune a Keras model in memory, read runs back, export and evaluate.

Everything the command line does goes through these functions::

    import evoprune

    result = evoprune.prune(model, train=(x, y), test=(xt, yt), layers="dense",
                            algorithm="nsga2", population=24, generations=5, seed=0)
    result.front                # one row per front point
    result.selected             # summary.json's "selected" (None when nothing qualifies)
    pruned = result.model()     # the selected point as a keras.Model
    result.save("runs/x")       # a run directory the CLI reads
    again = evoprune.load_run("runs/x")
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from evoprune.config import Config
from evoprune.data.arrays import check_counts, check_images, check_labels
from evoprune.data.dataset import Dataset, as_npz_arrays, from_arrays, load_dataset
from evoprune.errors import ConfigError, EvopruneError, ModelError, compression_text, nearest, step_text
from evoprune.experiments import configure, methods, rundir
from evoprune.experiments.assemble import (
    Prepared,
    check_inputs,
    check_split,
    check_target,
    prepare,
    training_progress,
)
from evoprune.experiments.bench import run_bench
from evoprune.experiments.compare import run_compare
from evoprune.experiments.export import ExportReport, export_model, run_point
from evoprune.experiments.methods import Progress, RunContext
from evoprune.experiments.methods.evolution import checkpoint_every_s
from evoprune.experiments.result import RunResult
from evoprune.experiments.rundir import LOCK, RunDir
from evoprune.io import prepare_out_dir
from evoprune.models.deploy import kind_of, model_accuracy, require_litert
from evoprune.models.export import check_output
from evoprune.models.training import accuracy, adopt_model, import_tensorflow_quietly, load_or_train
from evoprune.search.checkpoint import GracefulInterrupt, config_difference

__all__ = [
    "PruneResult",
    "bench",
    "choices",
    "compare",
    "evaluate",
    "export",
    "load_config",
    "load_data",
    "load_run",
    "model_kind",
    "prune",
    "train",
]

Split = tuple  # (images, labels)


# ---------------------------------------------------------------------------- configuration


def _option_keys(config: Config) -> dict[str, list[str]]:
    """``key -> ["section.key", ...]`` over the core sections and the methods' tables."""
    keys: dict[str, list[str]] = {}
    sections = {name: type(config.section(name)) for name in Config.__dataclass_fields__ if name != "extra"}
    sections.update(methods.sections())
    for section, cls in sections.items():
        for f in fields(cls):
            keys.setdefault(f.name, []).append(f"{section}.{f.name}")
    return keys


def _dotted(config: Config, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword options as ``{"section.key": value}``: ``population=24`` or ``finetune__epochs=3``.

    Raises:
        ConfigError: an unknown option, or one that several sections have (the message
            names the ``section__key`` spellings).
    """
    keys, out = _option_keys(config), {}
    for name, value in options.items():
        if "__" in name:
            section, _, key = name.partition("__")
            out[f"{section}.{key}"] = value
            continue
        if name not in keys:
            near = nearest(name, list(keys))
            hint = f"Did you mean {near!r}? " if near else ""
            raise ConfigError(
                f"Unknown option. Expected a config key such as population, generations, layers or "
                f"section__key (see the configuration reference). {hint}Received: {name}={value!r}"
            )
        if len(keys[name]) > 1:
            spellings = " or ".join(k.replace(".", "__") for k in keys[name])
            raise ConfigError(
                f"Option {name!r} is in several sections. Expected {spellings}. Received: {name}"
            )
        out[keys[name][0]] = value
    layers = out.get("search.layers")
    if isinstance(layers, str) and layers not in configure.registry_names("layers"):
        out["search.layers"] = tuple(n.strip() for n in layers.split(",") if n.strip())  # layer names
    return out


def load_config(
    config: Config | str | Path | None = None,
    overrides: dict | None = None,
    *,
    check_method: bool = True,
    **options,
) -> Config:
    """A complete, checked config: a TOML file (or a :class:`Config`, or the defaults) plus overrides.

    Args:
        config: a TOML file, a :class:`~evoprune.config.Config`, or ``None`` (defaults).
        overrides: ``{"section.key": value}`` (``None`` values are skipped).
        check_method: apply ``search.algorithm``'s own rules (e.g. the paper's population
            of at least 20). Pass ``False`` for a config meant only for :func:`compare` or
            :func:`bench`, which check each algorithm they run instead.
        **options: the same as keywords: a key that one section has (``population=24``,
            ``layers="dense"``) or ``section__key`` (``finetune__epochs=3``).

    Raises:
        ConfigError: one line naming the key and the bad value.
    """
    base = config if isinstance(config, Config) else configure.load_config(config, check_method=check_method)
    merged = {**(overrides or {}), **_dotted(base, options)}
    return configure.with_overrides(base, merged, check_method=check_method)


def choices(registry: str) -> tuple[str, ...]:
    """The names a setting takes: ``algorithm`` (the methods), ``encoding``, ``executor``,
    ``crossover``, ``mutation``, ``architecture`` or ``layers``."""
    return configure.registry_names(registry)


def load_data(
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
    data_file: str | Path | None = None,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
    *,
    config: Config | None = None,
) -> Dataset:
    """Loads a dataset as the CLI does: ``.train``, ``.validation``, ``.test`` as ``(images, labels)``.

    Args:
        dataset: ``mnist-sample`` (bundled) or a tensorflow-datasets name.
        data_dir: IDX files or an image folder (replaces ``dataset``).
        data_file: an ``.npz`` file (replaces ``dataset``).
        validation_fraction: share of train carved out as the validation split; 0 keeps
            all of train (``.validation`` is then empty).
        split_seed: seed of that (stratified, deterministic) split.
        config: take all of these from a config's ``[data]`` instead.

    Raises:
        DataError, ConfigError: one line naming the file or the value.
    """
    if config is not None:
        return load_dataset(rundir.resolve_environment(config).data)
    config = load_config(
        overrides={
            "data.dataset": dataset,
            "data.data_dir": str(data_dir) if data_dir else "",
            "data.data_file": str(data_file) if data_file else "",
            "data.validation_fraction": validation_fraction,
            "data.split_seed": split_seed,
            # loading only: with no validation split, nothing could score a search on one
            "data.fitness_split": "validation" if validation_fraction else "test",
        }
    )
    return load_dataset(config.data)


# ---------------------------------------------------------------------------- results


class PruneResult:
    """One finished run, in memory: its tables, its summary and its models.

    Attributes:
        config: the resolved config.
        summary: the ``summary.json`` mapping.
        front, population, logbook: tables (pandas DataFrames).
        refined: fine-tuned front points (``None`` when the run did not fine-tune).
        curve: one row per ``select.compressions`` level (``None`` without levels).
        selected: ``summary["selected"]``, the run's answer (``None`` when nothing qualifies).
        path: the run directory it was read from or saved to (``None`` when only in memory).
    """

    def __init__(self, run: RunResult, prepared: Prepared | None, where: RunDir, path: Path | None) -> None:
        self._run, self._prepared, self._dir, self.path = run, prepared, where, path
        self._inputs_kept = path is not None

    def __repr__(self) -> str:
        chosen = self.selected
        what = f"selected {compression_text(chosen['compression'])}" if chosen else "nothing selected"
        return f"<PruneResult {self.config.search.algorithm}, {len(self.front)} front points, {what}>"

    config = property(lambda self: self._run.config)
    summary = property(lambda self: self._run.summary)
    front = property(lambda self: self._run.front)
    population = property(lambda self: self._run.population)
    logbook = property(lambda self: self._run.logbook)
    refined = property(lambda self: self._run.refined)
    curve = property(lambda self: self._run.curve)
    selected = property(lambda self: self._run.summary.get("selected"))

    def _prepare(self) -> Prepared:
        if self._prepared is None:
            self._prepared = prepare(self._dir.resolved(self._dir.read_config()), levels=False)
        return self._prepared

    def model(self, eval_index: int | None = None):
        """A point of the run as a new ``keras.Model``: the selected one by default.

        Retrained points (fine-tuned, or a baseline's rounds) come with the weights the run
        measured; any other point is its masks on the original weights.

        Raises:
            EvopruneError: nothing was selected (give ``eval_index``), or no such point.
        """
        if eval_index is None:
            if self.selected is None:
                raise EvopruneError(
                    "The run selected no model (none within select.tolerance_pp). Expected "
                    "eval_index=... of a front point. Received: eval_index=None"
                )
            eval_index = int(self.selected["eval_index"])
        refined = self.refined is not None and eval_index in set(self.refined["eval_index"])
        model, _ = run_point(self._dir, self.config, self._prepare(), int(eval_index), refined)
        return model

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Writes the run directory to ``path`` (what ``evoprune export`` and ``evaluate`` read).

        A model or data that came from memory are written too (``model.keras``, ``data.npz``).

        Raises:
            EvopruneError: ``path`` holds a finished or interrupted run (unless ``overwrite``)
                or cannot be written.
        """
        target = RunDir(path)
        target.check(resume=False, overwrite=overwrite)
        if Path(path).resolve() != self._dir.path.resolve():
            prepare_out_dir(target.path)
            with target.lock():
                target.discard_run()  # an earlier run's checkpoint must not outlive the copy
                for item in self._dir.path.iterdir():
                    if item.is_file() and item.name != LOCK:
                        shutil.copy2(item, target.path / item.name)
        if self._prepared is not None:
            _keep_inputs(target, self._prepared)
        self.path = target.path
        return target.path

    def export(self, path: str | Path, format: str | None = None, **options) -> ExportReport:
        """:func:`export` of this run (one held in memory is exported from its temporary directory)."""
        return export(self, path, format=format, **options)

    def _exportable(self) -> Path:
        """The run directory export reads: the saved one, or the temporary one with the model and
        data given in memory written into it."""
        if self.path is not None:
            return self.path
        if self._prepared is not None and not self._inputs_kept:
            _keep_inputs(self._dir, self._prepared)
            self._inputs_kept = True
        return self._dir.path


def load_summary(path: str | Path) -> dict:
    """A finished run's ``summary.json``, checked and read back (what ``evoprune show`` prints);
    unlike :func:`load_run` it reads no table and no config.

    Raises:
        EvopruneError: not a finished run directory, or a damaged summary.
    """
    return RunDir(path).read_summary()


def load_run(path: str | Path) -> PruneResult:
    """A finished run directory, read back: the same tables, summary and models.

    Raises:
        EvopruneError: not a finished run directory, or a damaged file.
    """
    where = RunDir(path)
    summary = where.read_summary()
    config = where.read_config()
    tables = {}
    for name in (rundir.LOGBOOK, rundir.POPULATION, rundir.FRONT, rundir.REFINED, rundir.CURVE):
        tables[name] = where.read_table(name) if where.has(name) else None
    run = RunResult(
        config,
        summary,
        tables[rundir.LOGBOOK],
        tables[rundir.POPULATION],
        tables[rundir.FRONT],
        tables[rundir.FRONT],
        refined=tables[rundir.REFINED],
        curve=tables[rundir.CURVE],
    )
    return PruneResult(run, None, where, where.path)


# ---------------------------------------------------------------------------- running


def _printer(stream=sys.stderr) -> tuple[Callable[[str], None], Progress]:
    """``verbose=True``: status lines and one line per progress step."""

    def status(message: str) -> None:
        print(message, file=stream, flush=True)

    def progress(phase: str, done: int, total: int, note: str = "") -> None:
        print(f"{phase} {step_text(done, total)}{', ' + note if note else ''}", file=stream, flush=True)

    return status, progress


def _inputs(
    config: Config, model, train, validation, test, status, progress
) -> tuple[Config, Prepared | None]:
    """Config entries and a prepared model for data and a model given in memory."""
    if model is None and train is None:
        return config, None
    overrides = {}
    if train is not None:
        overrides["data.data_file"] = rundir.DATA  # what save() writes, read back from the directory
        overrides["data.data_dir"] = ""
        dataset = from_arrays(
            train, validation, test, config.data.validation_fraction, config.data.split_seed
        )
        check_split(config, dataset)
    else:
        status(f"Loading dataset {config.data.source}")
        dataset = load_dataset(config.data)
        check_split(config, dataset)
    if model is not None:
        import_tensorflow_quietly()
        trained = adopt_model(model, dataset)
        overrides["model.model_file"] = rundir.MODEL
    else:
        trained = load_or_train(
            dataset, config.model, config.search.seed, on_epoch=training_progress(progress)
        )
    config = configure.with_overrides(config, overrides)
    prepared = Prepared(dataset, trained)
    check_target(config, prepared)  # fails before any work
    return config, prepared


def prune(
    model=None,
    train: Split | None = None,
    validation: Split | None = None,
    test: Split | None = None,
    *,
    config: Config | str | Path | None = None,
    overrides: dict | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
    verbose: bool = False,
    **options,
) -> PruneResult:
    """Prunes a Keras classifier with the configured method and returns the finished run.

    Args:
        model: a trained Keras 3 classifier in memory (never saved by you); ``None``
            prunes the config's model (``model.model_file`` or a built-in architecture).
        train: ``(images, labels)`` arrays to search and fine-tune on; ``None`` reads the
            config's data (and then ``validation`` and ``test`` too).
        validation: ``(images, labels)`` that selection scores; carved from ``train``
            (``data.validation_fraction``) when not given.
        test: ``(images, labels)`` only reported; without it, test accuracies are NaN.
        config: a TOML file, a :class:`~evoprune.config.Config`, or ``None`` (defaults).
        overrides: ``{"section.key": value}`` config overrides, as for :func:`load_config`.
        **options: config keys as keywords, as for :func:`load_config` (``layers="dense"``,
            ``algorithm="nsga2"``, ``population=24``, ``generations=5``, ``seed=0``, ...).
        out: a run directory to write (the search checkpointed at most once a second, every
            fine-tuned point or retrained round logged, and resumable); ``None`` keeps the run
            in a temporary directory until :meth:`PruneResult.save`.
        resume: continue the interrupted run in ``out`` (its saved config is used).
        overwrite: replace a finished or interrupted run in ``out``.
        progress: ``(phase, done, total, note)``: phases ``train`` (epochs of a model
            trained now), ``search`` (generations), ``round`` (baseline rounds), ``retrain``
            (epochs), ``finetune`` (points; the total is an upper bound that can shrink).
        status: one-line messages.
        verbose: print status and progress lines to stderr (when no callbacks are given).

    Raises:
        EvopruneError: one clear line for bad options, data, models or directories.
    """
    start = time.perf_counter()
    say, tell = _printer() if verbose else (None, None)
    status = status or say or (lambda message: None)
    progress = progress or tell or (lambda *args: None)
    if resume and out is None:
        raise EvopruneError("Expected out=DIR with resume=True. Received: out=None")
    if resume and out is not None:  # the saved config with the overrides; a config given too must equal it
        base = Config() if isinstance(config, Config) else configure.load_config(None)
        merged = {**(overrides or {}), **_dotted(base, options)}
        file = None if isinstance(config, Config) else config
        _, cfg = rundir.run_config(None, Path(out), file, merged)
        if isinstance(config, Config) and config != cfg:
            difference = config_difference(cfg.to_dict(), config.to_dict())
            raise EvopruneError(f"The config given differs from the run being resumed: {difference}")
    else:
        cfg = rundir.resolve_environment(load_config(config, overrides, **options))
    methods.require(cfg.search.algorithm)  # a missing extra fails before any work
    where = RunDir(out) if out is not None else RunDir(tempfile.mkdtemp(prefix="evoprune-run-"))
    if out is not None:
        where.check(resume, overwrite)  # creates nothing yet
    # a missing file fails in a blink, not after TensorFlow loads
    check_inputs(where.resolved(cfg), data=train is None, model=model is None)
    checkpoint_every_s()  # a bad $EVOPRUNE_CHECKPOINT_EVERY_S, before anything loads
    import_tensorflow_quietly()  # and sizes the thread pools to the usable cores
    cfg, prepared = _inputs(cfg, model, train, validation, test, status, progress)
    if prepared is None:
        # bad data or model fail here, before any write
        prepared = prepare(where.resolved(cfg), status, progress)
    prepare_s = time.perf_counter() - start

    interrupt = GracefulInterrupt(  # the command line's way and Python's
        f"evoprune run --resume {where.path} (in Python: "
        f"evoprune.prune(out={str(where.path)!r}, resume=True))"
    )
    catch = out is not None and threading.current_thread() is threading.main_thread()
    with where.open(cfg, resume, overwrite):
        if out is not None and not resume:
            _keep_inputs(where, prepared)
        context = RunContext(
            progress=progress,
            status=status,
            checkpoint=where.checkpoint,
            resume=resume,
            retrain_file=where.retrain_log,
            checkpointed=interrupt.stop_after if catch else (lambda what: None),
            stop_requested=(lambda: interrupt.requested) if catch else (lambda: False),
        )
        if catch:
            with interrupt:
                result = methods.run(cfg, prepared, context)
        else:
            result = methods.run(cfg, prepared, context)
        where.finish(result, time.perf_counter() - start, prepare_s)
    return PruneResult(result, prepared, where, where.path if out is not None else None)


def _keep_inputs(where: RunDir, prepared: Prepared) -> None:
    """Writes a model and data given in memory into the run directory (so it can resume)."""
    model = prepared.trained.model if prepared.trained.path is None else None
    data = as_npz_arrays(prepared.dataset) if prepared.dataset.name == "memory" else None
    if model is not None or data is not None:
        where.write_inputs(model, data)


@dataclass(frozen=True)
class Trained:
    """A trained (or cached, or given) model and its accuracy on each non-empty split.

    Attributes:
        model: the compiled ``keras.Model``.
        path: its ``.keras`` file (the cache entry, or the given model file).
        cached: loaded, not trained now.
        model_file: it is the config's ``model.model_file``.
        train_time_s: seconds spent training (0 when loaded).
        accuracy: ``split -> accuracy`` for validation and test.
        dataset: the data it was measured on.
    """

    model: Any
    path: Path | None
    cached: bool
    model_file: bool
    train_time_s: float
    accuracy: dict
    dataset: Dataset


def train(
    config: Config | str | Path | None = None,
    *,
    status=None,
    progress: Progress | None = None,
    verbose: bool = False,
    overrides: dict | None = None,
    **options,
) -> Trained:
    """Trains the config's built-in architecture (or loads it from the cache, or the model file).

    Args:
        status: one-line messages.
        progress: ``("train", epoch, epochs, note)`` after each epoch of a model trained now.
        verbose: print status and progress lines to stderr (when no callbacks are given).
    """

    say, tell = _printer() if verbose else (None, None)
    # train runs no method: the rules of search.algorithm (the paper's population) do not apply
    cfg = rundir.resolve_environment(load_config(config, overrides, check_method=False, **options))
    check_inputs(cfg)  # a missing file fails before TensorFlow loads
    import_tensorflow_quietly()
    prepared = prepare(cfg, status or say or (lambda message: None), progress or tell, levels=False)
    ds, trained = prepared.dataset, prepared.trained
    scores = {s: accuracy(trained.model, ds.split(s)) for s in ("validation", "test") if len(ds.split(s)[1])}
    return Trained(
        trained.model,
        trained.path,
        trained.cached,
        bool(cfg.model.model_file),
        trained.train_time_s,
        scores,
        ds,
    )


def export(
    run: str | Path | PruneResult,
    path: str | Path,
    format: str | None = None,
    rank: int | None = None,
    shrink: bool = False,
    latency_repeats: int = 100,
) -> ExportReport:
    """Writes a run's selected (or ``rank``-th) model as ``.keras`` or sparse ``.tflite``, with a sidecar.

    The sidecar (``path.json``) holds its size, nonzero weights, latency and its test
    accuracy measured on the written file.
    """

    directory = run._exportable() if isinstance(run, PruneResult) else run
    RunDir(Path(directory)).read_summary()  # the cheap refusals come before TensorFlow loads
    check_output(Path(path), format)
    import_tensorflow_quietly()
    return export_model(Path(directory), Path(path), rank, format, shrink, latency_repeats)


def model_kind(path: str | Path) -> str:
    """``keras`` or ``tflite``, from the file's contents, for a file this installation can run.

    Raises:
        EvopruneError: not a model file (one line naming it).
        MissingExtraError: a ``.tflite`` file without the ``tflite`` extra (LiteRT runs it).
    """

    kind = kind_of(Path(path))
    if kind == "tflite":
        require_litert("evaluating a .tflite file")
    return kind


def evaluate(
    model,
    data: Dataset | Split | None = None,
    split: str = "test",
    **data_options,
) -> float:
    """Accuracy of a model on a split of ``data`` (or of :func:`load_data`'s).

    Args:
        model: a ``.keras`` or ``.tflite`` file, or a ``keras.Model`` in memory (such as
            ``PruneResult.model()``).
        data: a dataset, an ``(images, labels)`` pair, or ``None`` to load one with
            ``data_options`` (as :func:`load_data`).
    """
    file = isinstance(model, (str, os.PathLike))
    if file:
        model_kind(model)  # a non-model file, or a .tflite one without LiteRT, fails before the data loads
    else:
        import_tensorflow_quietly()  # a keras.Model given: TensorFlow is loaded already
        import keras

        if not isinstance(model, keras.Model):
            raise ModelError(
                f"Expected a .keras or .tflite file or a keras.Model. Received: {type(model).__name__}"
            )
    if data is None:
        data = load_data(**data_options)
    if isinstance(data, Dataset):
        pair = data.split(split)
    else:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise EvopruneError(f"Expected data=(images, labels). Received: {type(data).__name__}")
        pair = (check_images(data[0], "the images given"), check_labels(data[1], "the labels given"))
        check_counts(len(pair[0]), len(pair[1]), "the images given", "the labels given")
    import_tensorflow_quietly()
    return model_accuracy(Path(model) if file else model, pair)


def compare(
    config: Config | str | Path | None,
    out: str | Path,
    progress=None,
    overrides=None,
    status: Callable[[str], None] | None = None,
    **options,
):
    """Algorithms x seeds at equal budgets (``evoprune compare``).

    Args:
        progress: ``(trial, done, total)`` after each trial saved.
        status: one-line messages (each seed's data and model).

    Returns:
        A :class:`~evoprune.experiments.compare.CompareResult`: ``trials``, ``generations``,
        ``fronts`` tables and ``medians()``.
    """

    cfg = rundir.resolve_environment(load_config(config, overrides, check_method=False, **options))
    return run_compare(
        cfg, Path(out), progress=progress or (lambda *a: None), status=status or (lambda message: None)
    )


def bench(
    config: Config | str | Path | None,
    out: str | Path,
    scheduler: str | None = None,
    progress=None,
    overrides=None,
    status: Callable[[str], None] | None = None,
    **options,
) -> pd.DataFrame:
    """Genomes x algorithms x operator variants at equal budgets (``evoprune bench``); the ranking.

    ``progress(trial, done, total)`` after each trial saved; ``status``: one-line messages.
    """

    cfg = rundir.resolve_environment(load_config(config, overrides, check_method=False, **options))
    return run_bench(
        cfg,
        Path(out),
        scheduler=scheduler,
        progress=progress or (lambda *a: None),
        status=status or (lambda message: None),
    )
