"""The prune target: which kernels of a model are pruned, and what each belongs to.

A pruned *kernel* is one weight tensor of one layer: the kernel of a Dense, Conv1D/2D/3D,
DepthwiseConv1D/2D or Conv1D/2D/3DTranspose layer, or either kernel of a SeparableConv1D/2D
layer (named ``layer/depthwise`` and ``layer/pointwise``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from evoprune.errors import ConfigError, ModelError

LAYER_SETS = ("head", "dense", "all")
ARGMAX_KEEPING = ("linear", "softmax")  # output activations whose argmax is the logits' argmax
PROBABILITY_OUTPUTS = ("softmax", "sigmoid")  # outputs a loss must read as probabilities, not logits
PARTS = {"depthwise": "depthwise_kernel", "pointwise": "pointwise_kernel"}  # a separable layer's kernels
KINDS_TEXT = "Dense, Conv1D/2D/3D, DepthwiseConv, SeparableConv or ConvTranspose"


@dataclass(frozen=True)
class PrunedLayer:
    """One pruned kernel.

    Attributes:
        name: the kernel's name: the Keras layer name, or ``layer/depthwise`` and
            ``layer/pointwise`` for the two kernels of a separable convolution.
        index: its layer's position in ``model.layers``.
        kind: ``dense``, ``conv2d``, ``depthwise_conv2d``, ``separable_conv2d/depthwise``,
            ``conv2d_transpose``, ... (``conv1d`` and ``conv3d`` alike).
        kernel: the trained kernel (float32).
        bias: the bias added after this kernel, or ``None`` (a layer without one, or a
            separable layer's depthwise kernel).
        activation: the activation applied after this kernel (``linear`` for a separable
            layer's depthwise kernel).
        attribute: the layer attribute holding the kernel's variable (``kernel``,
            ``depthwise_kernel`` or ``pointwise_kernel``).
    """

    name: str
    index: int
    kind: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    attribute: str = "kernel"

    @property
    def layer_name(self) -> str:
        """The Keras layer the kernel belongs to."""
        return self.name.split("/")[0] if self.attribute != "kernel" else self.name


@dataclass(frozen=True)
class PruneTarget:
    """The pruned kernels of one model.

    Attributes:
        layers: the pruned kernels, in model order (a separable layer's depthwise kernel
            before its pointwise one).
        output_activation: activation of the model's output layer.
        prefix_end: index in ``model.layers`` of the first pruned layer.
        n_layers: ``len(model.layers)``.
        skipped: layers with weights that ``all`` leaves alone, each ``"name (reason)"``.
    """

    layers: tuple[PrunedLayer, ...]
    output_activation: str
    prefix_end: int
    n_layers: int
    skipped: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def indices(self) -> list[int]:
        """Position in ``model.layers`` of each pruned kernel's layer (repeated for a separable one)."""
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
        """One pruned kernel, the model's final Dense, whose activation keeps the argmax.

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

    def variables(self, model) -> list:
        """The Keras variable of each pruned kernel in ``model`` (or a clone of it)."""
        return [getattr(model.layers[layer.index], layer.attribute) for layer in self.layers]

    def weight_positions(self, model) -> list[int]:
        """Where each pruned kernel sits in ``model.get_weights()``."""
        position = {id(v): i for i, v in enumerate(model.weights)}
        return [position[id(v)] for v in self.variables(model)]

    def kept_fractions(self, masks: Sequence[np.ndarray]) -> dict[str, float]:
        """Share of each kernel's nonzero weights a mask keeps, by kernel name."""
        out = {}
        for layer, mask in zip(self.layers, masks):
            nonzero = layer.kernel != 0
            out[layer.name] = float((np.asarray(mask, dtype=bool) & nonzero).sum() / max(nonzero.sum(), 1))
        return out


def model_input(model, x):
    """``x`` in the structure ``model`` was built with: ``[x]`` for ``keras.Model([inputs], ...)``.

    Calling such a model with a bare tensor works but makes Keras warn that the structure
    of the inputs does not match.
    """
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        return type(struct)([x])
    if isinstance(struct, dict) and len(struct) == 1:
        return {next(iter(struct)): x}
    return x


def check_classifier(model, source: str) -> None:
    """Checks that ``model`` is a built ``keras.Model`` of one input and one ``(batch, classes)``
    output tensor (not a dict of them).

    Raises:
        ModelError: naming ``source`` (a file, or ``the model given``) and what was found.
    """
    import keras

    if isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"Expected a keras.Model; a model file goes in model_file=. Received: {str(model)!r}"
        )
    if not isinstance(model, keras.Model):
        raise ModelError(f"Expected a keras.Model. Received: {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):  # a Sequential never built on an input, a subclassed model
        inputs = outputs = None
    try:
        output = model.output  # a dict for keras.Model(x, {"logits": ...})
    except (AttributeError, ValueError):  # a Sequential never called, whose outputs are known
        output = None
    if not inputs or not outputs:
        raise ModelError(
            "Expected a model with a defined input (keras.Input(shape) as its first layer). "
            f"Received: {source} ({type(model).__name__} {model.name!r}) has no inputs yet"
        )
    if isinstance(output, dict) or len(inputs) != 1 or len(outputs) != 1 or len(outputs[0].shape) != 2:
        found = {k: tuple(v.shape) for k, v in output.items()} if isinstance(output, dict) else None
        raise ModelError(
            f"Expected a classifier with one image input and one (batch, classes) output. "
            f"Received: {source} with inputs {[tuple(t.shape) for t in inputs]}, "
            f"outputs {found or [tuple(t.shape) for t in outputs]}"
        )


def kernel_variable(model, name: str):
    """The variable of the kernel called ``name`` (``layer`` or ``layer/depthwise``) in ``model``."""
    layer, _, part = name.partition("/")
    return getattr(model.get_layer(layer), PARTS[part] if part else "kernel")


def activation_name(layer) -> str:
    """The name of a layer's activation (``linear`` when it has none; a Softmax layer is ``softmax``)."""
    if type(layer).__name__ == "Softmax":
        return "softmax"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", "linear") if fn is not None else "linear"


def layer_kind(layer) -> str | None:
    """``dense``, ``conv2d``, ``depthwise_conv2d``, ``separable_conv2d``, ``conv2d_transpose``, ...

    ``None`` for a layer without a kernel evoprune prunes.
    """
    import keras

    L = keras.layers
    families = (
        ((L.Dense,), "dense"),
        ((L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose), "conv{}d_transpose"),
        ((L.DepthwiseConv1D, L.DepthwiseConv2D), "depthwise_conv{}d"),
        ((L.SeparableConv1D, L.SeparableConv2D), "separable_conv{}d"),
        ((L.Conv1D, L.Conv2D, L.Conv3D), "conv{}d"),
    )
    for classes, kind in families:
        if isinstance(layer, classes):
            return kind.format(getattr(layer, "rank", 2))
    return None


def kernels_of(layer, index: int) -> list[PrunedLayer]:
    """The prunable kernels of one layer (two for a separable convolution, else one)."""
    kind = layer_kind(layer)
    bias = getattr(layer, "bias", None)
    bias = None if bias is None else _array(bias)
    if kind is None:
        return []
    if kind.startswith("separable"):
        return [
            PrunedLayer(f"{layer.name}/depthwise", index, f"{kind}/depthwise", _array(layer.depthwise_kernel),
                        None, "linear", PARTS["depthwise"]),
            PrunedLayer(f"{layer.name}/pointwise", index, f"{kind}/pointwise", _array(layer.pointwise_kernel),
                        bias, activation_name(layer), PARTS["pointwise"]),
        ]  # fmt: skip
    return [PrunedLayer(layer.name, index, kind, _array(layer.kernel), bias, activation_name(layer))]


def _array(variable) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)


