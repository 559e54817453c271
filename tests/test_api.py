"""The public API: ``evoprune.prune`` on a model and arrays in memory, saved, read back, exported."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import evoprune
from evoprune.cli import app
from evoprune.errors import ConfigError, EvopruneError


@pytest.fixture(scope="module")
def arrays():
    ds = evoprune.load_data(dataset="mnist-sample")
    return ds.train, ds.validation, ds.test


@pytest.fixture(scope="module")
def own_model(arrays):
    """A classifier built and trained in this script, never saved."""
    import keras

    (x, y), _, _ = arrays
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(48, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x / 255.0, y, batch_size=128, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def pruned(arrays, own_model):
    (x, y), (xv, yv), (xt, yt) = arrays
    return evoprune.prune(
        own_model,
        train=(x, y),
        validation=(xv, yv),
        test=(xt, yt),
        layers="dense",
        algorithm="nsga2",
        population=12,
        generations=3,
        seed=0,
        encoding="layer_thresholds",
        crossover="sbx",
        mutation="polynomial",
    )


def _accuracy(model, split) -> float:
    import keras

    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return float(model.evaluate(split[0] / 255.0, split[1], verbose=0)[1])


def test_prune_in_memory_selects_a_model_that_scores_as_reported(pruned, arrays, own_model):
    front = pruned.front
    assert {"eval_index", "nonzero", "compression", "accuracy", "test_accuracy"} <= set(front.columns)
    assert pruned.selected is not None and pruned.path is None
    model = pruned.model()
    assert model is not own_model
    assert _accuracy(model, arrays[2]) == pytest.approx(pruned.selected["test_accuracy"], abs=1e-6)
    # any evaluated point: its masks on the original weights
    row = front.iloc[-1]
    point = pruned.model(eval_index=int(row["eval_index"]))
    kept = sum(int((point.get_layer(n).kernel.numpy() != 0).sum()) for n in ("hidden", "logits"))
    assert kept == int(row["nonzero"])
    # the caller's model is untouched
    assert all((own_model.get_layer(n).kernel.numpy() != 0).all() for n in ("hidden", "logits"))
    # evaluate takes the model in memory as it takes a file
    assert evoprune.evaluate(model, arrays[2]) == pytest.approx(pruned.selected["test_accuracy"], abs=1e-6)


def test_evaluate_refuses_what_is_not_a_one_output_classifier_in_one_line(arrays, tmp_path):
    import keras

    from evoprune.errors import ModelError

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    two = keras.Model(inputs, [keras.layers.Dense(10)(flat), keras.layers.Dense(3)(flat)])
    conv = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(10, 28)])  # (batch, 1, 1, 10)
    expected = "Expected a classifier with one image input and one (batch, classes) output. Received: "
    for name, model, outputs in (
        ("two", two, "[(None, 10), (None, 3)]"),
        ("conv", conv, "[(None, 1, 1, 10)]"),
    ):
        model.save(tmp_path / f"{name}.keras")
        for given, source in (
            (tmp_path / f"{name}.keras", str(tmp_path / f"{name}.keras")),
            (model, "the model given"),
        ):
            with pytest.raises(ModelError) as info:
                evoprune.evaluate(given, arrays[2])
            assert str(info.value) == f"{expected}{source} with inputs [(None, 28, 28, 1)], outputs {outputs}"
    with pytest.raises(ModelError, match=r"a .keras or .tflite file or a keras.Model. Received: dict$"):
        evoprune.evaluate({}, arrays[2])
    named = keras.Model(inputs, {"logits": keras.layers.Dense(10)(flat)})  # a dict of one output
    with pytest.raises(
        ModelError, match=r"one \(batch, classes\) output. .*outputs \{'logits': \(None, 10\)\}$"
    ):
        evoprune.evaluate(named, arrays[2])
    with pytest.raises(ModelError, match=r"defined input .*Received: the model given \(Sequential"):
        evoprune.evaluate(keras.Sequential([keras.layers.Dense(10)]), arrays[2])  # never built
    import tensorflow as tf

    (tmp_path / "two.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(two).convert())
    with pytest.raises(ModelError) as info:
        evoprune.evaluate(tmp_path / "two.tflite", arrays[2])
    assert str(info.value).startswith("Expected a classifier with one (batch, classes) output. Received: ")
    assert str(info.value).endswith("two.tflite with outputs [(1, 10), (1, 3)]") or "(1, 3)" in str(
        info.value
    )


def test_an_eval_index_the_run_never_evaluated_is_named_as_such(pruned):
    with pytest.raises(
        EvopruneError, match=r"Expected an eval_index of one of the run's .* Received: eval_index 1000000"
    ):
        pruned.model(eval_index=10**6)


def test_a_run_held_in_memory_exports_without_saving(arrays, own_model, tmp_path):
    result = evoprune.prune(
        own_model, train=arrays[0], test=arrays[2], generations=1, seed=0, layers="logits"
    )
    assert result.path is None
    report = evoprune.export(result, tmp_path / "small.tflite")
    assert report.sidecar["test_accuracy"] == pytest.approx(result.selected["test_accuracy"], abs=1e-6)
    assert result.export(tmp_path / "small.keras").sidecar["nonzero"] == result.selected["nonzero"]
    assert result.path is None  # nothing was saved on the caller's behalf


def test_a_model_taking_any_image_size_exports_and_evaluates(arrays, tmp_path):
    """``keras.Input((None, None, 1))``: export measured the file with a fixed shape (a TypeError
    on None) and LiteRT cannot resize a sparse model's input; nothing half-written is left."""
    import keras

    (x, y), _, test = arrays
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:500] / 255.0, y[:500], batch_size=128, epochs=1, verbose=0)
    result = evoprune.prune(model, train=(x, y), test=test, generations=1, seed=0, layers="all")
    expected = result.selected["test_accuracy"]
    for name in ("any.keras", "any.tflite"):
        report = evoprune.export(result, tmp_path / name)
        assert report.sidecar["test_accuracy"] == pytest.approx(expected, abs=1e-6)
        assert evoprune.evaluate(tmp_path / name, test) == pytest.approx(expected, abs=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "any.keras",
        "any.keras.json",
        "any.tflite",
        "any.tflite.json",
    ]
    # a .tflite that keeps the open size (converted elsewhere) is set to the images' size to evaluate
    from evoprune.models.deploy import input_signature, to_tflite

    (tmp_path / "open.tflite").write_bytes(to_tflite(model))
    assert input_signature(tmp_path / "open.tflite")[1:3] == (-1, -1)
    assert evoprune.evaluate(tmp_path / "open.tflite", test) == pytest.approx(
        evoprune.evaluate(tmp_path / "any.keras", test), abs=1e-6
    )


