"""Deployable models: sparse TFLite size and accuracy, export's sidecar, evaluate, shrink on an MLP."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import evoprune
from evoprune.cli import app
from evoprune.errors import EvopruneError
from evoprune.models.deploy import keras_accuracy, model_inputs, tflite_accuracy, tflite_predict, to_tflite
from evoprune.models.export import SIDECAR_KEYS, compile_for_export
from evoprune.models.shrink import shrink_model

runner = CliRunner()


@pytest.fixture(scope="module")
def finished(finished_run):
    return finished_run()[1]


@pytest.fixture(scope="module")
def mlp(prepared):
    """LeNet-300-100 (784-300-100-10) trained one epoch on the sample."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu", name="fc1"),
            keras.layers.Dense(100, activation="relu", name="fc2"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = prepared.dataset.train
    model.fit(model_inputs(images), labels, epochs=1, batch_size=128, verbose=0)
    return model


def _pruned(model, out_rate=None):
    """A copy pruned by magnitude: 90% of all Dense weights, globally; ``out_rate`` of the last."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    dense = [layer for layer in copy.layers if isinstance(layer, keras.layers.Dense)]
    threshold = np.quantile(np.concatenate([np.abs(d.kernel.numpy()).ravel() for d in dense]), 0.9)
    masks = {d.name: np.abs(d.kernel.numpy()) > threshold for d in dense}
    if out_rate is not None:
        kernel = np.abs(dense[-1].kernel.numpy())
        masks[dense[-1].name] = kernel > np.quantile(kernel, out_rate)
    for d in dense:
        d.kernel.assign(np.where(masks[d.name], d.kernel.numpy(), 0))
    return copy, masks


def test_sparse_tflite_of_a_pruned_mlp_is_smaller_and_as_accurate(mlp, prepared):
    model, masks = _pruned(mlp)
    compression = sum(m.size for m in masks.values()) / sum(m.sum() for m in masks.values())
    assert 9.5 < compression < 10.5
    sparse, dense = to_tflite(model), to_tflite(mlp)
    assert len(dense) / len(sparse) >= min(8.0, compression / 2), (len(dense), len(sparse))
    test = prepared.dataset.test
    x = model_inputs(test[0])
    # same weights, same predictions: the interpreter and Keras agree image by image
    lite, reference = tflite_predict(sparse, x), model.predict(x, verbose=0)
    np.testing.assert_allclose(lite, reference, atol=1e-5)
    differ = _explained_differences(lite, reference)
    assert len(differ) <= 2
    n = len(x)
    assert abs(round(tflite_accuracy(sparse, test) * n) - round(keras_accuracy(model, test) * n)) <= len(
        differ
    )
    assert keras_accuracy(model, test) > 0.8


def test_tflite_keeps_the_dense_encoding_where_the_sparse_one_is_larger():
    """The sparsity converter encoded a small MLP's kernels, a third pruned, into a larger file."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(10)])
    for layer in model.layers:  # magnitude pruning: the smallest 35% of each kernel
        kernel = layer.kernel.numpy()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.35)] = 0
        layer.kernel.assign(kernel)
    dense = len(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    sparse = len(converter.convert())
    flatbuffer = to_tflite(model)
    assert len(flatbuffer) == min(sparse, dense)
    if sparse <= dense:  # TensorFlow 2.21 made 2,768 bytes against 2,400; a later one may not
        pytest.skip(f"this TensorFlow's sparse encoding is not larger ({sparse} <= {dense} bytes)")
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        tflite_predict(flatbuffer, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_a_keras_file_under_another_name_is_read_by_its_contents(mlp, prepared, tmp_path):
    """Keras reads its zip only under the .keras suffix; evaluate reads the kind from the contents."""
    mlp.save(tmp_path / "m.keras")
    expected = evoprune.evaluate(tmp_path / "m.keras", prepared.dataset)
    for name in ("m.zip", "model", "m.h5"):
        shutil.copyfile(tmp_path / "m.keras", tmp_path / name)
        assert evoprune.evaluate(tmp_path / name, prepared.dataset) == expected, name


def test_shrink_removes_dead_units_of_the_pruned_mlp(mlp, prepared):
    model, masks = _pruned(mlp, out_rate=0.95)  # most fc2 units lose all 10 outgoing weights
    shrunk = shrink_model(model, masks)
    assert shrunk.get_layer("fc2").units < 100
    assert shrunk.count_params() < model.count_params()
    x = model_inputs(prepared.dataset.test[0])
    before, after = model.predict(x, verbose=0), shrunk.predict(x, verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert len(_explained_differences(after, before)) <= 2
    # the shrunk model converts too, and is no bigger
    assert len(to_tflite(shrunk)) <= len(to_tflite(model))


def _explained_differences(lite: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rows whose predicted class differs; each must be a float32 near-tie of the top two outputs.

    The interpreter and Keras add the same products in different orders, so outputs differ
    in the last bits (about 1e-7 here); a row whose top two classes are that close may flip.
    """
    differ = np.flatnonzero(lite.argmax(1) != reference.argmax(1))
    for row in differ:
        top = np.sort(reference[row])[-2:]
        assert top[1] - top[0] <= 4 * np.abs(lite[row] - reference[row]).max() + 1e-7, row
    return differ


def test_export_tflite_sidecar_and_evaluate(finished, tmp_path, prepared):
    out = tmp_path / "m.tflite"
    result = runner.invoke(app, ["export", str(finished), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "m.tflite.json").read_text())
    assert tuple(sidecar) == SIDECAR_KEYS
    front = pd.read_csv(finished / "front.csv")
    selected = json.loads((finished / "summary.json").read_text())["selected"]  # the default point
    best = front[front["eval_index"] == selected["eval_index"]].iloc[0]
    assert sidecar["nonzero"] == best["nonzero"] == selected["nonzero"]
    assert (
        sidecar["bytes"] == out.stat().st_size <= sidecar["unpruned_bytes"]
    )  # dense when sparse is not smaller
    assert sidecar["test_accuracy"] == tflite_accuracy(out, prepared.dataset.test)
    assert sidecar["run_test_accuracy"] == pytest.approx(best["test_accuracy"], abs=1e-12)
    assert sidecar["test_accuracy"] == pytest.approx(sidecar["run_test_accuracy"], abs=1e-12)
    assert sidecar["latency_ms"] > 0 and sidecar["unpruned_latency_ms"] > 0
    evaluated = runner.invoke(app, ["evaluate", str(out), "--dataset", "mnist-sample"])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"test accuracy: {sidecar['test_accuracy']:.4f}" in evaluated.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.json"]


def test_export_keras_shrunk_loads_without_warnings(finished, tmp_path, prepared):
    import keras

    out = tmp_path / "m.keras"
    result = runner.invoke(app, ["export", str(finished), "--out", str(out), "--rank", "1", "--shrink"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "m.keras.json").read_text())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.models.load_model(out)
    assert not caught, [str(w.message) for w in caught]
    assert model.loss.get_config()["from_logits"] is True  # the CNN's head is linear
    assert sidecar["stored_parameters"] == model.count_params() <= prepared.trained.model.count_params()
    assert sidecar["test_accuracy"] == keras_accuracy(model, prepared.dataset.test)
    assert sidecar["test_accuracy"] == pytest.approx(sidecar["run_test_accuracy"], abs=1e-12)


def test_export_defaults_to_the_selected_point(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    summary = json.loads((run / "summary.json").read_text())
    front = pd.read_csv(run / "front.csv").sort_values("nonzero")
    row = front.iloc[len(front) // 2]
    summary["selected"] = {"eval_index": int(row["eval_index"]), "test_accuracy": float(row["test_accuracy"])}
    (run / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "s.tflite")])
    assert result.exit_code == 0, result.output
    assert f"selected point {int(row['eval_index'])}" in result.output
    sidecar = json.loads((tmp_path / "s.tflite.json").read_text())
    assert sidecar["nonzero"] == row["nonzero"]
    assert sidecar["test_accuracy"] == pytest.approx(row["test_accuracy"], abs=1e-12)


def test_exported_loss_fits_the_output_activation():
    import keras

    for activation, from_logits in (("softmax", False), (None, True)):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])
        compile_for_export(model)
        assert model.loss.get_config()["from_logits"] is from_logits


def test_evaluate_refuses_labels_the_model_does_not_score(finished, tmp_path, prepared):
    """Labels past the model's classes (another dataset, a shifted encoding) are an error, not 0.0."""
    out = tmp_path / "m.tflite"
    assert runner.invoke(app, ["export", str(finished), "--out", str(out)]).exit_code == 0
    images, labels = prepared.dataset.test
    with pytest.raises(EvopruneError, match=r"Model scores 10 classes but the labels go up to 29"):
        evoprune.evaluate(out, (images, labels + 20))
    with pytest.raises(EvopruneError, match=r"Expected data=\(images, labels\)"):
        evoprune.evaluate(out, images)
    with pytest.raises(EvopruneError, match=r"the labels given: wrong label shape"):
        evoprune.evaluate(out, (images, images))
    assert evoprune.evaluate(out, (images, labels)) == tflite_accuracy(out, prepared.dataset.test)
