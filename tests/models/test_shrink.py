"""shrink_model: dead units and filters go, constants fold into biases, predictions stay."""

from __future__ import annotations

import numpy as np
import pytest

from evoprune.errors import ModelError
from evoprune.models.shrink import shrink_model


@pytest.fixture(autouse=True)
def fresh_session():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(3)


def _randomize_biases(model, rng):
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype(np.float32))


def _cnn(padding="valid"):
    import keras

    return keras.Sequential(
        [
            keras.Input((10, 10, 1)),
            keras.layers.Conv2D(4, 3, activation="swish", name="conv1"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Conv2D(6, 3, padding=padding, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2) if padding == "same" else keras.layers.Activation("linear"),
            keras.layers.Flatten(),
            keras.layers.Dense(7, activation="tanh", name="fc"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(5, activation="softmax", name="out"),
        ]
    )


def _masks(model):
    masks = {
        name: np.ones(model.get_layer(name).kernel.shape, dtype=bool)
        for name in ("conv1", "conv2", "fc", "out")
    }
    masks["conv1"][..., 1] = False  # filter 1 of conv1: nothing comes in -> constant
    masks["conv2"][:, :, 3, :] = False  # filter 3 of conv1 feeds nothing -> unused
    masks["conv2"][..., 2] = False  # filter 2 of conv2 is constant; folds through Flatten
    masks["fc"][:, 4] = False  # fc unit 4 is constant
    masks["out"][6, :] = False  # fc unit 6 feeds nothing
    return masks


def _masked(model, masks):
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, mask in masks.items():
        layer = copy.get_layer(name)
        layer.kernel.assign(np.where(mask, layer.kernel.numpy(), 0))
    return copy


def test_dead_units_and_filters_go_and_predictions_stay():
    rng = np.random.default_rng(0)
    model = _cnn()
    _randomize_biases(model, rng)
    masks = _masks(model)
    shrunk = shrink_model(model, masks)
    widths = {layer.name: layer.kernel.shape[-1] for layer in shrunk.layers if hasattr(layer, "kernel")}
    assert widths == {"conv1": 2, "conv2": 5, "fc": 5, "out": 5}
    assert shrunk.count_params() < model.count_params()
    x = rng.random((64, 10, 10, 1), dtype=np.float32)
    expected = _masked(model, masks).predict(x, verbose=0)
    got = shrunk.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert np.array_equal(got.argmax(1), expected.argmax(1))


def test_dead_filter_before_same_padding_is_kept_unless_zero():
    rng = np.random.default_rng(1)
    model = _cnn(padding="same")
    _randomize_biases(model, rng)
    model.get_layer("conv1").bias.assign(np.array([0.3, 0.0, -0.2, 0.4], np.float32))
    masks = _masks(model)
    masks["conv1"][..., 0] = False  # act(0.3) != 0: the padded border would change it, kept
    shrunk = shrink_model(model, masks)
    # filter 1 has act(0) = 0 and goes, filter 3 is unused and goes, filter 0 stays
    assert shrunk.get_layer("conv1").kernel.shape[-1] == 2
    x = rng.random((32, 10, 10, 1), dtype=np.float32)
    np.testing.assert_allclose(
        shrunk.predict(x, verbose=0), _masked(model, masks).predict(x, verbose=0), atol=2e-6
    )


def test_whole_layer_dead_keeps_one_unit_and_the_constant_output():
    import keras

    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4, activation="relu", name="a"),
            keras.layers.Dense(3, name="b"),
        ]
    )
    _randomize_biases(model, np.random.default_rng(2))
    shrunk = shrink_model(model, {"a": np.zeros((6, 4), dtype=bool)})
    assert shrunk.get_layer("a").units == 1
    x = np.random.default_rng(3).random((5, 6), dtype=np.float32)
    expected = _masked(model, {"a": np.zeros((6, 4), dtype=bool)}).predict(x, verbose=0)
    np.testing.assert_allclose(shrunk.predict(x, verbose=0), expected, atol=1e-6)


def test_unpruned_model_is_unchanged():
    model = _cnn()
    shrunk = shrink_model(model)
    assert shrunk.count_params() == model.count_params()


@pytest.mark.parametrize(
    "case, needle", [("batchnorm", "BatchNormalization"), ("mask shape", "shape"), ("mask name", "nope")]
)
def test_unsupported_models_are_model_errors(case, needle):
    import keras

    layers = [keras.Input((6,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(3, name="b")]
    if case == "batchnorm":
        layers.insert(2, keras.layers.BatchNormalization())
    masks = {"a": np.ones((5, 4), bool)} if case == "mask shape" else {}
    masks = {"nope": np.ones((6, 4), bool)} if case == "mask name" else masks
    with pytest.raises(ModelError, match=needle):
        shrink_model(keras.Sequential(layers), masks)
