"""What a method is: one entry ``(Config, Prepared, RunContext) -> RunResult`` of the method table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from evoprune.config import Config
from evoprune.experiments.assemble import Prepared, identity
from evoprune.refine.retrain_log import RetrainLog

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
        resume: continue from ``checkpoint`` and ``retrain_file``.
        retrain_file: the run directory's log of finished retrainings (``None``: kept in
            memory only); see :meth:`retrain_log`.
        checkpointed: called with a description (``"fine-tuning point 3"``) each time a
            retraining is logged; the caller's interrupt check (it may raise to stop there).
    """

    observers: Sequence[Callable] = ()
    progress: Progress = _quiet
    status: Status = _quiet
    checkpoint: Path | None = None
    resume: bool = False
    retrain_file: Path | None = None
    checkpointed: Status = _quiet

    def retrain_log(self, config: Config, prepared: Prepared, what: str = "retraining") -> RetrainLog:
        """The run's :class:`~evoprune.refine.retrain_log.RetrainLog`: read back on resume, else empty.

        Whole-model weights logged must have the model's shapes; each entry added calls
        :attr:`checkpointed` with ``"{what} {n}"`` (n: entries logged so far).

        Raises:
            CheckpointError: the log on disk is damaged, or of another config, data or model.
        """
        model = prepared.trained.model
        log = RetrainLog.open(
            self.retrain_file,
            config,
            identity(prepared),
            shapes=[w.shape for w in model.get_weights()],
            resume=self.resume,
        )
        log.on_add = lambda key: self.checkpointed(f"{what} {len(log)}")
        return log


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
        checkpoint: it resumes from the search checkpoint (``checkpoint.npz``), which a
            resumed run must then have; a method without one resumes from its
            retraining log alone (:meth:`RunContext.retrain_log`), or starts again.
    """

    name: str
    summary: str
    run: Callable
    genomes: bool = False
    operators: bool = False
    section: type | None = None
    check: Callable = field(default=_quiet)
    checkpoint: bool = False
