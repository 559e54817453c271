"""Shrink a pruned chain model: drop dead units and filters, fold their constants into biases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evoprune.errors import ModelError, plural

PASSTHROUGH = (
    "InputLayer",
    "Flatten",
    "AveragePooling2D",
    "MaxPooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Activation",
    "ReLU",
    "Dropout",
)


@dataclass
class _Stage:
    """One Dense or Conv2D layer and the weight-free layers that follow it."""

    layer: Any  # a keras.layers.Dense or Conv2D
    kernel: np.ndarray
    bias: np.ndarray
    after: list = field(default_factory=list)
    alive: np.ndarray = None  # type: ignore[assignment]  # always given: _stage() sets it

    @property
    def conv(self) -> bool:
        return self.kernel.ndim == 4

    def incoming(self) -> np.ndarray:
        """Per output unit: does any kept weight reach it?"""
        return np.any(self.kernel != 0, axis=tuple(range(self.kernel.ndim - 1)))


def shrink_model(model, masks: dict | None = None):
    """A narrower model with the same predictions as ``model`` with ``masks`` applied.

    Units (Dense) and filters (Conv2D) whose incoming weights are all pruned output a
    constant, ``act(bias)``; it passes through pooling, activation and flatten layers
    unchanged per channel and is folded into the next layer's bias, then the unit goes.
    Units whose outgoing weights are all pruned go too. Repeated until nothing changes.
    The model's inputs and outputs keep their shapes. A dead filter feeding a Conv2D
    with ``"same"`` padding is kept unless its constant is 0 (the border sees padding).

    Args:
        model: a Keras model whose layers form one chain of Conv2D, Dense, pooling,
            Flatten, Activation, ReLU and Dropout layers.
        masks: layer name -> boolean kernel mask (True = kept); other layers keep their
            weights, whose zeros count as pruned.

    Returns:
        A new ``keras.Sequential`` model (uncompiled), layer names kept.

    Raises:
        ModelError: an unsupported layer, a branch, or a mask of the wrong shape.
    """
    stages, lead = _stages(model, masks or {})
    changed = True
    while changed:
        changed = False
        for before, after in zip(stages, stages[1:]):
            changed |= _fold_dead(before, after)
            changed |= _drop_unused(before, after)
    return _rebuild(model, stages, lead)


def _stages(model, masks: dict):
    import keras

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    _check_chain(model, layers)
    stages: list[_Stage] = []
    lead: list = []
    for layer in layers:
        kind = type(layer).__name__
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)) and kind in ("Dense", "Conv2D"):
            stages.append(_stage(layer, masks.get(layer.name)))
        elif kind in PASSTHROUGH:
            (stages[-1].after if stages else lead).append(layer)
        else:
            raise ModelError(
                f"Expected Conv2D, Dense, pooling, Flatten, Activation or Dropout "
                f"layers to shrink. Received: layer={layer.name!r} ({kind})"
            )
    unknown = set(masks) - {s.layer.name for s in stages}
    if unknown:
        raise ModelError(f"Expected masks for Dense or Conv2D layers. Received: masks for {sorted(unknown)}")
    if not stages:
        raise ModelError(f"Expected a Dense or Conv2D layer to shrink. Received: model={model.name!r}")
    return stages, lead


def _stage(layer, mask) -> _Stage:
    kernel = np.array(layer.kernel.numpy(), dtype=np.float32)
    if layer.__class__.__name__ == "Conv2D" and (layer.groups != 1 or layer.data_format != "channels_last"):
        raise ModelError(f"Expected a channels_last Conv2D without groups. Received: layer={layer.name!r}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != kernel.shape:
            raise ModelError(
                f"Expected a mask of shape {kernel.shape} for layer {layer.name!r}. "
                f"Received: shape={mask.shape}"
            )
        kernel = np.where(mask, kernel, np.float32(0))
    bias = (
        np.array(layer.bias.numpy(), dtype=np.float32)
        if layer.use_bias
        else np.zeros(kernel.shape[-1], np.float32)
    )
    return _Stage(layer, kernel, bias, alive=np.ones(kernel.shape[-1], dtype=bool))


def _check_chain(model, layers: list) -> None:
    """Each layer must take the previous layer's output (one chain, no branches)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"Expected a model with one input and one output. Received: model={model.name!r}")
    import keras

    if isinstance(model, keras.Sequential):
        return  # a chain by construction (its layers may have extra nodes from sub-models)
    previous = model.inputs[0]
    for layer in layers:
        try:
            chained = layer.input is previous
        except (AttributeError, ValueError):  # a layer called more than once
            chained = False
        if not chained:
            raise ModelError(
                f"Expected a chain of layers. Received: layer={layer.name!r} "
                f"does not take the previous layer's output"
            )
        previous = layer.output


