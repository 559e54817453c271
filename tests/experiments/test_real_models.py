"""Models users bring (residual, mobile): every kernel kind is pruned, run, exported and fine-tuned."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import zoo
from evoprune.cli import app
from evoprune.models.target import build_target

runner = CliRunner()
STRUCTURE_WARNING = "structure of `inputs`"


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory, prepared):
    model = zoo.fitted(zoo.mobilenet(), prepared.dataset.train, epochs=2)
    path = tmp_path_factory.mktemp("mobile") / "mobilenet.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def mobile_run(tmp_path_factory, mobilenet_file, sample_config):
    """``evoprune run --layers all`` on the MobileNet with every other setting at its default
    (the sample config's five generations)."""
    base = tmp_path_factory.mktemp("mobile-run")
    config = base / "c.toml"
    config.write_text(sample_config.to_toml())
    out = base / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(
            app,
            ["run", "--config", str(config), "--model-file", str(mobilenet_file), "--layers", "all"]
            + ["--out", str(out)],
        )
    return result, out, caught


def test_depthwise_and_separable_kernels_are_searched_and_selected(mobile_run):
    result, out, caught = mobile_run
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["encoding"] == "layer_thresholds"  # auto: one threshold per kernel
    selected = summary["selected"]
    assert selected is not None and selected["compression"] > 1.0  # the defaults find something
    assert {"stem", "dw1", "pw1", "sep/depthwise", "sep/pointwise", "dw2", "logits"} <= set(
        selected["per_layer"]
    )
    assert "Not pruned" not in result.output and "falls back" not in result.output
    assert not [w for w in caught if STRUCTURE_WARNING in str(w.message)]


def test_export_writes_every_pruned_kernel_and_shrink_refuses_in_one_line(mobile_run, tmp_path):
    import keras

    _, out, _ = mobile_run
    summary = json.loads((out / "summary.json").read_text())
    exported = tmp_path / "pruned.keras"
    result = runner.invoke(app, ["export", str(out), "--out", str(exported)])
    assert result.exit_code == 0, result.output
    model = keras.models.load_model(exported)
    target = build_target(model, "all")
    kept = sum(int(np.count_nonzero(v.numpy())) for v in target.variables(model))
    assert kept == summary["selected"]["nonzero"]
    sidecar = json.loads((tmp_path / "pruned.keras.json").read_text())
    assert sidecar["nonzero"] == kept and sidecar["test_accuracy"] == pytest.approx(
        summary["selected"]["test_accuracy"], abs=0.01
    )
    lite = tmp_path / "pruned.tflite"
    result = runner.invoke(app, ["export", str(out), "--out", str(lite)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "pruned.tflite.json").read_text())["test_accuracy"] == pytest.approx(
        sidecar["test_accuracy"], abs=0.01
    )
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "s.keras"), "--shrink"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output
    assert "Expected" in errors[0] and "Received" in errors[0]
    assert errors[0].startswith("Error: Cannot shrink this model (--shrink; export it without)")
    assert not (tmp_path / "s.keras").exists()


def test_whole_model_fine_tuning_keeps_both_kernels_of_a_separable_layer_pruned(prepared):
    from evoprune.refine.retrain import ModelFinetuner

    model = zoo.fitted(zoo.mobilenet(), prepared.dataset.train, epochs=1)
    target = build_target(model, ["sep", "dw2"])
    assert target.names == ["sep/depthwise", "sep/pointwise", "dw2"]
    rng = np.random.default_rng(0)
    masks = [rng.random(k.shape) < 0.5 for k in target.kernels]
    images, labels = prepared.dataset.train
    small = (images[:512], labels[:512])
    tuner = ModelFinetuner(model, small, small, small, target, 1, 0.01, 128, 0)
    weights = tuner.tuned_weights(masks)
    for position, mask, kernel in zip(target.weight_positions(model), masks, target.kernels):
        tuned = weights[position]
        assert np.all(tuned[~mask] == 0)  # pruned weights stay exactly zero
        assert not np.array_equal(tuned[mask], kernel[mask])  # the kept ones trained
    assert [v.constraint for v in target.variables(model)] == [None, None, None]  # restored


def test_layer_names_pick_one_kernel_of_a_separable_layer_or_both():
    from evoprune.errors import ConfigError

    model = zoo.mobilenet()
    assert build_target(model, ["sep"]).names == ["sep/depthwise", "sep/pointwise"]
    assert build_target(model, ["sep/pointwise"]).names == ["sep/pointwise"]
    one = build_target(model, ["sep/depthwise"]).layers[0]
    assert one.bias is None and one.activation == "linear"  # the layer's bias and relu6 come after
    with pytest.raises(ConfigError, match="no prunable kernel.*Received: 'conc"):
        build_target(model, [next(la.name for la in model.layers if la.name.startswith("concatenate"))])
    assert "depthwise_conv2d" in build_target(model, ["dw1"]).layers[0].kind
    with pytest.raises(ConfigError) as info:  # a DepthwiseConv2D has one kernel, named as its layer
        build_target(model, ["dw1/depthwise"])
    assert str(info.value) == (
        "Unknown kernel in search.layers. Expected one of: dw1 (the kernels of layer 'dw1'). "
        "Did you mean 'dw1'? Received: 'dw1/depthwise'"
    )
    with pytest.raises(ConfigError, match=r"one of: sep/depthwise, sep/pointwise .*Received: 'sep/dw'$"):
        build_target(model, ["sep/dw"])


def test_layers_all_names_what_it_leaves_alone_in_one_status_line(prepared):
    import keras

    import evoprune

    L = keras.layers
    inputs = keras.Input((28, 28, 1))
    block = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, name="inner")], name="block")
    x = L.Flatten()(block(inputs))
    outputs = L.Dense(10, name="out")(L.LayerNormalization()(x))
    model = keras.Model(inputs, outputs)
    assert build_target(model, "all").skipped == ("block (a nested model: its layers are not searched)",)
    assert build_target(model, "all").names == ["out"]
    zoo.fitted(model, prepared.dataset.train)
    lines = []
    evoprune.prune(
        model,
        train=prepared.dataset.train,
        test=prepared.dataset.test,
        layers="all",
        generations=0,
        status=lines.append,
    )
    skipped = [line for line in lines if line.startswith("Not pruned")]
    assert skipped == ["Not pruned: block (a nested model: its layers are not searched)"]


def test_a_model_built_on_an_input_list_scores_without_the_structure_warning(prepared, tmp_path):
    from evoprune.models.deploy import keras_accuracy, latency_ms
    from evoprune.scoring.evaluate import KerasEvaluator

    model = zoo.fitted(zoo.resnet(inputs_as_list=True), prepared.dataset.train)
    path = tmp_path / "m.keras"
    model.save(path)
    split = prepared.dataset.validation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for layers in ("head", "all"):
            KerasEvaluator(model, split, "fast", target=build_target(model, layers))
        keras_accuracy(path, split)
        latency_ms(path, split[0][0], repeats=2, warmup=1)
    assert not [w for w in caught if STRUCTURE_WARNING in str(w.message)]
