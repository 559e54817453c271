"""Built-in architectures: the notebook's CNN and the LeNets of Han et al. 2015, sized from the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from evoprune.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    """A built-in network.

    Attributes:
        layers: ``(input_shape, n_classes) -> list of Keras layers`` (without the Input).
        min_side: the smallest image height and width it accepts.
        summary: one line for the docs and errors.
    """

    layers: Callable
    min_side: int
    summary: str


def _paper_cnn(input_shape, n_classes):
    import keras

    L = keras.layers
    return [
        L.Conv2D(3, (3, 3), activation="swish"),
        L.AveragePooling2D((2, 2)),
        L.Conv2D(6, (3, 3), activation="swish"),
        L.AveragePooling2D((2, 2)),
        L.Flatten(),
        L.Dense(n_classes),
    ]


def _lenet_300_100(input_shape, n_classes):
    import keras

    L = keras.layers
    return [
        L.Flatten(),
        L.Dense(300, activation="relu", name="fc1"),
        L.Dense(100, activation="relu", name="fc2"),
        L.Dense(n_classes, name="fc3"),
    ]


def _lenet_5(input_shape, n_classes):
    import keras

    L = keras.layers  # Caffe's LeNet as pruned by Han et al.: no activation on the convolutions
    return [
        L.Conv2D(20, (5, 5), name="conv1"),
        L.MaxPooling2D((2, 2), name="pool1"),
        L.Conv2D(50, (5, 5), name="conv2"),
        L.MaxPooling2D((2, 2), name="pool2"),
        L.Flatten(),
        L.Dense(500, activation="relu", name="fc1"),
        L.Dense(n_classes, name="fc2"),
    ]


ARCHITECTURES: dict[str, Architecture] = {
    "paper-cnn": Architecture(
        _paper_cnn,
        10,
        "the notebook's CNN: conv 3@3x3 swish, avg-pool, conv 6@3x3 "
        "swish, avg-pool, dense (150x10 head on 28x28)",
    ),
    "lenet-300-100": Architecture(_lenet_300_100, 1, "Han et al.'s MLP: 784-300-100-10 on 28x28 (relu)"),
    "lenet-5": Architecture(
        _lenet_5,
        16,
        "Han et al.'s (Caffe) LeNet-5: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 500 relu, fc 10",
    ),
}


def check_input(name: str, input_shape: tuple[int, ...]) -> None:
    """Raises ConfigError when architecture ``name`` cannot take images of ``input_shape``."""
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"Unknown model.architecture. Expected one of: {', '.join(ARCHITECTURES)}. "
            f"Received: model.architecture={name!r}"
        )
    side = ARCHITECTURES[name].min_side
    if min(input_shape[:2]) < side:
        raise ConfigError(
            f"Architecture {name!r} needs images of at least {side}x{side}. "
            f"Received: images of shape {tuple(input_shape)}"
        )


def build(name: str, input_shape: tuple[int, ...], n_classes: int):
    """An uncompiled Keras Sequential model of architecture ``name`` for this data."""
    import keras

    check_input(name, input_shape)
    return keras.Sequential(
        [keras.Input(shape=tuple(input_shape)), *ARCHITECTURES[name].layers(input_shape, n_classes)]
    )
