"""Scoring pruned kernels anywhere in a Keras model: what they cannot change runs once.

A Keras functional model (Sequential included) is a graph of layer calls. For a set of
pruned kernels the graph splits in two:

* *clean* nodes: no pruned kernel lies upstream of them, so their outputs are the same
  for every mask. The clean tensors that feed the rest (the *cut*) are computed once, for
  every image, and kept (when they fit in ``cache_bytes``; otherwise the cut is the
  model's input and the clean nodes run once per call, shared by its individuals);
* *dirty* nodes: the pruned layers and everything downstream of them (skips, Add,
  Concatenate, Multiply, BatchNormalization, pooling, ...). They are traced once into a
  TensorFlow graph whose arguments are a block of cut rows and the masks of a chunk of
  individuals; each pruned kernel is ``where(mask, kernel, 0)`` inside the graph,
  substituted for the layer's variable (a Keras ``StatelessScope``), so every layer runs
  its own Keras code at inference (Dropout the identity, BatchNormalization on its moving
  statistics).

A model that is not a graph (a subclassed model) runs whole, still traced once with the
masks as arguments (:attr:`GraphScorer.whole_model`).

Predictions are the argmax of the model's output in float32, as ``model.evaluate``
computes them, though in blocks of ``rows`` images rather than its batches: the two may
differ on a row whose top two outputs lie within float32 rounding of each other
(``benchmarks.targets`` reports how many masks differ; the tests find none).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from evoprune.models.target import PruneTarget, model_input

ROWS = 1024  # image rows per compiled call (at most)
MEMORY = 2**26  # bytes of the dirty activations of one individual and block above which a
#                 call holds one individual (below: up to MAX_CHUNK share a call)
MAX_CHUNK = 4  # individuals per call (at most)
CACHE_BYTES = 2**29  # the cut is cached for every row when it takes at most this many bytes


class Graph:
    """The nodes of a functional model in execution order, split by a set of pruned layers.

    Args:
        model: a Keras functional or Sequential model (built).
        pruned: the layers whose kernels are pruned.

    Raises:
        ValueError: the model has no graph to walk (subclassed), or more than one input
            or output.
    """

    def __init__(self, model, pruned: Sequence) -> None:
        import keras

        graph = model._functional if isinstance(model, keras.Sequential) else model
        nodes_by_depth = getattr(graph, "_nodes_by_depth", None)
        if not isinstance(graph, keras.Model) or nodes_by_depth is None:
            raise ValueError(f"Expected a functional or Sequential model. Received: {type(model).__name__}")
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ValueError(
                f"Expected one input and one output. Received: {len(graph.inputs)} inputs, "
                f"{len(graph.outputs)} outputs"
            )
        self.input, self.output = graph.inputs[0], graph.outputs[0]
        self.nodes = [
            node
            for depth in sorted(nodes_by_depth, reverse=True)
            for node in nodes_by_depth[depth]
            if node.operation is not None and not node.is_input
        ]
        pruned_ids = {id(layer) for layer in pruned}
        dirty: set[int] = set()  # ids of dirty tensors
        self.dirty_nodes = []
        for node in self.nodes:
            if id(node.operation) in pruned_ids or any(id(x) in dirty for x in node.input_tensors):
                dirty.update(id(x) for x in node.outputs)
                self.dirty_nodes.append(node)
        self.dirty = dirty
        dirty_ids = {id(node) for node in self.dirty_nodes}
        self.clean_nodes = [node for node in self.nodes if id(node) not in dirty_ids]
        frontier = {id(x): x for node in self.dirty_nodes for x in node.input_tensors if id(x) not in dirty}
        if id(self.output) not in dirty:
            frontier[id(self.output)] = self.output
        self.frontier = list(frontier.values())

    def clean_function(self, tensors):
        """A traced function: a block of model inputs -> the values of ``tensors`` (clean ones)."""
        import tensorflow as tf

        def compute(images):
            values = self.run({id(self.input): images}, self.clean_nodes)
            return [values[id(t)] for t in tensors]

        return tf.function(compute, reduce_retracing=True)

    def row_floats(self, tensors) -> int:
        """Floats per image of ``tensors`` (Keras tensors with static shapes)."""
        return int(sum(np.prod([d or 1 for d in x.shape[1:]]) for x in tensors))

    def largest_dirty(self) -> int:
        """Floats per image of the largest tensor a dirty node makes."""
        sizes = [self.row_floats([x]) for node in self.dirty_nodes for x in node.outputs]
        return max(sizes, default=1)

    def run(self, values: dict, nodes, substitute=None) -> dict:
        """Runs ``nodes`` on ``values`` (``id(keras tensor) -> tensor``, updated in place).

        Args:
            substitute: ``operation -> [(variable, value)]``: variables read as other
                values while that operation runs (the masked kernels).
        """
        import keras

        for node in nodes:
            if any(id(x) not in values for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(values)
            op = node.operation
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs["training"] = False
            mapping = substitute(op) if substitute is not None else None
            if mapping:
                with keras.StatelessScope(state_mapping=mapping):
                    outputs = op(*args, **kwargs)
            else:
                outputs = op(*args, **kwargs)
            for x, y in zip(node.outputs, keras.tree.flatten(outputs)):
                values[id(x)] = y
        return values


class GraphScorer:
    """Correct predictions of a model under many masks of its pruned kernels.

    Args:
        model: the Keras model.
        target: its prune target.
        images: ``(rows, ...)`` model inputs (normalized).
        labels: ``(rows,)`` integer labels.
        rows: image rows per block (at most).
        memory: bytes of one individual's dirty activations per block below which
            several individuals share a call.
        cache_bytes: the cut is kept for every row only within this many bytes.

    Attributes:
        whole_model: True when the model has no graph to walk: each mask runs the whole
            model (still compiled and batched).
        cached: True when the cut (the clean tensors the dirty part reads) is kept for
            every row; False when the clean part runs in every call.
    """

    def __init__(
        self,
        model,
        target: PruneTarget,
        images,
        labels,
        rows: int = ROWS,
        memory: int = MEMORY,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        import tensorflow as tf

        images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(images) != len(self.labels) or not len(images):
            raise ValueError(
                f"Expected one label per image (at least one). Received: "
                f"{len(images)} images, {len(self.labels)} labels"
            )
        self.model, self.target, self.n = model, target, len(self.labels)
        self.shapes = [k.shape for k in target.kernels]
        self._variables = target.variables(model)
        self._kernels = [tf.constant(k) for k in target.kernels]
        self._by_layer: dict[int, list[int]] = {}
        for i, layer in enumerate(target.layers):
            self._by_layer.setdefault(id(model.layers[layer.index]), []).append(i)
        self.graph: Graph | None
        try:
            self.graph = Graph(model, [model.layers[i] for i in sorted(set(target.indices))])
        except ValueError:
            self.graph = None
        self.whole_model = self.graph is None
        blocks = -(-self.n // rows)
        self.rows = -(-self.n // blocks)
        largest = self.graph.largest_dirty() if self.graph else int(np.prod(images.shape[1:])) * 64
        self.chunk = int(max(1, min(MAX_CHUNK, memory // (4 * self.rows * largest))))
        cut_bytes = 4 * self.n * self.graph.row_floats(self.graph.frontier) if self.graph else None
        self.cached = self.graph is not None and cut_bytes is not None and cut_bytes <= cache_bytes
        graph = self.graph
        self.cut = (graph.frontier if self.cached else [graph.input]) if graph is not None else None
        padded = np.zeros((blocks * self.rows,) + images.shape[1:], np.float32)
        padded[: self.n] = images
        labels = np.full(blocks * self.rows, -1, np.int64)
        labels[: self.n] = self.labels
        self._blocks = [
            (self._cut_values(padded[i : i + self.rows]), tf.constant(labels[i : i + self.rows]))
            for i in range(0, len(padded), self.rows)
        ]
        signature = [tf.TensorSpec(x.shape, x.dtype) for x in self._blocks[0][0]]
        signature.append(tf.TensorSpec((self.rows,), tf.int64))
        signature += [tf.TensorSpec((self.chunk,) + shape, tf.bool) for shape in self.shapes]
        self._count = tf.function(self._block_correct, input_signature=signature)
        self._count.get_concrete_function()  # traced here: a model that cannot be traced fails now

    def _cut_values(self, block: np.ndarray) -> list:
        """The cut's tensors for one block of images (computed once, here)."""
        import tensorflow as tf

        x = tf.constant(block)
        if not self.cached:
            return [x]
        if not hasattr(self, "_clean"):
            assert self.graph is not None  # cached implies a graph
            self._clean = self.graph.clean_function(self.cut)
        return [tf.convert_to_tensor(v) for v in self._clean(x)]

    def _block_correct(self, *args):
        """Correct predictions of one block of rows for each individual of a chunk."""
        import tensorflow as tf

        count = len(self.shapes)
        cut, labels, masks = args[: -count - 1], args[-count - 1], args[-count:]
        kernels = [tf.where(m, k[None], tf.zeros_like(k)[None]) for m, k in zip(masks, self._kernels)]
        shared = {id(t): v for t, v in zip(self.cut or [], cut)}
        if self.graph is not None and not self.cached:  # the clean part: once for the chunk
            self.graph.run(shared, self.graph.clean_nodes)
        counts = []
        for p in range(self.chunk):
            mine = [(v, k[p]) for v, k in zip(self._variables, kernels)]
            if self.graph is None:
                with _stateless(mine):
                    outputs = self.model(model_input(self.model, cut[0]), training=False)
            else:
                by_op = {op: [mine[i] for i in ids] for op, ids in self._by_layer.items()}
                values = self.graph.run(dict(shared), self.graph.dirty_nodes, _lookup(by_op))
                outputs = values[id(self.graph.output)]
            predicted = tf.argmax(tf.reshape(outputs, (self.rows, -1)), axis=1, output_type=tf.int64)
            counts.append(tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64)))
        return tf.stack(counts)

    def correct_counts(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """Correct predictions for each mask.

        Args:
            masks: one bool array ``(P, *kernel.shape)`` per pruned kernel (a bare array
                when one kernel is pruned).
        """
        import tensorflow as tf

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
        total = len(masks[0])
        counts = np.zeros(total, dtype=np.int64)
        for start in range(0, total, self.chunk):
            chunk = [tf.constant(_padded(m[start : start + self.chunk], self.chunk)) for m in masks]
            size = min(self.chunk, total - start)
            for cut, labels in self._blocks:
                counts[start : start + size] += self._count(*cut, labels, *chunk).numpy()[:size]
        return counts


def activations(model, layers: Sequence, images: np.ndarray, rows: int = ROWS) -> list[np.ndarray]:
    """For every image, the tensors that ``layers`` and what lies downstream of them read
    from the rest of the model (for a final Dense head: the features entering it).

    Raises:
        ValueError: the model has no graph to walk.
    """
    import tensorflow as tf

    graph = Graph(model, layers)
    compute = graph.clean_function(graph.frontier)
    if not len(images):
        return [np.zeros((0, *(d or 0 for d in t.shape[1:])), np.float32) for t in graph.frontier]
    rows = min(rows, len(images))
    parts = []
    for start in range(0, len(images), rows):  # whole blocks (the last one padded): one trace
        block = images[start : start + rows]
        padded = np.zeros((rows,) + images.shape[1:], np.float32)
        padded[: len(block)] = block
        parts.append([np.asarray(v)[: len(block)] for v in compute(tf.constant(padded))])
    return [np.concatenate(p).astype(np.float32, copy=False) for p in zip(*parts)]


def _padded(masks: np.ndarray, size: int) -> np.ndarray:
    """``masks`` with its last mask repeated up to ``size`` (the graph takes whole chunks)."""
    if len(masks) == size:
        return masks
    return np.concatenate([masks, np.repeat(masks[-1:], size - len(masks), axis=0)])


def _lookup(by_op: dict):
    """``operation -> its [(variable, value)]`` from a table keyed by ``id(operation)``."""
    return lambda op: by_op.get(id(op))


def _stateless(mapping):
    import keras

    return keras.StatelessScope(state_mapping=mapping)
