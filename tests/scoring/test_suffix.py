"""Suffix scorer: pruned layers inside a model give the exact path's counts, batched."""

from __future__ import annotations

import numpy as np
import pytest

from evoprune.models.target import build_target
from evoprune.scoring.evaluate import KerasEvaluator
from evoprune.scoring.suffix import SuffixScorer, supports


def _random_masks(kernels, count: int, seed: int) -> list[np.ndarray]:
    """Masks keeping a random share (0..1, per individual) of each kernel."""
    rng = np.random.default_rng(seed)
    keep = rng.random(count)
    return [rng.random((count,) + k.shape) < keep.reshape((count,) + (1,) * k.ndim) for k in kernels]


def _trained(architecture_layers, split, epochs: int = 1):
    """A small model fitted briefly on ``split`` (any weights with varied predictions will do)."""
    import keras

    from evoprune.data.dataset import normalize
    from evoprune.models.training import compile_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *architecture_layers])
    compile_model(model, 0.005)
    model.fit(normalize(split[0]), split[1].astype(np.int64), epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def small_split(prepared):
    images, labels = prepared.dataset.validation
    return images[:300], labels[:300]


def _agree(model, split, layers, count: int, seed: int = 0):
    target = build_target(model, layers)
    fast = KerasEvaluator(model, split, "fast", target=target)
    exact = KerasEvaluator(model, split, "exact", target=target)
    assert fast.suffix is not None and fast.head is None
    masks = _random_masks(target.kernels, count, seed)
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


def test_unsupported_layers_fall_back_to_the_keras_pass(small_split):
    import keras

    L = keras.layers
    model = _trained(
        [L.Flatten(), L.Dense(16, activation="relu"), L.LayerNormalization(), L.Dense(10)], small_split
    )
    target = build_target(model, "all")
    assert not supports(model, target)
    fast = KerasEvaluator(model, small_split, "fast", target=target)
    exact = KerasEvaluator(model, small_split, "exact", target=target)
    assert fast.suffix is None
    masks = _random_masks(target.kernels, 3, 7)
    np.testing.assert_array_equal(fast.correct_counts(masks), exact.correct_counts(masks))
    with pytest.raises(ValueError, match="unsupported"):
        SuffixScorer(model, target, fast.features, fast.labels)


def test_scorer_checks_masks_and_labels(prepared):
    model, split = prepared.trained.model, prepared.dataset.validation
    target = build_target(model, "all")
    fast = KerasEvaluator(model, split, "fast", target=target)
    with pytest.raises(ValueError, match="Expected masks"):
        fast.suffix.correct_counts([np.ones((1,) + k.shape, bool) for k in target.kernels[:2]])
    with pytest.raises(ValueError, match="one label per feature row"):
        SuffixScorer(model, target, fast.features, fast.labels[:-1])
    empty = fast.suffix.correct_counts([np.ones((0,) + k.shape, bool) for k in target.kernels])
    assert empty.shape == (0,)
    full = fast.suffix.correct_counts([np.ones((1,) + k.shape, bool) for k in target.kernels])
    none = fast.suffix.correct_counts([np.zeros((1,) + k.shape, bool) for k in target.kernels])
    labels = np.asarray(split[1])
    assert full[0] > fast.n // 2 and none[0] <= np.bincount(labels).max()  # all-zero kernels: one class
