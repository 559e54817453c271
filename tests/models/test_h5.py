"""Legacy ``.h5`` model files are refused with one line, wherever a model file is read, and --help says so."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.errors import ModelError
from evoprune.models.training import build_model, load_model_file

runner = CliRunner()


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory):
    """A real legacy HDF5 model file, as ``model.save("m.h5")`` writes it (Keras loads it)."""
    import keras

    path = tmp_path_factory.mktemp("h5") / "m.h5"
    model = build_model()
    model.save(path)
    keras.models.load_model(path, compile=False)  # it would load: the refusal is a choice
    return path


def _one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize("command", [["run", "--generations", "1"], ["train"]])
def test_run_and_train_refuse_an_h5_model_file(h5_file, tmp_path, command):
    out = tmp_path / "out"
    args = [*command, "--dataset", "mnist-sample", "--model-file", str(h5_file)]
    line = _one_error(runner.invoke(app, args + (["--out", str(out)] if command[0] == "run" else [])))
    assert line.startswith("Error: Expected a .keras file for model.model_file")
    assert "legacy .h5 files are not supported" in line and line.endswith(
        f"Received: model.model_file={h5_file}"
    )
    assert not out.exists()


def test_evaluate_refuses_an_h5_model_file(h5_file):
    line = _one_error(runner.invoke(app, ["evaluate", str(h5_file), "--dataset", "mnist-sample"]))
    assert "Expected a .keras or .tflite model file" in line and "legacy .h5" in line
    assert line.endswith(f"Received: {h5_file}")


def test_loading_an_h5_model_file_is_refused(h5_file):
    with pytest.raises(ModelError, match=r"Expected a \.keras model file .*legacy \.h5.*Received: .*m\.h5"):
        load_model_file(h5_file)


@pytest.mark.parametrize("command", ["run", "train", "compare", "bench"])
def test_help_says_h5_is_refused(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "a .keras file; legacy .h5 files are refused" in text, text
