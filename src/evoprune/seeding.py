"""One seeding function per run: Python, NumPy and Keras/TensorFlow generators."""

from __future__ import annotations

import random

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
