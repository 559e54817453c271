"""Small classifiers of the kinds users bring: residual, mobile, squeeze-excite, every convolution kind.

Each builder takes the input shape and the class count and returns an untrained Keras
model, its weights initialised from seed 0 (so a model does not depend on which tests ran
before it in the process); :func:`fitted` trains one briefly (any weights with varied
predictions will do).
"""

from __future__ import annotations

import numpy as np


def resnet(input_shape=(28, 28, 1), classes: int = 10, width: int = 8, inputs_as_list: bool = False):
    """A small ResNet: BatchNorm, identity and 1x1-projection skips (Add), a softmax head."""
    import keras

    keras.utils.set_random_seed(0)  # initial weights independent of the tests run before

    L = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = L.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(x))
    y = L.Conv2D(width, 3, padding="same", name="b1_conv1")(x)
    y = L.Activation("relu")(L.BatchNormalization()(y))
    y = L.BatchNormalization()(L.Conv2D(width, 3, padding="same", name="b1_conv2")(y))
    x = L.ReLU()(L.Add()([x, y]))
    y = L.Conv2D(2 * width, 3, strides=2, padding="same", name="b2_conv1")(x)
    y = L.ReLU()(L.BatchNormalization()(y))
    y = L.BatchNormalization()(L.Conv2D(2 * width, 3, padding="same", name="b2_conv2")(y))
    shortcut = L.Conv2D(2 * width, 1, strides=2, name="b2_proj")(x)
    x = L.ReLU()(L.Add()([shortcut, y]))
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model([inputs] if inputs_as_list else inputs, outputs, name="resnet")


def mobilenet(input_shape=(28, 28, 1), classes: int = 10, width: int = 8):
    """A small MobileNet: DepthwiseConv2D, SeparableConv2D, ReLU6, an inverted residual, a
    squeeze-excite gate (Reshape, Multiply), a Concatenate, Dropout and a logits head."""
    import keras

    keras.utils.set_random_seed(0)  # initial weights independent of the tests run before

    L = keras.layers
    inputs = keras.Input(input_shape)
    x = L.Rescaling(2.0, offset=-1.0)(inputs)
    x = L.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    y = L.DepthwiseConv2D(3, padding="same", name="dw1")(x)
    y = L.ReLU(6.0)(L.BatchNormalization()(y))
    y = L.BatchNormalization()(L.Conv2D(width, 1, name="pw1")(y))
    x = L.Add()([x, y])  # inverted residual
    gate = L.GlobalAveragePooling2D()(x)
    gate = L.Dense(4, activation="relu", name="se_reduce")(gate)
    gate = L.Reshape((1, 1, width))(L.Dense(width, activation="sigmoid", name="se_expand")(gate))
    x = L.Multiply()([x, gate])
    a = L.SeparableConv2D(width, 3, padding="same", activation="relu6", name="sep")(x)
    b = L.MaxPooling2D(3, strides=1, padding="same")(x)
    x = L.Concatenate()([a, b])
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", name="dw2")(x)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(x))
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet")


def every_kind(input_shape=(28, 28, 1), classes: int = 10):
    """Conv1D, Conv2D, Conv3D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D in one model."""
    import keras

    keras.utils.set_random_seed(0)  # initial weights independent of the tests run before

    L = keras.layers
    inputs = keras.Input(input_shape)
    h, w = input_shape[:2]
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv2d")(inputs)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="deconv")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.SeparableConv2D(4, 3, strides=2, padding="same", activation="relu", name="separable")(x)
    rows = L.Reshape((h // 2, (w // 2) * 4))(x)
    rows = L.Conv1D(4, 3, activation="relu", name="conv1d")(rows)
    cube = L.Reshape((h // 2, w // 2, 4, 1))(x)
    cube = L.Conv3D(2, (3, 3, 2), activation="relu", name="conv3d")(cube)
    x = L.Concatenate()([L.Flatten()(rows), L.Flatten()(cube)])
    outputs = L.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="every_kind")


def dropout_cnn(input_shape=(28, 28, 1), classes: int = 10):
    """A Sequential CNN with Dropout (the held-out kind that is a chain)."""
    import keras

    keras.utils.set_random_seed(0)  # initial weights independent of the tests run before

    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            L.Conv2D(8, 3, activation="relu", name="conv1"),
            L.MaxPooling2D(2),
            L.Conv2D(8, 3, activation="relu", name="conv2"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dropout(0.3),
            L.Dense(32, activation="relu", name="fc"),
            L.Dropout(0.3),
            L.Dense(classes, activation="softmax", name="out"),
        ],
        name="dropout_cnn",
    )


def fitted(model, split, epochs: int = 1, seed: int = 0):
    """``model`` compiled for its output and fitted on ``split`` (images as uint8 or float)."""
    import keras

    from evoprune.data.dataset import normalize
    from evoprune.models.training import compile_model

    keras.utils.set_random_seed(seed)
    compile_model(model, 0.005)
    images, labels = split
    model.fit(normalize(images), np.asarray(labels, np.int64), epochs=epochs, batch_size=64, verbose=0)
    return model