def skipped_layers(model) -> list[str]:
    """Layers holding weights that no layer set prunes, each as ``"name (reason)"``."""
    import keras

    out = []
    for layer in model.layers:
        if layer_kind(layer) is not None or not layer.weights:
            continue
        if isinstance(layer, keras.Model):
            out.append(f"{layer.name} (a nested model: its layers are not searched)")
        elif any(_is_kernel(v) for v in layer.weights):
            out.append(f"{layer.name} ({type(layer).__name__}: not a kernel evoprune prunes)")
    return out


def _is_kernel(variable) -> bool:
    """A weight matrix or tensor (not a normalisation's scale, offset or statistics)."""
    name = getattr(variable, "name", "").split("/")[-1]
    return "kernel" in name or name in ("embeddings", "w", "weight", "weights")


def _pick(model, layers: str | Sequence[str]) -> list[PrunedLayer]:
    found = [k for i, layer in enumerate(model.layers) for k in kernels_of(layer, i)]
    if isinstance(layers, str):
        if layers not in LAYER_SETS:
            raise ConfigError(
                f"Unknown search.layers. Expected one of: {', '.join(LAYER_SETS)} or a "
                f"list of layer names. Received: search.layers={layers!r}"
            )
        dense = [k for k in found if k.kind == "dense"]
        picked = {"head": dense[-1:], "dense": dense, "all": found}[layers]
        if not picked:
            kinds = "a Dense" if layers != "all" else f"a {KINDS_TEXT}"
            raise ModelError(
                f"Model has no layer to prune. Expected {kinds} layer. Received: layers={layers!r}"
            )
        return picked
    names = {layer.name for layer in model.layers}
    picked = []
    for name in layers:
        chosen = [k for k in found if name in (k.name, k.layer_name)]
        if not chosen and name in names:
            raise ConfigError(f"Layer has no prunable kernel ({KINDS_TEXT}). Received: {name!r}")
        own = [k.name for k in found if k.layer_name == name.split("/")[0]]
        if not chosen and own:  # 'dw1/depthwise' for a DepthwiseConv2D named dw1
            near = f" Did you mean {own[0]!r}?" if len(own) == 1 else ""
            raise ConfigError(
                f"Unknown kernel in search.layers. Expected one of: {', '.join(own)} (the kernels "
                f"of layer {own[0].split('/')[0]!r}).{near} Received: {name!r}"
            )
        if not chosen:
            raise ConfigError(
                f"Unknown layer in search.layers. Expected one of: "
                f"{', '.join(dict.fromkeys(k.layer_name for k in found))}. Received: {name!r}"
            )
        picked += chosen
    if not picked:
        raise ConfigError("Expected at least one layer name. Received: search.layers=[]")
    chosen_ids = {id(k) for k in picked}
    return [k for k in found if id(k) in chosen_ids]  # model order, each kernel once


def select_layers(model, layers: str | Sequence[str]) -> list[int]:
    """Indices in ``model.layers`` of the layers holding the pruned kernels (each once).

    Args:
        layers: ``head`` (the last Dense), ``dense`` (every Dense), ``all`` (every kernel
            of a Dense, convolution, depthwise, separable or transposed convolution) or a
            list of layer names (``sep`` for both kernels of a separable layer,
            ``sep/depthwise`` or ``sep/pointwise`` for one).

    Raises:
        ModelError: the model has no such layer.
        ConfigError: a named layer is missing or has no prunable kernel.
    """
    return sorted({k.index for k in _pick(model, layers)})


def build_target(model, layers: str | Sequence[str] = "head") -> PruneTarget:
    """The :class:`PruneTarget` of ``model`` for a ``search.layers`` setting."""
    pruned = _pick(model, layers)
    return PruneTarget(
        tuple(pruned),
        activation_name(model.layers[-1]),
        min(k.index for k in pruned),
        len(model.layers),
        tuple(skipped_layers(model)) if layers == "all" else (),
    )
