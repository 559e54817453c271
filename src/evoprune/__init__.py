"""evoprune: prune neural network weights with evolutionary algorithms (DEAP + Keras 3).

``import evoprune`` is cheap: the API (and TensorFlow) load on first use of a name below.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evoprune")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_API = (
    "PruneResult",
    "Trained",
    "bench",
    "choices",
    "compare",
    "evaluate",
    "export",
    "load_config",
    "load_data",
    "load_run",
    "load_summary",
    "model_kind",
    "prune",
    "train",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module("evoprune.api"), name)
    raise AttributeError(f"module 'evoprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
