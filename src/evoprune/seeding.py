"""One seeding function per run: Python, NumPy and Keras/TensorFlow generators."""

from __future__ import annotations

import contextlib
import random
import threading
from typing import Iterator

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


_local = threading.local()
_installed = False
_NAMES = ("random", "uniform", "randint", "randrange", "choice", "choices", "sample", "shuffle",
          "gauss", "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate",
          "gammavariate", "betavariate", "paretovariate", "weibullvariate", "triangular",
          "getrandbits", "randbytes", "seed", "getstate", "setstate", "binomialvariate")


def _install() -> None:
    """Makes the ``random`` module's functions dispatch to a per-thread generator when set.

    Threads without a private generator keep using the module's default one, unchanged.
    """
    global _installed
    if _installed:
        return
    for name in _NAMES:
        default = getattr(random, name, None)
        if default is None:
            continue

        def dispatch(*args, _name=name, _default=default, **kwargs):
            generator = getattr(_local, "generator", None)
            return getattr(generator, _name)(*args, **kwargs) if generator else _default(*args, **kwargs)

        dispatch.__doc__ = default.__doc__
        setattr(random, name, dispatch)
    _installed = True


@contextlib.contextmanager
def private_random(seed: int) -> Iterator[random.Random]:
    """Python's ``random`` functions called from this thread use a private, seeded generator.

    DEAP's operators call the module-level ``random`` functions. In a Dask worker other
    threads of the same process draw from that generator too (timeouts, work stealing),
    which would make a seeded search depend on them; inside this context they cannot.
    """
    _install()
    previous = getattr(_local, "generator", None)
    _local.generator = random.Random(seed)
    try:
        yield _local.generator
    finally:
        _local.generator = previous
