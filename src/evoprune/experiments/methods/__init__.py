"""The method table: every way evoprune can prune, each one entry ``(Config, Prepared) -> RunResult``.

Each module of this package declares ``METHODS``, a list of
:class:`~evoprune.experiments.methods.base.Method`; the table is their union, in module
order. Adding a method is adding one module here.
"""

from __future__ import annotations

import importlib
import pkgutil

from evoprune.errors import ConfigError, require_extra
from evoprune.experiments.context import Progress, RunContext, Status
from evoprune.experiments.methods.base import Method

__all__ = [
    "METHODS",
    "Method",
    "Progress",
    "RunContext",
    "Status",
    "get",
    "names",
    "require",
    "run",
    "sections",
]


def _discover() -> dict[str, Method]:
    table: dict[str, Method] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for method in getattr(module, "METHODS", ()):
            if method.name in table:
                raise RuntimeError(f"Method {method.name!r} is declared twice ({module.__name__})")
            table[method.name] = method
    return table


METHODS: dict[str, Method] = _discover()


def names() -> tuple[str, ...]:
    """Every method's ``search.algorithm`` name, in table order."""
    return tuple(METHODS)


def get(name: str) -> Method:
    """The method called ``name``.

    Raises:
        ConfigError: no such method (the message lists them).
    """
    if name not in METHODS:
        raise ConfigError(
            f"Unknown search.algorithm. Expected one of: {', '.join(METHODS)}. "
            f"Received: search.algorithm={name!r}"
        )
    return METHODS[name]


def require(name: str, what: str | None = None) -> None:
    """Refuses, before any work, a method whose extra is not installed.

    Raises:
        MissingExtraError: "the algorithm pymoo-nsga2 needs the 'peer' extra: ...".
    """
    method = get(name)
    if method.extra is not None:
        require_extra(method.extra, what or f"the algorithm {name}", *method.modules)


def run(config, prepared, context: RunContext | None = None):
    """Runs the config's method (``search.algorithm``) on a prepared model: its ``RunResult``."""
    require(config.search.algorithm)
    return get(config.search.algorithm).run(config, prepared, context or RunContext())


def sections() -> dict[str, type]:
    """The config tables the methods declare, ``name -> class`` (e.g. ``gmp``)."""
    return {m.table_name: m.section for m in METHODS.values() if m.section is not None}
