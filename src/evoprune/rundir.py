"""Run-directory safety: locks, output checks that create nothing, and data/model identity."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Iterator

from evoprune.errors import EvopruneError

LOCK = ".evoprune.lock"


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
    return {"dataset_checksum": prepared.dataset.checksum,
            "model_sha256": file_sha256(prepared.trained.path),
            "model_weights_sha256": weights_sha256(prepared.trained.model)}


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
            raise EvopruneError(f"Another evoprune run is writing to this directory (lock "
                                f"{LOCK} held). Received: --out {out}") from None
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
