"""Prune targets beyond the notebook's head: user models (functional, softmax), layer sets, architectures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.errors import ConfigError
from evoprune.models.target import build_target
from evoprune.scoring.evaluate import KerasEvaluator
from synthetic import write_folder, write_npz

runner = CliRunner()


def _functional_softmax(n_classes=10, input_shape=(28, 28, 1)):
    """A small functional classifier with a softmax output and one Dense without bias."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", use_bias=False, name="hidden")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def softmax_file(tmp_path_factory, prepared):
    """A softmax model trained outside evoprune (Keras' own fit, 1 epoch on the sample)."""
    import keras

    keras.utils.set_random_seed(3)
    model = _functional_softmax()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = prepared.dataset.train
    x = images.reshape(len(images), 28, 28, 1).astype("float32") / 255
    model.fit(x, labels.astype("int64"), epochs=1, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("user-model") / "softmax.keras"
    model.save(path)
    return path


def test_layer_sets_and_names_select_the_right_kernels():
    model = _functional_softmax()
    assert build_target(model, "head").names == ["probs"]
    assert build_target(model, "dense").names == ["hidden", "probs"]
    assert build_target(model, "all").names == ["c1", "hidden", "probs"]
    named = build_target(model, ["probs", "c1"])
    assert named.names == ["c1", "probs"] and named.prefix_end == named.indices[0]
    assert named.layers[1].bias is not None and build_target(model, ["hidden"]).layers[0].bias is None
    with pytest.raises(ConfigError, match="Unknown layer.*Received: 'nope'"):
        build_target(model, ["nope"])
    with pytest.raises(ConfigError, match="no prunable kernel.*Received: 'flatten"):
        build_target(model, [model.layers[3].name])


def test_softmax_head_is_scored_in_one_product_and_other_activations_are_not():
    import keras

    head = build_target(_functional_softmax(), "head")
    assert head.head_only and head.output_activation == "softmax" and not head.from_logits
    relu_out = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu")])
    assert not build_target(relu_out, "head").head_only  # relu ties negative logits at 0


@pytest.mark.parametrize("layers", ["head", "dense", "all"])
def test_fast_and_exact_counts_agree_on_a_functional_softmax_model(softmax_file, prepared, layers):
    from evoprune.models.training import load_model_file

    model = load_model_file(softmax_file)
    target = build_target(model, layers)
    split = prepared.dataset.validation
    fast = KerasEvaluator(model, split, "fast", target=target)
    exact = KerasEvaluator(model, split, "exact", target=target)
    assert (fast.head is not None) == (layers == "head")
    rng = np.random.default_rng(0)
    masks = [
        rng.random((3,) + k.shape) < np.array([1.0, 0.6, 0.2]).reshape((3,) + (1,) * k.ndim)
        for k in target.kernels
    ]
    counts = fast.correct_counts(masks)
    assert np.array_equal(counts, exact.correct_counts(masks))
    assert counts[0] > counts[2]  # pruning 80% of the weights costs accuracy


def test_run_compare_and_export_on_a_user_softmax_model(softmax_file, sample_config, tmp_path):
    import keras

    config = tmp_path / "c.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 3}).to_toml())
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "--config", str(config), "--model-file", str(softmax_file), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["nonzero"] == 16 * 10 and summary["layers"] == "head"
    assert summary["model_cached"] is True and summary["train_time_s"] == 0
    cmp = runner.invoke(
        app,
        [
            "compare",
            "--config",
            str(config),
            "--model-file",
            str(softmax_file),
            "--seeds",
            "1",
            "--algorithms",
            "paper",
            "--out",
            str(tmp_path / "cmp"),
        ],
    )
    assert cmp.exit_code == 0, cmp.output
    trials = (tmp_path / "cmp" / "trials.csv").read_text()
    assert trials.count("\nsweep,") == 1 and trials.count("\npaper,") == 1
    exported = tmp_path / "pruned.keras"
    exp = runner.invoke(app, ["export", str(out), "--out", str(exported)])
    assert exp.exit_code == 0, exp.output
    model = keras.models.load_model(exported)
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.loss.get_config()["from_logits"] is False
    assert np.count_nonzero(model.get_layer("probs").kernel.numpy()) == summary["best"]["nonzero"]


def test_model_that_does_not_fit_the_data_is_one_line_naming_both(tmp_path, sample_config):
    from evoprune.models.training import save_model

    path = tmp_path / "three.keras"
    save_model(_functional_softmax(n_classes=3), path)
    result = runner.invoke(app, ["train", "--dataset", "mnist-sample", "--model-file", str(path)])
    assert result.exit_code == 1
    assert "Model scores 3 classes but the data has 10" in result.output and str(path) in result.output
    wrong = tmp_path / "rgb.keras"
    save_model(_functional_softmax(input_shape=(32, 32, 3)), wrong)
    result = runner.invoke(app, ["train", "--dataset", "mnist-sample", "--model-file", str(wrong)])
    assert result.exit_code == 1 and "(32, 32, 3) does not fit the data's images (28, 28, 1)" in result.output


def test_architectures_are_sized_from_the_data_and_refuse_too_small_images():
    from evoprune.models.architectures import build, check_input

    lenet = build("lenet-300-100", (28, 28, 1), 10)
    assert lenet.count_params() == 266_610  # Han et al.: 267K
    lenet5 = build("lenet-5", (28, 28, 1), 10)
    assert lenet5.count_params() == 431_080  # Han et al.: 431K
    assert build("paper-cnn", (32, 32, 3), 5).output_shape == (None, 5)
    assert build("lenet-5", (16, 16, 3), 7).output_shape == (None, 7)
    with pytest.raises(
        ConfigError, match="'paper-cnn' needs images of at least 10x10. Received: .*\\(8, 8, 1\\)"
    ):
        check_input("paper-cnn", (8, 8, 1))
    with pytest.raises(
        ConfigError, match="Unknown model.architecture.*lenet-5.*Received: model.architecture='vgg'"
    ):
        check_input("vgg", (28, 28, 1))


def test_run_prunes_every_dense_layer_of_lenet_300_100(sample_config, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        sample_config.with_overrides(
            {
                "model.architecture": "lenet-300-100",
                "search.layers": "dense",
                "search.encoding": "layer_thresholds",
                "search.algorithm": "nsga2",
                "search.population": 8,
                "search.generations": 2,
                "search.crossover": "blend",
                "search.mutation": "gaussian",
            }
        ).to_toml()
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["nonzero"] == 784 * 300 + 300 * 100 + 100 * 10
    assert summary["best"]["genome"].count(" ") == 2  # one threshold per layer
    assert "lenet-300-100" in (out / "config.toml").read_text()


def test_run_on_an_npz_of_another_shape_with_lenet_300_100(sample_config, tmp_path):
    data = write_npz(tmp_path / "d.npz", (12, 12), 3, n_train=60, n_test=15)
    config = tmp_path / "c.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 2}).to_toml())
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            "--config",
            str(config),
            "--data-file",
            str(data),
            "--architecture",
            "lenet-300-100",
            "--layers",
            "dense",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["nonzero"] == 144 * 300 + 300 * 100 + 100 * 3
    assert summary["dataset"].startswith("npz:") and (out / "front.csv").is_file()


def test_run_on_an_rgb_image_folder_with_the_paper_cnn(sample_config, tmp_path):
    folder = write_folder(
        tmp_path / "imgs", (32, 32), ("ant", "bee", "cat", "dog", "eel"), per_class=20, mode="RGB"
    )
    config = tmp_path / "c.toml"
    config.write_text(
        sample_config.with_overrides({"search.generations": 2, "data.validation_fraction": 0.2}).to_toml()
    )
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "--config", str(config), "--data-dir", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["nonzero"] == 6 * 6 * 6 * 5  # the head: 6x6x6 features, 5 classes
    assert summary["dataset"].startswith("folder:")


def test_review_fixes_softmax_layer_float_images_and_rank3_dense():
    import keras

    from evoprune.models.deploy import model_inputs
    from evoprune.models.target import activation_name
    from evoprune.models.training import compile_model
    from evoprune.scoring.evaluate import KerasEvaluator

    assert activation_name(keras.layers.Softmax()) == "softmax"  # probabilities, not logits
    floats = np.full((2, 4, 4, 1), 0.5, np.float32)
    assert model_inputs(floats).max() == 0.5  # float images are not rescaled
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3)(inputs)
    x = keras.layers.Dense(4)(x)  # a per-pixel Dense
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    compile_model(model)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (40, 6, 6, 1)).astype(np.uint8), rng.integers(0, 3, 40)
    target = build_target(model, "all")
    fast = KerasEvaluator(model, (images, labels), "fast", target=target)
    exact = KerasEvaluator(model, (images, labels), "exact", target=target)
    assert fast.path == "graph"  # a per-pixel Dense is traced like any other layer
    masks = [rng.random((3,) + k.shape) < 0.6 for k in target.kernels]
    assert np.array_equal(fast.correct_counts(masks), exact.correct_counts(masks))


