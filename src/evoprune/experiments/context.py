"""How a run talks to its caller while it works: progress, status, checkpoints (``RunContext``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

Status = Callable[[str], None]
# (phase, done, total, note): "search" (generations), "finetune" (points), "retrain" (epochs),
# "population" (gmp-pbt's member-rounds), "round" (magnitude rounds), "level", "curve",
# "score" (test scoring); total 0 when unknown
Progress = Callable[[str, int, int, str], None]


def _quiet(*args) -> None:
    """A callback that does nothing."""


@dataclass(frozen=True)
class RunContext:
    """How a run talks to its caller while it works.

    Attributes:
        observers: DEAP-loop observers, called with the loop state after every generation
            (checkpointing, interrupt checks).
        progress: ``(phase, done, total, note)`` as the run moves through its phases.
        status: one-line messages.
        checkpoint: the checkpoint file of a run directory (``None``: no checkpoints).
        resume: continue from ``checkpoint`` and ``retrain_file``.
        retrain_file: the run directory's log of finished retrainings (``None``: kept in
            memory only); see :func:`~evoprune.experiments.assemble.retrain_log`.
        checkpointed: called with a description (``"fine-tuning point 3"``) each time a
            retraining is logged: the caller's interrupt check (it may raise to stop there).
        stop_requested: True once the caller asked the run to stop (a first Ctrl-C): the
            search then checkpoints the generation it completes, whenever it last wrote one.
    """

    observers: Sequence[Callable] = ()
    progress: Progress = _quiet
    status: Status = _quiet
    checkpoint: Path | None = None
    resume: bool = False
    retrain_file: Path | None = None
    checkpointed: Status = _quiet
    stop_requested: Callable[[], bool] = lambda: False