def test_a_failed_export_leaves_no_file(pruned, tmp_path, monkeypatch):
    from evoprune.experiments import export as exporting

    def broken(path, split):
        assert path.is_file() and path.name.startswith(".")  # measured under its staged name
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exporting, "model_accuracy", broken)
    with pytest.raises(OSError):
        evoprune.export(pruned, tmp_path / "small.keras")
    assert list(tmp_path.iterdir()) == []


def test_saved_run_reads_back_and_exports_with_the_cli(pruned, arrays, tmp_path):
    path = pruned.save(tmp_path / "run")
    assert (path / "model.keras").is_file() and (path / "data.npz").is_file()
    again = evoprune.load_run(path)
    assert again.front.equals(pruned.front) and again.selected == pruned.selected
    with pytest.raises(EvopruneError, match=r"replace it \(--overwrite; overwrite=True in Python\)"):
        pruned.save(path)  # a finished run is not replaced unasked
    assert _accuracy(again.model(), arrays[2]) == pytest.approx(pruned.selected["test_accuracy"], abs=1e-6)
    out = tmp_path / "pruned.tflite"
    result = CliRunner().invoke(app, ["export", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = evoprune.export(path, tmp_path / "again.tflite")
    assert report.sidecar["test_accuracy"] == pytest.approx(pruned.selected["test_accuracy"], abs=1e-6)
    assert evoprune.evaluate(out, arrays[2]) == pytest.approx(pruned.selected["test_accuracy"], abs=1e-6)


def test_options_are_checked_with_one_line_errors(own_model, arrays):
    with pytest.raises(ConfigError, match=r"Received: popluation=4"):
        evoprune.prune(own_model, train=arrays[0], popluation=4)
    with pytest.raises(ConfigError, match=r"model__epochs or finetune__epochs"):
        evoprune.prune(own_model, train=arrays[0], epochs=3)
    with pytest.raises(ConfigError, match=r"search.algorithm='nsga-2'"):
        evoprune.prune(own_model, train=arrays[0], algorithm="nsga-2")
    with pytest.raises(EvopruneError, match=r"a model file goes in model_file=. Received: 'model.keras'"):
        evoprune.prune("model.keras", train=arrays[0])
    (x, y) = arrays[0]
    with pytest.raises(
        EvopruneError, match=r"Expected train=\(images, labels\), a pair. Received: train=3 items"
    ):
        evoprune.prune(own_model, train=(x, y, y))
    with pytest.raises(
        EvopruneError, match=r"Expected test=\(images, labels\), a pair. Received: test=ndarray"
    ):
        evoprune.prune(own_model, train=arrays[0], test=x)
    gray = (x[:20, ..., :1] if x.ndim == 4 else x[:20, ..., None], y[:20])
    rgb = (np.repeat(gray[0], 3, axis=-1), gray[1])
    with pytest.raises(EvopruneError, match=r"^the arrays given: test\[0\] \(images\): mixed image sizes"):
        evoprune.prune(own_model, train=rgb, test=gray)  # named as passed, not as an .npz key
    import keras

    unbuilt = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)], name="unbuilt")
    with pytest.raises(
        EvopruneError, match=r"Expected a model with a defined input .* 'unbuilt'\) has no inputs yet"
    ):
        evoprune.prune(unbuilt, train=arrays[0])