def test_exact_evaluator_with_head_fine_tuning_is_refused_before_work(sample_config):
    with pytest.raises(ConfigError, match="search.evaluator='fast' with finetune.scope='head'"):
        sample_config.with_overrides({"search.evaluator": "exact", "finetune.refine": "front"})


def test_compare_counts_one_gene_for_one_named_layer(sample_config, tmp_path):
    from evoprune.experiments.compare import check_config

    config = sample_config.with_overrides(
        {
            "search.layers": ["dense"],
            "search.encoding": "layer_thresholds",
            "search.crossover": "two_point",
            "search.mutation": "gaussian",
        }
    )
    with pytest.raises(ConfigError, match="two_point"):
        check_config(config)


def test_empty_validation_split_is_one_line(sample_config, tmp_path):
    data = write_npz(tmp_path / "tiny.npz", (12, 12), 3, n_train=6, n_test=3)  # 2 images per class
    result = runner.invoke(app, ["train", "--data-file", str(data), "--architecture", "lenet-300-100"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert (
        len(errors) == 1 and "validation split" in errors[0] and "data.validation_fraction=0.1" in errors[0]
    )


def test_head_without_bias_is_fine_tuned_and_exported_without_one(sample_config, prepared, tmp_path):
    import keras

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", use_bias=False, name="out"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    images, labels = prepared.dataset.train
    model.fit(images.reshape(len(images), 28, 28, 1) / 255.0, labels.astype("int64"), epochs=1, verbose=0)
    path = tmp_path / "nobias.keras"
    model.save(path)
    config = tmp_path / "c.toml"
    config.write_text(
        sample_config.with_overrides(
            {
                "search.generations": 2,
                "finetune.refine": "front",
                "finetune.steps": 20,
                "finetune.max_points": 2,
            }
        ).to_toml()
    )
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "--config", str(config), "--model-file", str(path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    exported = tmp_path / "m.keras"
    result = runner.invoke(app, ["export", str(out), "--out", str(exported)])
    assert result.exit_code == 0, result.output
    assert len(keras.models.load_model(exported).get_layer("out").get_weights()) == 1  # kernel only
