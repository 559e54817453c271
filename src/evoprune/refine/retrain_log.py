"""A data-only log of finished retrainings, so a run killed mid-way resumes after the last one.

Every retraining a method does after (or instead of) a search, such as a fine-tuned front
point, a magnitude round or a step of a gradual schedule, is appended as it finishes: a
key, a row of numbers (its accuracies) and, for whole-model retraining, the weights it
made. A resumed run replays what the log holds and retrains only the rest. Retraining
is a pure function of its inputs (see :class:`~evoprune.refine.retrain.ModelFinetuner`),
so the resumed run's results equal an uninterrupted run's.

The file is one ``.npz`` written atomically after every entry (a kill leaves the previous
log or the new one), read with ``allow_pickle=False`` and validated: written for this
config, data and model, numbers only. Without a path the log lives in memory (trials of
``compare`` and ``bench``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from evoprune.config import Config
from evoprune.errors import CheckpointError
from evoprune.io import atomic_write_bytes
from evoprune.search.checkpoint import (
    check_identity,
    config_difference,
    plain,
    read_data_npz,
    saved_config,
)

KIND = "evoprune-retrain-log"
FORMAT = 1


def mask_key(masks: Sequence[np.ndarray]) -> str:
    """A short digest of one mask per pruned layer (their shapes and bits)."""
    digest = hashlib.sha256()
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        digest.update(f"{mask.shape}".encode())
        digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()[:32]


class RetrainLog:
    """Finished retrainings by key: what a resumed run replays instead of retraining.

    A retraining method uses it in a few lines::

        log = retrain_log(config, prepared, context, "gmp step")  # resumed with the run, or empty
        for step in schedule:
            key = f"step {step}"
            if log.done(key):                          # finished before the interruption
                weights = log.weights(key)
                accuracy = log.row(key)["accuracy"]
                continue
            weights, accuracy = retrain(step)          # seeded: a pure function of its inputs
            log.add(key, {"accuracy": accuracy}, weights)

    (:func:`~evoprune.experiments.assemble.retrain_log` opens the run directory's log;
    :func:`logged_score` wraps a ``masks -> accuracies`` scorer.) A
    retraining long enough to lose much can log every epoch: its weights, and the
    optimizer's variables among the arrays, under keys such as ``"step 3 epoch 2"``.

    Args:
        path: the log file (``None``: in memory only).
        config: the run's config (a log of another config is refused).
        identity: dataset checksum and model hashes (see
            :func:`~evoprune.experiments.assemble.identity`); another data or model is refused.
        shapes: the shapes every entry's arrays have (the model's weights), or ``None``.
        on_add: called with each key once its entry is saved (interrupt checks).
    """

    def __init__(
        self,
        path: Path | None,
        config: Config,
        identity: dict[str, str] | None = None,
        shapes: Sequence[tuple] | None = None,
        on_add: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.config, self.identity = config, dict(identity or {})
        self.shapes = None if shapes is None else [tuple(int(n) for n in s) for s in shapes]
        self.on_add = on_add
        self._rows: dict[str, dict[str, Any]] = {}
        self._arrays: dict[str, list[np.ndarray]] = {}

    @classmethod
    def open(
        cls,
        path: Path | None,
        config: Config,
        identity: dict[str, str] | None = None,
        shapes: Sequence[tuple] | None = None,
        resume: bool = False,
        on_add: Callable[[str], None] = lambda key: None,
    ) -> RetrainLog:
        """The log at ``path``: read back when resuming and it exists, else empty.

        Raises:
            CheckpointError: the file is damaged, foreign, or of another config, data or model.
        """
        log = cls(path, config, identity, shapes, on_add)
        if resume and log.path is not None and log.path.is_file():
            log._load()
        return log

    def __len__(self) -> int:
        return len(self._rows)

    def keys(self) -> list[str]:
        """The keys logged, in the order they were added."""
        return list(self._rows)

    def done(self, key: str) -> bool:
        """True when ``key`` was retrained and logged."""
        return key in self._rows

    def row(self, key: str) -> dict[str, Any]:
        """The numbers logged for ``key``."""
        return dict(self._rows[key])

    def weights(self, key: str) -> list[np.ndarray] | None:
        """The arrays logged for ``key`` (``None`` when it has none)."""
        arrays = self._arrays[key]
        return [a.copy() for a in arrays] if arrays else None

    def add(self, key: str, row: dict[str, Any], weights: Sequence[np.ndarray] | None = None) -> None:
        """Appends one finished retraining and saves the log (atomically) before returning."""
        if key in self._rows:
            raise ValueError(f"Retraining {key!r} is logged already")
        arrays = [np.array(w) for w in weights or ()]
        _check_entry(key, row, arrays, self.shapes)
        self._rows[key], self._arrays[key] = _plain_row(row), arrays
        if self.path is not None:
            atomic_write_bytes(self.path, self._bytes())
        self.on_add(key)

    # ------------------------------------------------------------------ the file

    def _bytes(self) -> bytes:
        entries = [
            {"key": key, "row": self._rows[key], "arrays": len(self._arrays[key])} for key in self._rows
        ]
        meta = {
            "kind": KIND,
            "format": FORMAT,
            "config": plain(self.config.to_dict()),
            "identity": self.identity,
            "entries": entries,
        }
        members: dict[str, Any] = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        for i, key in enumerate(self._rows):
            members.update({f"a{i}_{j}": a for j, a in enumerate(self._arrays[key])})
        buffer = io.BytesIO()
        np.savez(buffer, **members)
        return buffer.getvalue()

    def _load(self) -> None:
        path = self.path
        assert path is not None  # only a log with a file is read back
        members = _read_members(path)
        try:
            meta = json.loads(bytes(members.pop("meta")).decode("utf-8"))
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"Retraining log has no readable header: {path}") from exc
        if not isinstance(meta, dict) or meta.get("kind") != KIND or meta.get("format") != FORMAT:
            raise CheckpointError(f"Not an evoprune retraining log (or another format): {path}")
        current = plain(self.config.to_dict())
        saved = saved_config(meta.get("config"), self.config)
        if saved != current:
            raise CheckpointError(
                f"Retraining log in {path.parent} was written for another config: "
                f"{config_difference(saved, current)}"
            )
        check_identity(meta, self.identity, path.parent)
        entries = meta.get("entries")
        try:
            if not isinstance(entries, list):
                raise ValueError("entries")
            expected = {f"a{i}_{j}" for i, e in enumerate(entries) for j in range(_count(e))}
            if set(members) != expected:
                raise ValueError(f"members {sorted(set(members) ^ expected)[:3]}")
            for i, entry in enumerate(entries):
                key, row = entry.get("key"), entry.get("row")
                arrays = [members[f"a{i}_{j}"] for j in range(entry["arrays"])]
                _check_entry(key, row, arrays, self.shapes)
                if key in self._rows:
                    raise ValueError(f"key {key!r} twice")
                self._rows[key], self._arrays[key] = row, arrays
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise CheckpointError(f"Retraining log is damaged: {path} ({exc})") from exc


def logged_score(
    log: RetrainLog,
    score: Callable,
    tuned_weights: Callable | None = None,
) -> Callable:
    """``score`` (``masks -> (accuracy, test accuracy)``) that logs each result under its masks' key.

    Masks scored before (in the log) are answered from it, without retraining; each new
    result is logged with ``tuned_weights(masks)`` (``None``: no weights, e.g. a head
    fine-tuning that a genome reproduces at once).
    """

    def scored(masks) -> tuple[float, float]:
        key = mask_key(masks)
        if not log.done(key):
            accuracy, test_accuracy = score(masks)
            weights = tuned_weights(masks) if tuned_weights is not None else None
            nonzero = int(sum(np.count_nonzero(m) for m in masks))
            log.add(key, {"nonzero": nonzero, "accuracy": accuracy, "test_accuracy": test_accuracy}, weights)
        row = log.row(key)
        return row["accuracy"], row["test_accuracy"]

    return scored


def _count(entry) -> int:
    count = entry.get("arrays") if isinstance(entry, dict) else None
    if type(count) is not int or count < 0:
        raise ValueError("entry without an array count")
    return count


def _check_entry(key, row, arrays: list[np.ndarray], shapes: list[tuple] | None) -> None:
    """Types and shapes of one entry; raises ValueError (TypeError) naming what is wrong."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"key {key!r}")
    if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
        raise ValueError(f"row of {key!r}")
    for name, value in row.items():
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not (number or value is None or isinstance(value, (str, bool))):
            raise ValueError(f"{key!r}: {name}={value!r} is not a number")
    for array in arrays:
        if array.dtype.kind not in "fiub" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
            raise ValueError(f"{key!r}: arrays must be finite numbers, got {array.dtype}")
    if arrays and shapes is not None and [tuple(a.shape) for a in arrays] != shapes:
        raise ValueError(f"{key!r}: array shapes differ from the model's weights")


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready numbers (NaN stays NaN: JSON as Python writes it)."""
    out = {}
    for name, value in row.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if isinstance(value, float) and math.isinf(value):
            raise ValueError(f"{name}={value!r} is not finite")
        out[name] = value
    return out


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """The log's members (:func:`~evoprune.search.checkpoint.read_data_npz`), with a header."""
    members = read_data_npz(path, "Retraining log")
    if "meta" not in members or members["meta"].dtype != np.uint8 or members["meta"].ndim != 1:
        raise CheckpointError(f"Not an evoprune retraining log (no header): {path}")
    return members