def test_without_test_split_test_accuracies_are_nan(own_model, arrays):
    result = evoprune.prune(own_model, train=arrays[0], generations=1, seed=0, layers="logits")
    assert result.front["test_accuracy"].isna().all()
    assert result.summary["baseline"]["accuracy"] > 0.5


def test_float_arrays_in_the_models_own_scale_are_fed_as_given(arrays):
    """A model trained on standardized pixels (here about [-2, 2]) is scored on the arrays as
    they are: the baseline accuracy evoprune reports is the one ``model.evaluate`` gives."""
    import keras
    import numpy as np

    (x, y), (xv, yv), (xt, yt) = arrays

    def standardized(images):
        return ((images.astype("float32") / 255.0 - 0.5) / 0.25).astype("float32")

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(standardized(x), y, batch_size=128, epochs=1, verbose=0)
    assert float(standardized(xt).min()) < -1.5 and float(standardized(xt).max()) > 1.5
    result = evoprune.prune(
        model,
        train=(standardized(x), y),
        validation=(standardized(xv), yv),
        test=(standardized(xt), yt),
        generations=1,
        seed=0,
    )
    expected = float(model.evaluate(standardized(xt), yt, verbose=0)[1])
    assert result.summary["baseline"]["test_accuracy"] == pytest.approx(expected, abs=1e-6)
    assert expected > 0.5  # far from what the same weights give on [0, 1] pixels
    assert float(model.evaluate(np.asarray(xt, "float32") / 255.0, yt, verbose=0)[1]) < expected - 0.1


def test_load_data_without_a_validation_split_keeps_all_of_train(arrays):
    import numpy as np

    whole = evoprune.load_data(dataset="mnist-sample", validation_fraction=0)
    (x, y), (xv, yv), _ = arrays
    assert len(whole.train[0]) == len(x) + len(xv) and len(whole.validation[0]) == 0
    # the carved split is a stratified subset of that same train split
    assert np.bincount(whole.train[1]).tolist() == (np.bincount(y) + np.bincount(yv)).tolist()
    np.testing.assert_array_equal(whole.test[0], arrays[2][0])
