"""File I/O every layer shares: atomic writes, output folders, locks and hashes (a leaf)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from evoprune.errors import EvopruneError


def _umask() -> int:
    """This process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``.

    A crash or a full disk leaves either the old file or the new one, never a mixture.
    The file gets the mode an ordinary ``open(path, "w")`` would (``0666`` minus the
    umask: ``0644`` under the usual ``022``), not the temporary file's private ``0600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def prepare_out_dir(out: Path) -> Path:
    """Creates ``out`` if needed; a file or unwritable path there is a user error.

    Raises:
        EvopruneError: ``out`` is a file, or it cannot be created or written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EvopruneError(f"Output path exists and is not a directory. Received: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise EvopruneError(f"Cannot write to output directory {out}: {exc.strerror or exc}") from exc
    return out


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (what creating it would write into)."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_out_path(out: Path) -> None:
    """Refuses an output path that is a file or cannot be created, creating nothing.

    Raises:
        EvopruneError: ``out`` is a file, or its nearest existing folder is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EvopruneError(f"Output path exists and is not a directory. Received: {out}")
    existing = nearest_existing(out)
    if not existing.is_dir():
        raise EvopruneError(f"Cannot write to output directory {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EvopruneError(f"Cannot write to output directory {out}: {existing} is not writable")


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (created if needed); refused at once when held.

    Raises:
        EvopruneError: another process holds the lock (``busy`` is the message).
    """
    with Path(path).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EvopruneError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arrays_sha256(arrays) -> str:
    """SHA-256 of a list of arrays (shapes, dtypes and values, in order), as hex."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def weights_sha256(model) -> str:
    """SHA-256 of a Keras model's weights (shapes, dtypes and values, in layer order).

    Unlike the ``.keras`` file's hash it does not change when the same weights are saved
    again (the file records the date it was saved), and an in-memory model has one too.
    """
    return arrays_sha256(model.get_weights())
