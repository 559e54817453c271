"""Scoring pruned layers inside a model: the layers from the first pruned one on, compiled once."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from evoprune.models.target import PruneTarget

ROWS = 1024  # feature rows per compiled call (at most; on an idle 2-core CPU 1,024 rows and
# 64 MiB beat 256 rows and 8 MiB by 10-25% on every target of benchmarks.targets)
MEMORY = 2**26  # bytes of the largest activation of one call: individuals share a call below it
#                   (measured: stacking helps small convolutions, slows LeNet-5's; XLA slower on CPU)
MAX_CHUNK = 4  # individuals per call (at most; 4 measured faster than 1 or 8 on a 2-core CPU)
PASS_THROUGH = (
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)  # identity at inference
LAYER_OPS = (
    "Dense",
    "Conv2D",
    "Flatten",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling2D",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "BatchNormalization",
    "Reshape",
    "Rescaling",
    "InputLayer",
    "ZeroPadding2D",
) + PASS_THROUGH


def unsupported_layers(model, start: int) -> list[str]:
    """Names of the layers from ``start`` on that :class:`SuffixScorer` cannot run."""
    return [
        f"{layer.name} ({type(layer).__name__})"
        for layer in model.layers[start:]
        if type(layer).__name__ not in LAYER_OPS
        or (type(layer).__name__ == "Conv2D" and getattr(layer, "groups", 1) != 1)
        or (type(layer).__name__ == "Dense" and len(layer.input.shape) != 2)
        or getattr(layer, "data_format", "channels_last") != "channels_last"
    ]


def supports(model, target: PruneTarget) -> bool:
    """Whether :class:`SuffixScorer` can score this target (a chain of known layer types)."""
    return target.chain and not unsupported_layers(model, target.prefix_end)


class SuffixScorer:
    """Correct predictions of a model's suffix under many masks, one compiled graph per block.

    The layers from the first pruned one on (``model.layers[target.prefix_end:]``) are traced
    once into a TensorFlow graph whose arguments are a block of feature rows and the masks
    of a chunk of individuals: each pruned kernel is ``where(mask, kernel, 0)`` inside the
    graph, every other weight is a constant. The individuals ride on the batch axis: the
    first pruned layer computes all of them with one matrix product on the shared
    features (the kernels side by side); after it the activations are ``(P * rows, ...)``
    and each later pruned Dense is one batched matrix product, each later pruned Conv2D
    one grouped convolution (individual ``p`` in channel group ``p``). Feature rows come in
    blocks of about ``rows`` (the last block padded,
    padding never counted). Inference semantics: Dropout is the identity,
    BatchNormalization uses its moving statistics.

    Predictions are the argmax of the model's own output (softmax kept) in float32, as
    ``model.evaluate`` computes it but in another summation order, so the two may differ
    on a row whose top two outputs lie within float32 rounding of each other
    (``benchmarks.targets`` reports how many masks differ; the tests find none).

    Args:
        model: the Keras model (a chain of layers).
        target: its prune target.
        features: ``(rows, ...)`` activations entering ``model.layers[target.prefix_end]``.
        labels: ``(rows,)`` integer labels.
        rows: feature rows per block (at most).
        memory: bytes of the largest activation of one call (sets the individuals per call).
    """

    def __init__(
        self, model, target: PruneTarget, features, labels, rows: int = ROWS, memory: int = MEMORY
    ) -> None:
        import tensorflow as tf

        missing = unsupported_layers(model, target.prefix_end)
        if not target.chain or missing:
            raise ValueError(
                f"Expected a chain of supported layers after the first pruned one. "
                f"Received: chain={target.chain}, unsupported={missing}"
            )
        features = np.asarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(features) != len(self.labels) or not len(features):
            raise ValueError(
                f"Expected one label per feature row (at least one). Received: "
                f"{len(features)} rows, {len(self.labels)} labels"
            )
        self.n = len(self.labels)
        self.shapes = [k.shape for k in target.kernels]
        self._layers = list(model.layers[target.prefix_end :])
        self._pruned = {layer.index - target.prefix_end: i for i, layer in enumerate(target.layers)}
        blocks = -(-self.n // rows)
        self.rows = -(-self.n // blocks)
        self.chunk = int(max(1, min(MAX_CHUNK, memory // (4 * self.rows * self._row_floats(features[:1])))))
        padded = np.zeros((blocks * self.rows,) + features.shape[1:], np.float32)
        padded[: self.n] = features
        labels = np.full(blocks * self.rows, -1, np.int64)
        labels[: self.n] = self.labels
        self._blocks = [
            (tf.constant(padded[i : i + self.rows]), tf.constant(labels[i : i + self.rows]))
            for i in range(0, len(padded), self.rows)
        ]
        self._kernels = [tf.constant(k) for k in target.kernels]
        self._biases = [None if layer.bias is None else tf.constant(layer.bias) for layer in target.layers]
        signature = [
            tf.TensorSpec((self.rows,) + features.shape[1:], tf.float32),
            tf.TensorSpec((self.rows,), tf.int64),
        ]
        signature += [tf.TensorSpec((None,) + shape, tf.bool) for shape in self.shapes]
        self._count = tf.function(self._block_correct, input_signature=signature)

    def _row_floats(self, row: np.ndarray) -> int:
        """Largest activation of one row and one individual, in floats."""
        h, largest = row, int(row.size)
        for layer in self._layers:
            h = np.asarray(layer(h, training=False))
            largest = max(largest, int(h.size))
        return largest

    def _block_correct(self, x, labels, *masks):
        """Correct predictions of one block of rows for each of a chunk of individuals."""
        import tensorflow as tf

        count = tf.shape(masks[0])[0]
        h = x
        for offset, layer in enumerate(self._layers):
            if offset in self._pruned:
                i = self._pruned[offset]
                kernels = tf.where(masks[i], self._kernels[i][None], tf.zeros_like(self._kernels[i])[None])
                h = _stacked_call(layer, h, kernels, self._biases[i], count, stacked=offset > 0)
            elif type(layer).__name__ not in PASS_THROUGH + ("InputLayer",):
                h = layer(h, training=False)
        outputs = tf.reshape(h, (count, self.rows, -1))
        predicted = tf.argmax(outputs, axis=2, output_type=tf.int64)
        return tf.reduce_sum(tf.cast(tf.equal(predicted, labels[None]), tf.int64), axis=1)

    def correct_counts(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """Correct predictions for each mask.

        Args:
            masks: one bool array ``(P, *kernel.shape)`` per pruned layer (a bare array
                when one layer is pruned).
        """
        masks = [np.asarray(m, dtype=bool) for m in (masks if isinstance(masks, list) else [masks])]
        if (
            len(masks) != len(self.shapes)
            or any(m.shape[1:] != s for m, s in zip(masks, self.shapes))
            or len({len(m) for m in masks}) != 1
        ):
            raise ValueError(
                f"Expected masks of shapes (P, *kernel) for kernels {self.shapes}. "
                f"Received: {[m.shape for m in masks]}"
            )
        counts = np.zeros(len(masks[0]), dtype=np.int64)
        for start in range(0, len(counts), self.chunk):
            chunk = [m[start : start + self.chunk] for m in masks]
            for x, y in self._blocks:
                counts[start : start + self.chunk] += self._count(x, y, *chunk).numpy()
        return counts


def _stacked_call(layer, h, kernels, bias, count, stacked: bool):
    """A Dense or Conv2D layer for ``count`` kernels at once.

    Args:
        h: the layer's input: shared ``(rows, ...)`` (``stacked`` False) or one slice per
            kernel, ``(count * rows, ...)``.
        kernels: ``(count, *kernel.shape)``.

    Returns:
        ``(count * rows, ...)``: the outputs of kernel 0, then kernel 1, ...
    """
    import tensorflow as tf

    outputs = kernels.shape[-1]
    if type(layer).__name__ == "Dense":
        depth = kernels.shape[1]
        if stacked:
            out = tf.matmul(tf.reshape(h, (count, -1, depth)), kernels)  # (count, rows, out)
        else:
            side = tf.reshape(tf.transpose(kernels, (1, 0, 2)), (depth, -1))  # (depth, count*out)
            out = tf.transpose(tf.reshape(h @ side, (-1, count, outputs)), (1, 0, 2))
        out = tf.reshape(out + bias if bias is not None else out, (-1, outputs))
        return layer.activation(out) if layer.activation is not None else out
    side = tf.reshape(
        tf.transpose(kernels, (1, 2, 3, 0, 4)),  # (kh, kw, C, count*out)
        tf.concat([tf.shape(kernels)[1:4], [-1]], axis=0),
    )
    if stacked:  # channels of individual p at [p*C, (p+1)*C): a grouped convolution
        shape = tf.shape(h)
        h = tf.reshape(
            tf.transpose(tf.reshape(h, tf.concat([[count, -1], shape[1:]], axis=0)), (1, 2, 3, 0, 4)),
            tf.concat([[-1], shape[1:3], [count * shape[3]]], axis=0),
        )
    out = tf.nn.conv2d(
        h,
        side,
        strides=(1, *layer.strides, 1),
        padding=layer.padding.upper(),
        dilations=(1, *layer.dilation_rate, 1),
    )  # (rows, oh, ow, count*out)
    shape = tf.shape(out)
    out = tf.reshape(out, tf.concat([shape[:3], [count, outputs]], axis=0))
    if bias is not None:
        out = out + bias
    out = tf.reshape(tf.transpose(out, (3, 0, 1, 2, 4)), tf.concat([[-1], shape[1:3], [outputs]], axis=0))
    return layer.activation(out) if layer.activation is not None else out
