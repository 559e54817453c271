"""What a method is: one entry ``(Config, Prepared, RunContext) -> RunResult`` of the method table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from evoprune.experiments.context import _quiet


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes:
        name: its ``search.algorithm`` name.
        summary: one line for ``--help`` and the docs.
        run: ``(config, prepared, context) -> RunResult``.
        genomes: it searches a genome (bench crosses it with ``bench.encodings``).
        operators: it uses evoprune's operators (bench crosses it with ``bench.variants``).
        section: the class of its own config table (``None``: it has none).
        table: the name of that table (default: the method's name); methods that share
            settings share a table (``gmp-global`` reads ``[gmp]``).
        check: refuses settings the method cannot run with (a ``ConfigError``).
        checkpoint: it resumes from the search checkpoint (``checkpoint.npz``), which a
            resumed run must then have; a method without one resumes from its
            retraining log alone (:func:`~evoprune.experiments.assemble.retrain_log`), or
            starts again.
    """

    name: str
    summary: str
    run: Callable
    genomes: bool = False
    operators: bool = False
    section: type | None = None
    table: str = ""
    check: Callable = field(default=_quiet)
    checkpoint: bool = False

    @property
    def table_name(self) -> str:
        """The name of its config table (``[gmp]``)."""
        return self.table or self.name
