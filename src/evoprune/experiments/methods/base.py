"""What a method is: one entry ``(Config, Prepared, RunContext) -> RunResult`` of the method table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

Status = Callable[[str], None]
# (phase, done, total, note): "search" (generations), "finetune" (points), "retrain" (epochs),
# "round" (magnitude rounds), "score" (test scoring); total 0 when unknown
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
        resume: continue from ``checkpoint``.
    """

    observers: Sequence[Callable] = ()
    progress: Progress = _quiet
    status: Status = _quiet
    checkpoint: Path | None = None
    resume: bool = False


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes:
        name: its ``search.algorithm`` name.
        summary: one line for ``--help`` and the docs.
        run: ``(config, prepared, context) -> RunResult``.
        genomes: it searches a genome (bench crosses it with ``bench.encodings``).
        operators: it uses evoprune's operators (bench crosses it with ``bench.variants``).
        section: the class of its own config table ``[name]`` (``None``: it has none).
        check: refuses settings the method cannot run with (a ``ConfigError``).
        extra: the ``pyproject.toml`` extra it needs (``None``: the core is enough).
        modules: the top-level modules of that extra it imports.
    """

    name: str
    summary: str
    run: Callable
    genomes: bool = False
    operators: bool = False
    section: type | None = None
    check: Callable = field(default=_quiet)
    extra: str | None = None
    modules: tuple[str, ...] = ()
