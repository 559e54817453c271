"""A run's config, complete: the schema's checks plus the names the registries and methods define."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from evoprune.config import Config, check_choice
from evoprune.config import from_dict as schema_from_dict
from evoprune.config import load_config as schema_load_config
from evoprune.experiments import methods
from evoprune.experiments.executors import EXECUTORS
from evoprune.models.architectures import ARCHITECTURES
from evoprune.models.target import LAYER_SETS
from evoprune.search.budget import check_memory
from evoprune.search.encodings import ENCODING_CHOICES, ENCODINGS
from evoprune.search.operators import OPERATORS


def registry_names(registry: str) -> tuple[str, ...]:
    """Valid names of a registry.

    Args:
        registry: ``algorithm`` (the method table), ``encoding``, ``executor``, ``crossover``,
            ``mutation``, ``architecture`` or ``layers`` (the named layer sets).
    """
    tables = {
        "algorithm": methods.names(),
        "encoding": ENCODING_CHOICES,
        "executor": EXECUTORS,
        "architecture": ARCHITECTURES,
        "layers": LAYER_SETS,
    }
    if registry in tables:
        return tuple(tables[registry])
    return tuple(name for name, op in OPERATORS.items() if op.role == registry)


def check_config(config: Config, check_method: bool = True) -> Config:
    """Checks the names of ``config`` against the registries and its method's own rules.

    Args:
        check_method: apply ``search.algorithm``'s own rules (the paper's population of at
            least 20, ...). ``False`` for compare and bench: they set the algorithm of each
            trial and check every trial's config, so the file's own algorithm, which they do
            not run, must not stop them.

    Returns:
        ``config`` with its method's table filled in with defaults when the file had none
        (so that ``config.toml`` records every setting the run used).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), a search that
            would not fit in memory, or settings the method refuses.
    """
    search = config.search
    check_choice("model.architecture", config.model.architecture, registry_names("architecture"))
    check_choice("search.algorithm", search.algorithm, registry_names("algorithm"))
    check_choice("search.encoding", search.encoding, registry_names("encoding"))
    check_choice("search.crossover", search.crossover, registry_names("crossover"))
    check_choice("search.mutation", search.mutation, registry_names("mutation"))
    if isinstance(search.layers, str):
        check_choice("search.layers", search.layers, registry_names("layers"))
    check_choice("compare.executor", config.compare.executor, registry_names("executor"))
    for name in config.compare.algorithms:
        check_choice("compare.algorithms", name, registry_names("algorithm"))
    check_choice("bench.executor", config.bench.executor, registry_names("executor"))
    for name in config.bench.encodings:
        check_choice("bench.encodings", name, tuple(ENCODINGS))  # explicit genomes: a grid axis
    for name in config.bench.algorithms:
        check_choice("bench.algorithms", name, registry_names("algorithm"))
    check_memory(search)
    method = methods.get(search.algorithm)
    if method.section is not None and config.section(method.table_name) is None:
        config = config.with_section(method.table_name, method.section())
    if check_method:
        config = with_fixed(config, method)
        method.check(config)
    return config


def with_fixed(config: Config, method: methods.Method) -> Config:
    """``config`` with the keys ``method`` fixes written into its table, replacing what the
    table gave, so that ``config.toml`` says what the run used (``gmp-global`` records
    ``allocation = "global"``). Replacing, not refusing: a run directory saved with another
    value (before the variants recorded theirs) still loads and exports.
    """
    if not method.fixed or method.section is None:
        return config
    table = config.section(method.table_name)
    return config.with_section(method.table_name, dataclasses.replace(table, **method.fixed))


def from_dict(raw: dict[str, Any]) -> Config:
    """:func:`evoprune.config.from_dict` with the methods' tables, then :func:`check_config`."""
    return check_config(schema_from_dict(raw, methods.sections()))


def load_config(
    path: Path | str | None = None, overrides: dict[str, Any] | None = None, check_method: bool = True
) -> Config:
    """Loads a TOML config (``None``: the defaults), applies ``{"section.key": value}``
    overrides (``None`` values are skipped) and checks everything (``check_method``: as for
    :func:`check_config`).

    Raises:
        ConfigError: one line naming the key and the bad value.
    """
    config = schema_load_config(path, methods.sections())
    config = config.with_overrides(overrides or {}, methods.sections())
    return check_config(config, check_method)


def with_overrides(config: Config, overrides: dict[str, Any], check_method: bool = True) -> Config:
    """``config.with_overrides`` knowing the methods' tables, then :func:`check_config`."""
    return check_config(config.with_overrides(overrides, methods.sections()), check_method)
