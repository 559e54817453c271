"""Model files Keras refuses in safe mode get one line saying what was found and what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.errors import ModelError
from evoprune.models.deploy import kind_of, load_keras
from evoprune.models.training import load_model_file


def _models():
    import keras

    class Doubling(keras.layers.Layer):  # never registered
        def call(self, x):
            return x * 2.0

    def model(middle):
        return keras.Sequential(
            [keras.Input((28, 28, 1)), middle, keras.layers.Flatten(), keras.layers.Dense(10)]
        )

    return {
        "lambda": model(keras.layers.Lambda(lambda t: t * 2.0, name="times_two")),
        "custom": model(Doubling(name="doubling")),
    }


@pytest.fixture(scope="module")
def refused_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refused")
    files = {}
    for kind, model in _models().items():
        for suffix in ("keras", "h5"):
            files[kind, suffix] = folder / f"{kind}.{suffix}"
            model.save(files[kind, suffix])
    return files


@pytest.mark.parametrize("load", [load_model_file, load_keras])
def test_a_lambda_layer_is_refused_saying_why_and_what_to_do(refused_files, load):
    path = refused_files["lambda", "keras"]
    with pytest.raises(ModelError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "Lambda layer ('times_two')" in message and "would run Python code" in message
    assert "rebuilt without the Lambda" in message and "register_keras_serializable" in message
    assert message.endswith(f"Received: {path}")


@pytest.mark.parametrize("load", [load_model_file, load_keras])
def test_an_unregistered_custom_class_is_named(refused_files, load):
    path = refused_files["custom", "keras"]
    with pytest.raises(ModelError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message and "Lambda" not in message
    assert "custom object 'Doubling', which is not registered" in message
    assert "register_keras_serializable" in message and message.endswith(f"Received: {path}")


@pytest.mark.parametrize("check", [load_model_file, kind_of])
def test_a_legacy_h5_file_is_refused_and_a_lambda_in_it_named_at_once(refused_files, check):
    """Saving it as .keras, as the refusal advises, would only meet the Lambda's refusal next."""
    for kind in ("lambda", "custom"):
        path = refused_files[kind, "h5"]
        with pytest.raises(ModelError) as caught:
            check(path)
        message = str(caught.value)
        assert "\n" not in message and "legacy .h5 files are not supported" in message
        assert ("Lambda layer ('times_two')" in message) == (kind == "lambda")
        if kind == "lambda":
            assert "would run Python code" in message and "register_keras_serializable" in message


def test_the_cli_prints_the_reason_on_one_line(refused_files):
    path = refused_files["lambda", "keras"]
    result = CliRunner().invoke(
        app, ["train", "--quiet", "--dataset", "mnist-sample", "--model-file", str(path)]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Model file has a Lambda layer"), result.output
