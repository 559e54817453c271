"""Run directories: their lifecycle (open, resume, overwrite, finish), locks and data/model identity."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from evoprune.errors import EvopruneError

if TYPE_CHECKING:  # pragma: no cover
    from evoprune.config import Config
    from evoprune.reporting.results import RunResult

LOCK = ".evoprune.lock"
SUMMARY = "summary.json"  # written last: a directory without it holds an unfinished run
CONFIG = "config.toml"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model) -> str:
    """SHA-256 of a Keras model's weights (shapes, dtypes and values, in layer order).

    Unlike the ``.keras`` file's hash it does not change when the same weights are saved
    again (the file records the date it was saved).
    """
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(f"{weights.dtype.str}{weights.shape}".encode())
        digest.update(weights.tobytes())
    return digest.hexdigest()


def identity(prepared) -> dict[str, str]:
    """What a run's results depend on besides its config: dataset checksum and model hashes."""
    return {
        "dataset_checksum": prepared.dataset.checksum,
        "model_sha256": file_sha256(prepared.trained.path),
        "model_weights_sha256": weights_sha256(prepared.trained.model),
    }


def check_out_path(out: Path) -> None:
    """Refuses an output path that is a file or cannot be created, creating nothing.

    Raises:
        EvopruneError: ``out`` is a file, or its nearest existing folder is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EvopruneError(f"Output path exists and is not a directory. Received: --out {out}")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EvopruneError(f"Cannot write to output directory {out}: {existing} is not writable")


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``out`` for a run's life; a second run is refused at once.

    Raises:
        EvopruneError: another process holds the lock.
    """
    with Path(out, LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EvopruneError(
                f"Another evoprune run is writing to this directory (lock {LOCK} held). Received: --out {out}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_unlocked(out: Path) -> None:
    """Refuses early (before loading anything) when a run holds ``out``'s lock."""
    if (Path(out) / LOCK).is_file():
        with run_lock(out):
            pass


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Blocks until this process holds an exclusive lock on ``path`` (created if needed).

    Where the lock file cannot be created (a read-only cache) it goes on unlocked.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load(config_file: Path | None, overrides: dict) -> Config:
    from evoprune.config import load_config

    return load_config(config_file).with_overrides(overrides)


def resolve_environment(cfg: Config) -> Config:
    """Writes environment defaults into the config, so the run directory says what it used."""
    from evoprune.data.dataset import SAMPLE_NAME

    env = os.environ.get("EVOPRUNE_DATA_DIR", "")
    if cfg.data.data_dir or not env or cfg.data.dataset == SAMPLE_NAME:
        return cfg
    return cfg.with_overrides({"data.data_dir": str(Path(env).resolve())})


def run_config(
    out: Path | None, resume: Path | None, config_file: Path | None, overrides: dict
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
        return Path(out), resolve_environment(_load(config_file, overrides))
    resume = Path(resume)
    if out is not None and Path(out).resolve() != resume.resolve():
        raise EvopruneError(
            f"--out and --resume name different directories. Received: --out {out}, --resume {resume}"
        )
    if (resume / SUMMARY).is_file():
        raise EvopruneError(f"Run is already complete (summary.json exists). Received: --resume {resume}")
    if not (resume / CONFIG).is_file():
        raise EvopruneError(f"Not a run directory (no config.toml). Received: --resume {resume}")
    cfg = _load(resume / CONFIG, overrides)
    from evoprune.search import checkpoint

    given = resolve_environment(_load(config_file, overrides)) if config_file is not None else cfg
    if given != cfg:
        raise EvopruneError(
            f"--config differs from the run being resumed: "
            f"{checkpoint.config_difference(cfg.to_dict(), given.to_dict())}"
        )
    checkpoint.load(resume / checkpoint.CHECKPOINT, cfg)  # fail before any training
    return resume, cfg


def refuse_finished(out: Path) -> None:
    """Refuses a directory that holds a finished run (``--overwrite`` skips this check).

    Raises:
        EvopruneError: ``out`` has a ``summary.json``.
    """
    if (Path(out) / SUMMARY).exists():
        raise EvopruneError(
            f"Output directory holds a finished run (summary.json); use "
            f"another --out or --overwrite. Received: --out {out}"
        )


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """The checks that create nothing, before data and model load: path, finished run, lock."""
    check_out_path(out)
    if not resume and not overwrite:
        refuse_finished(out)
    check_unlocked(out)


@contextlib.contextmanager
def open_run(out: Path, cfg: Config, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Creates ``out`` and holds its lock for the run's life.

    A fresh run checks again that no run finished there meanwhile (unless ``overwrite``),
    removes ``summary.json`` (the directory is unfinished from now on) and writes
    ``config.toml``; a resumed run keeps both.

    Raises:
        EvopruneError: unwritable path, a finished run, or another run holding the lock.
    """
    from evoprune.reporting.results import atomic_write_text, prepare_out_dir

    out = prepare_out_dir(Path(out))
    with run_lock(out):
        if not resume:
            if not overwrite:
                refuse_finished(out)
            (out / SUMMARY).unlink(missing_ok=True)
            atomic_write_text(out / CONFIG, cfg.to_toml())
        yield out


def finish_run(result: RunResult, out: Path, wall_time_s: float) -> None:
    """Records the run's wall time and writes its files, ``summary.json`` last."""
    from evoprune.reporting.results import write_run_dir

    result.summary["wall_time_s"] = wall_time_s
    write_run_dir(result, out)


def check_resumable(config: Config, out: Path, free: tuple[str, ...] = ("compare",)) -> None:
    """Refuses to mix trials of different settings in one directory (compare, bench).

    The ``free`` sections may change (more seeds or algorithms); nothing else may.

    Raises:
        EvopruneError: ``out`` holds trials of another config.
    """
    from evoprune.config import load_config
    from evoprune.search.checkpoint import config_difference

    saved_path = Path(out) / CONFIG
    if not (Path(out) / "trials.csv").is_file() or not saved_path.is_file():
        return
    saved = load_config(saved_path).to_dict()
    current = config.to_dict()
    for section in free:
        saved.pop(section, None)
        current.pop(section, None)
    if saved != current:
        raise EvopruneError(
            f"{out} holds results of other settings ({config_difference(saved, current)}); use another --out"
        )


def open_trials_dir(out: Path, cfg: Config, free: tuple[str, ...]) -> Path:
    """Creates (or reopens, to resume) a directory of trials and writes its ``config.toml``.

    Raises:
        EvopruneError: unwritable path, or trials of other settings there (see
            :func:`check_resumable`).
    """
    from evoprune.reporting.results import atomic_write_text, prepare_out_dir

    out = prepare_out_dir(Path(out))
    check_resumable(cfg, out, free)
    atomic_write_text(out / CONFIG, cfg.to_toml())
    return out