def _channel_of_rows(before: _Stage, after: _Stage) -> np.ndarray:
    """Which unit of ``before`` feeds each input row (Dense) or in-channel (Conv2D) of ``after``."""
    n_in = after.kernel.shape[-2]
    channels = before.kernel.shape[-1]
    if n_in % channels:
        raise ModelError(
            f"Expected layer {after.layer.name!r} to read whole channels of "
            f"{before.layer.name!r}. Received: {plural(n_in, 'input')} for {plural(channels, 'channel')}"
        )
    return np.arange(n_in) % channels  # channels_last flatten: index = position * C + channel


def _constants(before: _Stage, after: _Stage) -> np.ndarray:
    """What reaches ``after``'s inputs when every unit of ``before`` is constant ``act(bias)``."""
    shape = tuple(int(d) for d in before.layer.output.shape[1:])
    value = np.asarray(before.layer.activation(before.bias[None]), dtype=np.float32)[0]
    x = np.broadcast_to(value, (1,) + shape).astype(np.float32)
    for layer in before.after:
        x = np.asarray(layer(x, training=False))
    return x[0]


def _fold_dead(before: _Stage, after: _Stage) -> bool:
    """Folds the units of ``before`` that no weight reaches into ``after``'s bias."""
    dead = _spare_one(before.alive & ~before.incoming(), before.alive)
    if not dead.any():
        return False
    x = _constants(before, after)
    rows = _channel_of_rows(before, after)
    if after.conv:
        per_channel = x.reshape(-1, x.shape[-1])
        constant = np.all(per_channel == per_channel[:1], axis=0)
        value = per_channel[0]
        if after.layer.padding != "valid":
            constant &= value == 0
        dead &= constant
        if not dead.any():
            return False
        after.bias += np.einsum(
            "c,hwco->o", np.where(dead, value, 0).astype(np.float32), after.kernel
        ).astype(np.float32)
        after.kernel[:, :, dead, :] = 0
    else:
        picked = dead[rows]
        after.bias += (x.reshape(-1)[picked] @ after.kernel[picked]).astype(np.float32)
        after.kernel[picked] = 0
    before.alive &= ~dead
    before.kernel[..., dead] = 0
    before.bias[dead] = 0
    return True


def _spare_one(remove: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """``remove``, less one unit when it would empty the layer (Keras layers need a unit)."""
    if (alive & ~remove).any() or not remove.any():
        return remove
    remove = remove.copy()
    remove[np.flatnonzero(remove)[0]] = False
    return remove


def _drop_unused(before: _Stage, after: _Stage) -> bool:
    """Removes the units of ``before`` whose outgoing weights into ``after`` are all zero."""
    rows = _channel_of_rows(before, after)
    axes = (0, 1, 3) if after.conv else (1,)
    used_rows = np.any(after.kernel != 0, axis=axes)
    used = np.zeros(before.kernel.shape[-1], dtype=bool)
    np.logical_or.at(used, rows, used_rows)
    unused = _spare_one(before.alive & ~used, before.alive)
    if not unused.any():
        return False
    before.alive &= ~unused
    before.kernel[..., unused] = 0
    return True


def _rebuild(model, stages: list[_Stage], lead: list):
    import keras

    layers = [keras.Input(shape=model.inputs[0].shape[1:])]
    layers += [type(layer).from_config(layer.get_config()) for layer in lead]
    weights = []
    previous = None
    for stage in stages:
        config = stage.layer.get_config()
        config["units" if "units" in config else "filters"] = int(stage.alive.sum())
        config["use_bias"] = True
        kernel = stage.kernel[..., stage.alive]
        if previous is not None:
            keep = previous.alive[_channel_of_rows(previous, stage)]
            kernel = kernel[:, :, keep, :] if stage.conv else kernel[keep]
        layers.append(type(stage.layer).from_config(config))
        weights.append((len(layers) - 1, [kernel, stage.bias[stage.alive]]))
        layers += [type(layer).from_config(layer.get_config()) for layer in stage.after]
        previous = stage
    shrunk = keras.Sequential(layers, name=f"{model.name}_shrunk")
    for position, values in weights:
        shrunk.layers[position - 1].set_weights(values)  # Sequential.layers excludes the Input
    return shrunk
