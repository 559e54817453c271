"""Randomness: one seeding function for training, one pair of generators per search.

The design, in one place:

- Training (:func:`seed_everything`) seeds Python's, NumPy's and Keras' global generators.
- A layer's own seed generator (Dropout's) is seeded where the layer is built, from
  Python's generator as it is then (a model file loaded at any point of a process):
  :func:`seed_layer_generators` sets them all from a seed before a fit that must not
  depend on where the model came from.
- A search owns a :class:`SearchRandom` seeded from ``search.seed``: ``python`` (a
  ``random.Random``) takes every draw of the search, and ``numpy`` (a ``RandomState``) the
  draws of DEAP's ``selNSGA3``, the only NumPy draws of a search. evoprune's own operators,
  strategies and initializers get ``python`` passed in (``rng``; default: the ``random``
  module's functions, so ``random.seed`` pins them outside a search).
- DEAP's operators call the ``random`` and ``numpy.random`` modules' functions.
  :meth:`SearchRandom.bound` points the ``random`` and ``numpy`` names *inside DEAP's
  modules* at stand-ins that draw from the generators of the search running in the calling
  thread (other threads, and calls outside a search, reach the modules themselves). The
  stand-ins are removed when the last search of the process ends; the ``random`` and
  ``numpy`` modules are never changed, so other threads (Dask's, for example) cannot
  disturb a seeded search, nor a search them.
- Checkpoints save and restore exactly these two generators' states.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import threading
from typing import Any, Iterator

import numpy as np


def seed_everything(seed: int, tensorflow: bool = True) -> None:
    """Seeds Python's ``random``, NumPy's global generator and, optionally, Keras.

    With ``tensorflow=True`` it also turns on TensorFlow op determinism, so that the
    same seed trains bit-identical weights in two processes.
    """
    random.seed(seed)
    np.random.seed(seed)
    if tensorflow:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()


SEED_STATE = "seed_generator_state"  # the variable of every keras.random.SeedGenerator


def seed_layer_generators(model, seed: int) -> None:
    """Sets every layer seed generator of a Keras model (Dropout's, ...) from ``seed``.

    Each generator state becomes ``[s, 0]`` with ``s`` drawn from ``seed`` and the
    generator's position among the model's variables, so a fit that follows draws the
    same dropout masks in any process, whatever state the generators had (a layer picks
    its initial seed from Python's ``random`` when it is built or loaded).
    """
    weights = {id(w) for w in model.weights}
    states = [v for v in model.variables if id(v) not in weights and v.name == SEED_STATE]
    draws = np.random.default_rng(seed).integers(1, 10**9, size=len(states))
    for variable, draw in zip(states, draws):
        variable.assign(np.array([draw, 0], dtype=variable.dtype))


# DEAP modules that draw at module level, and the module names they draw through.
DEAP_MODULES = {
    "deap.algorithms": ("random",),
    "deap.tools.crossover": ("random",),
    "deap.tools.mutation": ("random",),
    "deap.tools.selection": ("random",),
    "deap.tools.emo": ("random", "numpy"),
}
_local = threading.local()
_lock = threading.Lock()
_users = 0
_originals: dict[tuple[str, str], Any] = {}


class _ThreadRandom:
    """Stands in for the ``random`` module inside DEAP: the calling thread's search generator."""

    def __getattr__(self, name: str) -> Any:
        search = getattr(_local, "search", None)
        return getattr(search.python if search is not None else random, name)


class _ThreadNumpy:
    """Stands in for ``numpy`` inside DEAP: ``numpy.random`` is the calling thread's search generator."""

    def __getattr__(self, name: str) -> Any:
        search = getattr(_local, "search", None)
        return search.numpy if name == "random" and search is not None else getattr(np, name)


_STAND_INS = {"random": _ThreadRandom(), "numpy": _ThreadNumpy()}


def _bind_deap() -> None:
    global _users
    with _lock:
        if _users == 0:
            for module_name, names in DEAP_MODULES.items():
                module = importlib.import_module(module_name)
                for name in names:
                    _originals[module_name, name] = getattr(module, name)
                    setattr(module, name, _STAND_INS[name])
        _users += 1


def _unbind_deap() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            for (module_name, name), original in _originals.items():
                setattr(importlib.import_module(module_name), name, original)
            _originals.clear()


class SearchRandom:
    """The generators of one search, both seeded with ``seed``.

    Attributes:
        python: ``random.Random``: every draw of the search (evoprune's and DEAP's).
        numpy: ``numpy.random.RandomState``: DEAP's NumPy draws (``selNSGA3`` only).
    """

    def __init__(self, seed: int) -> None:
        self.python = random.Random(seed)
        self.numpy = np.random.RandomState(seed)

    @contextlib.contextmanager
    def bound(self) -> Iterator[SearchRandom]:
        """DEAP's module-level draws from this thread use these generators inside the context."""
        _bind_deap()
        previous = getattr(_local, "search", None)
        _local.search = self
        try:
            yield self
        finally:
            _local.search = previous
            _unbind_deap()
