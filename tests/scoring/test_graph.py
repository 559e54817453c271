"""Graph scorer: pruned kernels anywhere in a functional model give the exact path's counts, batched."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from evoprune.models.target import build_target
from evoprune.scoring.evaluate import KerasEvaluator
from evoprune.scoring.graph import Graph, GraphScorer


def _random_masks(kernels, count: int, seed: int) -> list[np.ndarray]:
    """Masks keeping a random share (0..1, per individual) of each kernel."""
    rng = np.random.default_rng(seed)
    keep = rng.random(count)
    return [rng.random((count,) + k.shape) < keep.reshape((count,) + (1,) * k.ndim) for k in kernels]


def _trained(architecture_layers, split, epochs: int = 1):
    """A small Sequential model fitted briefly on ``split``."""
    import keras

    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *architecture_layers])
    return zoo.fitted(model, split, epochs)


@pytest.fixture(scope="module")
def small_split(prepared):
    images, labels = prepared.dataset.validation
    return images[:300], labels[:300]


@pytest.fixture(scope="module")
def resnet(prepared):
    return zoo.fitted(zoo.resnet(), prepared.dataset.train, epochs=2)


@pytest.fixture(scope="module")
def mobilenet(prepared):
    return zoo.fitted(zoo.mobilenet(), prepared.dataset.train, epochs=2)


def _agree(model, split, layers, count: int, seed: int = 0, masks=None):
    target = build_target(model, layers)
    fast = KerasEvaluator(model, split, "fast", target=target)
    exact = KerasEvaluator(model, split, "exact", target=target)
    assert fast.path == "graph" and fast.note is None
    masks = masks if masks is not None else _random_masks(target.kernels, count, seed)
    counts = fast.correct_counts(masks)
    np.testing.assert_array_equal(counts, exact.correct_counts(masks))
    return fast, masks, counts


def test_paper_cnn_all_layers_match_the_exact_path(prepared):
    model, split = prepared.trained.model, prepared.dataset.validation
    fast, masks, counts = _agree(model, split, "all", 20)
    assert len(set(counts.tolist())) > 5  # the masks really differ in accuracy
    one_by_one = np.concatenate([fast.correct_counts([m[p : p + 1] for m in masks]) for p in range(20)])
    np.testing.assert_array_equal(counts, one_by_one)  # chunking changes nothing


def test_lenet_300_100_dense_layers_match_the_exact_path(small_split):
    from evoprune.models.architectures import ARCHITECTURES

    model = _trained(ARCHITECTURES["lenet-300-100"].layers((28, 28, 1), 10), small_split)
    _, _, counts = _agree(model, small_split, "all", 12, seed=1)
    assert len(set(counts.tolist())) > 3
    _agree(model, small_split, ["fc2"], 6, seed=2)  # a middle layer alone: prefix cached
    _agree(model, small_split, ["fc1", "fc3"], 6, seed=3)  # unpruned Dense between pruned ones


def test_lenet_5_convolutions_match_the_exact_path(small_split):
    from evoprune.models.architectures import ARCHITECTURES

    model = _trained(ARCHITECTURES["lenet-5"].layers((28, 28, 1), 10), small_split)
    _agree(model, small_split, "all", 4, seed=4)
    _agree(model, small_split, ["conv2"], 4, seed=5)


def test_dropout_batchnorm_softmax_and_same_padding_match_the_exact_path(small_split):
    import keras

    L = keras.layers
    model = _trained(
        [
            L.Conv2D(8, 3, activation="relu", padding="same"),
            L.BatchNormalization(),
            L.MaxPooling2D(2),
            L.Conv2D(8, 3, strides=2, activation="relu"),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(10, activation="softmax"),
        ],
        small_split,
        epochs=2,
    )
    target = build_target(model, "all")
    assert not target.head_only
    _agree(model, small_split, "all", 8, seed=6)


def test_resnet_with_skips_and_batchnorm_matches_the_exact_path(resnet, prepared):
    split = prepared.dataset.validation
    _, _, counts = _agree(resnet, split, "all", 8, seed=7)
    assert len(set(counts.tolist())) > 3
    _agree(resnet, split, ["b2_proj", "head"], 6, seed=8)
    _agree(resnet, split, ["b1_conv2"], 4, seed=9)


def test_mobilenet_depthwise_separable_gates_and_concatenation_match_the_exact_path(mobilenet, prepared):
    split = prepared.dataset.validation
    target = build_target(mobilenet, "all")
    assert {"dw1", "sep/depthwise", "sep/pointwise", "dw2", "se_expand"} <= set(target.names)
    _, _, counts = _agree(mobilenet, split, "all", 8, seed=10)
    assert len(set(counts.tolist())) > 3
    _agree(mobilenet, split, ["sep/pointwise"], 4, seed=11)  # one kernel of a separable layer
    _agree(mobilenet, split, ["sep", "logits"], 4, seed=12)


def test_every_convolution_kind_matches_the_exact_path(small_split):
    model = zoo.fitted(zoo.every_kind(), small_split, epochs=3)
    target = build_target(model, "all")
    assert [k.kind for k in target.layers] == [
        "conv2d",
        "conv2d_transpose",
        "depthwise_conv2d",
        "separable_conv2d/depthwise",
        "separable_conv2d/pointwise",
        "conv1d",
        "conv3d",
        "dense",
    ]
    _, _, counts = _agree(model, small_split, "all", 8, seed=13)
    assert len(set(counts.tolist())) > 2


def test_real_search_masks_match_the_exact_path(resnet, prepared):
    """Masks a search makes (per-layer magnitude thresholds at many densities), not random ones."""
    from evoprune.search.encodings import LayerThresholds

    split = prepared.dataset.validation
    target = build_target(resnet, "all")
    encoding = LayerThresholds(target.kernels)
    rng = np.random.default_rng(14)
    genomes = [encoding._at_density(d, rng) for d in np.linspace(1.0, 0.05, 8)]
    bounds = list(zip(encoding.lows, encoding.highs))
    genomes += [[rng.uniform(lo, hi) * 0.5 for lo, hi in bounds] for _ in range(4)]
    _agree(resnet, split, "all", 0, masks=encoding.decode(genomes))


def test_only_what_lies_downstream_of_a_pruned_layer_is_recomputed(resnet):
    import keras

    late = Graph(resnet, [resnet.get_layer("b2_proj"), resnet.get_layer("head")])
    ops = {type(node.operation).__name__ for node in late.dirty_nodes}
    assert "BatchNormalization" not in ops and len(late.dirty_nodes) == 5  # proj, add, relu, pool, head
    assert {x.name for x in late.frontier} >= {late.dirty_nodes[0].input_tensors[0].name}
    first = Graph(resnet, [resnet.get_layer("stem")])
    assert len(first.dirty_nodes) == len(first.nodes) and first.frontier == [first.input]
    assert isinstance(resnet.get_layer("stem"), keras.layers.Conv2D)


def test_a_cut_too_large_to_keep_runs_the_clean_part_in_every_call(resnet, prepared):
    split = prepared.dataset.validation
    target = build_target(resnet, ["b1_conv2"])
    masks = _random_masks(target.kernels, 3, 15)
    kept = GraphScorer(resnet, target, split[0].reshape(-1, 28, 28, 1) / 255.0, split[1])
    recomputed = GraphScorer(resnet, target, split[0].reshape(-1, 28, 28, 1) / 255.0, split[1], cache_bytes=0)
    assert kept.cached and not recomputed.cached
    np.testing.assert_array_equal(kept.correct_counts(masks), recomputed.correct_counts(masks))


def test_a_subclassed_model_runs_whole_and_says_so(small_split):
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(10)

        def call(self, x, training=False):
            return self.out(self.hidden(self.flat(x)))

    model = Net()
    model(np.zeros((1, 28, 28, 1), np.float32))
    zoo.fitted(model, small_split)
    target = build_target(model, "all")
    fast = KerasEvaluator(model, small_split, "fast", target=target)
    exact = KerasEvaluator(model, small_split, "exact", target=target)
    assert fast.path == "whole-model" and "not a functional or Sequential model" in fast.note
    masks = _random_masks(target.kernels, 3, 16)
    np.testing.assert_array_equal(fast.correct_counts(masks), exact.correct_counts(masks))


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # nothing flows back through NumPy
def test_a_model_that_cannot_be_traced_falls_back_to_the_keras_pass_and_says_so(small_split):
    import keras

    class EagerOnly(keras.layers.Layer):
        """A layer that leaves TensorFlow for NumPy: it runs eagerly and cannot be traced."""

        def call(self, x):
            return keras.ops.convert_to_tensor(np.maximum(np.asarray(x), 0.0))

        def compute_output_shape(self, shape):
            return shape

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Dense(16, name="hidden")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(10, name="out")(EagerOnly()(x))
    model = keras.Model(inputs, outputs)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        run_eagerly=True,
    )
    model.fit(small_split[0][..., None] / 255.0, small_split[1].astype(np.int64), epochs=1, verbose=0)
    target = build_target(model, "all")
    fast = KerasEvaluator(model, small_split, "fast", target=target)
    assert fast.path == "keras" and fast.note.startswith("Scoring falls back to one Keras pass per mask")
    exact = KerasEvaluator(model, small_split, "exact", target=target)
    masks = _random_masks(target.kernels, 3, 18)
    np.testing.assert_array_equal(fast.correct_counts(masks), exact.correct_counts(masks))


def test_unsupported_layers_are_traced_too(small_split):
    import keras

    L = keras.layers
    model = _trained(
        [L.Flatten(), L.Dense(16, activation="relu"), L.LayerNormalization(), L.Dense(10)], small_split
    )
    _agree(model, small_split, "all", 3, seed=17)


def test_scorer_checks_masks_and_labels(prepared):
    model, split = prepared.trained.model, prepared.dataset.validation
    target = build_target(model, "all")
    fast = KerasEvaluator(model, split, "fast", target=target)
    with pytest.raises(ValueError, match="Expected masks"):
        fast.scorer.correct_counts([np.ones((1,) + k.shape, bool) for k in target.kernels[:2]])
    with pytest.raises(ValueError, match="one label per image"):
        GraphScorer(model, target, split[0][:5, ..., None] / 255.0, split[1][:4])
    empty = fast.scorer.correct_counts([np.ones((0,) + k.shape, bool) for k in target.kernels])
    assert empty.shape == (0,)
    full = fast.scorer.correct_counts([np.ones((1,) + k.shape, bool) for k in target.kernels])
    none = fast.scorer.correct_counts([np.zeros((1,) + k.shape, bool) for k in target.kernels])
    labels = np.asarray(split[1])
    assert full[0] > fast.n // 2 and none[0] <= np.bincount(labels).max()  # all-zero kernels: one class
