"""The prune target: which layers of a model are pruned, their kernels, and where the unpruned prefix ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, cast

import numpy as np

from evoprune.errors import ConfigError, ModelError

LAYER_SETS = ("head", "dense", "all")
ARGMAX_KEEPING = ("linear", "softmax")  # output activations whose argmax is the logits' argmax
PROBABILITY_OUTPUTS = ("softmax", "sigmoid")  # outputs a loss must read as probabilities, not logits


@dataclass(frozen=True)
class PrunedLayer:
    """One pruned layer.

    Attributes:
        name: the Keras layer name.
        index: its position in ``model.layers``.
        kind: ``dense`` or ``conv2d``.
        kernel: the trained kernel (float32).
        bias: the trained bias, or ``None`` for a layer without one.
        activation: the layer's activation name (``linear``, ``relu``, ``softmax``, ...).
    """

    name: str
    index: int
    kind: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str


@dataclass(frozen=True)
class PruneTarget:
    """The pruned layers of one model and how the rest of the model relates to them.

    Attributes:
        layers: the pruned layers, in model order.
        output_activation: activation of the model's output layer.
        prefix_end: index in ``model.layers`` of the first pruned layer: everything before
            it is unpruned, so its activations can be computed once.
        chain: True when calling ``model.layers`` one after the other is the model
            (Sequential, or a functional model without branches).
    """

    layers: tuple[PrunedLayer, ...]
    output_activation: str
    prefix_end: int
    chain: bool
    n_layers: int

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def indices(self) -> list[int]:
        return [layer.index for layer in self.layers]

    @property
    def kernels(self) -> list[np.ndarray]:
        return [layer.kernel for layer in self.layers]

    @property
    def base_nonzero(self) -> int:
        """Nonzero weights of the unpruned kernels."""
        return int(sum(np.count_nonzero(k) for k in self.kernels))

    @property
    def head_only(self) -> bool:
        """One pruned layer, the model's final Dense, whose activation keeps the argmax.

        Then a population is scored as one matrix product on the features entering it
        (:class:`~evoprune.scoring.head.HeadScorer`), the activation dropped.
        """
        last = self.layers[-1]
        return (
            len(self.layers) == 1
            and last.kind == "dense"
            and last.index == self.n_layers - 1
            and last.activation in ARGMAX_KEEPING
        )

    @property
    def from_logits(self) -> bool:
        """Whether the model's outputs are logits (a loss for training must know)."""
        return self.output_activation not in PROBABILITY_OUTPUTS

    def kept_fractions(self, masks: Sequence[np.ndarray]) -> dict[str, float]:
        """Share of each layer's nonzero weights a mask keeps, by layer name."""
        out = {}
        for layer, mask in zip(self.layers, masks):
            nonzero = layer.kernel != 0
            out[layer.name] = float((np.asarray(mask, dtype=bool) & nonzero).sum() / max(nonzero.sum(), 1))
        return out


def activation_name(layer) -> str:
    """The name of a layer's activation (``linear`` when it has none; a Softmax layer is ``softmax``)."""
    if type(layer).__name__ == "Softmax":
        return "softmax"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", "linear") if fn is not None else "linear"


def _kind(layer) -> str | None:
    import keras

    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d"
    return None


def _is_chain(model) -> bool:
    """True when the model's layers, called in order, are the model."""
    import keras

    if isinstance(model, keras.Sequential):
        return True
    ops = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(model.inputs) != 1 or len(model.outputs) != 1 or not ops:
        return False
    try:
        links = [ops[0].input is model.inputs[0], ops[-1].output is model.outputs[0]]
        links += [b.input is a.output for a, b in zip(ops, ops[1:])]
    except (AttributeError, ValueError):  # a layer used at several places
        return False
    return all(links)


def select_layers(model, layers: str | Sequence[str]) -> list[int]:
    """Indices in ``model.layers`` of the pruned layers.

    Args:
        layers: ``head`` (the last Dense), ``dense`` (every Dense), ``all`` (every Dense and
            Conv2D kernel) or a list of layer names.

    Raises:
        ModelError: the model has no such layer.
        ConfigError: a named layer is missing or has no prunable kernel.
    """
    prunable = [i for i, layer in enumerate(model.layers) if _kind(layer)]
    if isinstance(layers, str):
        if layers not in LAYER_SETS:
            raise ConfigError(
                f"Unknown search.layers. Expected one of: {', '.join(LAYER_SETS)} or a "
                f"list of layer names. Received: search.layers={layers!r}"
            )
        dense = [i for i in prunable if _kind(model.layers[i]) == "dense"]
        found = {"head": dense[-1:], "dense": dense, "all": prunable}[layers]
        if not found:
            kinds = "a Dense" if layers != "all" else "a Dense or Conv2D"
            raise ModelError(
                f"Model has no layer to prune. Expected {kinds} layer. Received: layers={layers!r}"
            )
        return found
    by_name = {layer.name: i for i, layer in enumerate(model.layers)}
    found = []
    for name in layers:
        if name not in by_name:
            raise ConfigError(
                f"Unknown layer in search.layers. Expected one of: "
                f"{', '.join(model.layers[i].name for i in prunable)}. Received: {name!r}"
            )
        if by_name[name] not in prunable:
            raise ConfigError(f"Layer has no prunable kernel (Dense or Conv2D). Received: {name!r}")
        found.append(by_name[name])
    if not found:
        raise ConfigError("Expected at least one layer name. Received: search.layers=[]")
    return sorted(set(found))


def build_target(model, layers: str | Sequence[str] = "head") -> PruneTarget:
    """The :class:`PruneTarget` of ``model`` for a ``search.layers`` setting."""
    indices = select_layers(model, layers)
    pruned = []
    for i in indices:
        layer = model.layers[i]
        kernel = np.asarray(
            layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel, dtype=np.float32
        )
        bias = getattr(layer, "bias", None)
        bias = (
            None
            if bias is None
            else np.asarray(bias.numpy() if hasattr(bias, "numpy") else bias, dtype=np.float32)
        )
        kind = cast(str, _kind(layer))  # select_layers returns Dense and Conv2D layers only
        pruned.append(PrunedLayer(layer.name, i, kind, kernel, bias, activation_name(layer)))
    return PruneTarget(
        tuple(pruned), activation_name(model.layers[-1]), min(indices), _is_chain(model), len(model.layers)
    )
