"""Checkpoints: the loop's state after every generation, written atomically, and resume."""

from __future__ import annotations

import pickle
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np

from evoprune.algorithms import LoopState, individual_class
from evoprune.config import Config
from evoprune.errors import EvopruneError
from evoprune.results import atomic_write_bytes

CHECKPOINT = "checkpoint.pkl"
FORMAT = 1


class SearchInterrupted(EvopruneError):
    """The user asked to stop; the last generation is checkpointed."""


def save(path: Path, state: LoopState, problem, config: Config, search_time_s: float) -> None:
    """Pickles the loop state, the evaluation memo and the random generators, atomically."""
    payload = {
        "format": FORMAT, "config": config.to_dict(), "generation": state.generation,
        "population": state.population, "logbook": state.logbook, "problem": problem.state_dict(),
        "random": random.getstate(), "numpy": np.random.get_state(), "search_time_s": search_time_s,
    }
    atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load(path: Path, config: Config) -> dict[str, Any]:
    """Reads a checkpoint written for ``config``.

    Raises:
        EvopruneError: missing, unreadable, or written for another configuration.
    """
    if not path.is_file():
        raise EvopruneError(f"No checkpoint to resume from. Expected a file {path}")
    individual_class(1), individual_class(2)  # the pickled individuals' classes
    try:
        with path.open("rb") as handle:
            payload = pickle.load(handle)
    except Exception as exc:
        raise EvopruneError(f"Checkpoint is unreadable: {path} ({exc.__class__.__name__})") from exc
    if payload.get("format") != FORMAT:
        raise EvopruneError(f"Checkpoint format not supported. Expected {FORMAT}. Received: "
                            f"{payload.get('format')!r} in {path}")
    if payload["config"] != config.to_dict():
        raise EvopruneError(f"Checkpoint in {path.parent} was written for another config: "
                            f"{config_difference(payload['config'], config.to_dict())}")
    return payload


def config_difference(saved: dict, current: dict) -> str:
    """The first differing key, as ``section.key=saved there, current here``."""
    for section in sorted(set(saved) | set(current)):
        for key in sorted(set(saved.get(section, {})) | set(current.get(section, {}))):
            a, b = saved.get(section, {}).get(key), current.get(section, {}).get(key)
            if a != b:
                return f"{section}.{key}={a!r} there, {b!r} here"
    return "no difference"


def restore(payload: dict, problem) -> LoopState:
    """Restores the memo and the random generators; returns the loop state to resume from."""
    problem.load_state_dict(payload["problem"])
    random.setstate(payload["random"])
    np.random.set_state(payload["numpy"])
    return LoopState(payload["generation"], payload["population"], payload["logbook"])


class GracefulInterrupt:
    """Context manager: the first Ctrl-C sets a flag instead of raising mid-generation.

    Use :meth:`check` as the last loop observer: it raises :class:`SearchInterrupted`
    once the current generation is complete (and checkpointed by earlier observers).
    A second Ctrl-C interrupts at once.
    """

    def __init__(self, resume_hint: str) -> None:
        self.resume_hint = resume_hint
        self.requested = False
        self._previous = None

    def __enter__(self) -> GracefulInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, state: LoopState) -> None:
        if self.requested:
            raise SearchInterrupted(f"Interrupted after generation {state.generation}; "
                                    f"checkpoint saved. Resume with: {self.resume_hint}")
