"""Bad input, one clear line each: non-zero exit, names the problem and value, nothing lost."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.idx import write_idx
from evoprune.model import build_model, save_model

runner = CliRunner()
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sample_config, prepared):
    """A finished run whose files must survive every bad command."""
    base = tmp_path_factory.mktemp("bad")
    config = base / "good.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 2}).to_toml())
    out = base / "finished"
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(out)]).exit_code == 0
    return config, out


def _idx_dir(path, train=30, train_labels=30, corrupt=None):
    path.mkdir()
    rng = np.random.default_rng(0)
    write_idx(path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (train, 28, 28), np.uint8))
    write_idx(path / "train-labels-idx1-ubyte.gz", np.arange(train_labels, dtype=np.uint8) % 10)
    write_idx(path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28), np.uint8))
    write_idx(path / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8) % 10)
    if corrupt:
        name, data = corrupt
        (path / f"{name}.gz").unlink()
        (path / name).write_bytes(data)
    return path


def _toml(path, text):
    path.write_text(text)
    return ["--config", str(path)]


def _model(path, mutate):
    model = build_model()
    mutate(model)
    save_model(model, path)
    return ["--model-file", str(path)]


def _nan(model):
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    model.set_weights(weights)


def _cases(tmp, config, done):
    header = b"\x00\x00\x08\x03" + (30).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    no_dense = tmp / "conv.keras"
    return {
        "truncated idx": (lambda: ["--data-dir", str(_idx_dir(tmp / "t", corrupt=(
            IDX_NAMES[0], header + b"\x00" * 100)))], "truncated payload"),
        "wrong magic": (lambda: ["--data-dir", str(_idx_dir(tmp / "m", corrupt=(
            IDX_NAMES[0], b"\x12\x34\x08\x03" + header[4:])))], IDX_NAMES[0]),
        "corrupt gzip": (lambda: ["--data-dir", str(_idx_dir(tmp / "g", corrupt=(
            IDX_NAMES[1], b"\x1f\x8b\x08\x00garbage")))], IDX_NAMES[1]),
        "count mismatch": (lambda: ["--data-dir", str(_idx_dir(tmp / "c", train_labels=20))], "30"),
        "missing idx file": (lambda: ["--data-dir", str(tmp)], "train-images"),
        "unknown key": (lambda: _toml(tmp / "k.toml", "[search]\npopsize = 4\n"), "search.popsize"),
        "wrong type": (lambda: _toml(tmp / "w.toml", '[model]\nepochs = "five"\n'), "model.epochs='five'"),
        "rate out of range": (lambda: _toml(tmp / "r.toml", "[search]\nmutpb = 2.0\n"), "search.mutpb=2.0"),
        "negative rate": (lambda: _toml(tmp / "n.toml", "[search]\ncxpb = -0.1\n"), "search.cxpb=-0.1"),
        "population too small": (lambda: ["--population", "3"], "search.population=3"),
        "unknown algorithm": (lambda: ["--algorithm", "cmaes"], "search.algorithm='cmaes'"),
        "unknown evaluator": (lambda: ["--evaluator", "gpu"], "search.evaluator='gpu'"),
        "unknown dataset": (lambda: ["--dataset", "cifar10"], "data.dataset='cifar10'"),
        "not toml": (lambda: _toml(tmp / "x.toml", "[search\n"), "not valid TOML"),
        "missing config": (lambda: ["--config", str(tmp / "none.toml")], "none.toml"),
        "model not keras": (lambda: _junk_model(tmp / "m.keras"), "m.keras"),
        "model NaN weights": (lambda: _model(tmp / "nan.keras", _nan), "non-finite"),
        "model without layer": (lambda: _conv_only(no_dense), "no Dense layer"),
        "missing model": (lambda: ["--model-file", str(tmp / "gone.keras")], "gone.keras"),
        "nsga2 population": (lambda: ["--algorithm", "nsga2", "--population", "30"], "search.population=30"),
        "negative generations": (lambda: ["--generations", "-1"], "search.generations=-1"),
        "resume other config": (lambda: _other_resume(tmp, done), "another config"),
        "negative tolerance": (lambda: _toml(tmp / "t.toml", "[select]\ntolerance_pp = -0.5\n"),
                               "select.tolerance_pp=-0.5"),
    }


def _junk_model(path):
    path.write_text("not a zip archive")
    return ["--model-file", str(path)]


def _conv_only(path):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3)])
    model.save(path)
    return ["--model-file", str(path)]


def _other_resume(tmp, done):
    run = tmp / "other-run"
    run.mkdir()
    shutil.copy(done / "checkpoint.pkl", run / "checkpoint.pkl")
    (run / "config.toml").write_text((done / "config.toml").read_text().replace("seed = 0", "seed = 9"))
    return ["--resume", str(run)]




@pytest.mark.parametrize("name", [
    "truncated idx", "wrong magic", "corrupt gzip", "count mismatch", "missing idx file",
    "unknown key", "wrong type", "rate out of range", "negative rate", "population too small",
    "unknown algorithm", "unknown evaluator", "unknown dataset", "not toml", "missing config",
    "model not keras", "model NaN weights", "model without layer", "missing model",
    "nsga2 population", "negative generations", "resume other config", "negative tolerance"])
def test_bad_input_one_line_nothing_lost(name, tmp_path, finished):
    config, done = finished
    out = tmp_path / "run"
    shutil.copytree(done, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    make_args, needle = _cases(tmp_path, config, done)[name]
    args = make_args()
    if "--config" not in args and "--resume" not in args:
        args = ["--config", str(config), *args]
    if "--resume" in args:
        result = runner.invoke(app, ["run", *args])
    else:
        result = runner.invoke(app, ["run", *args, "--out", str(out), "--overwrite"])
    assert result.exit_code not in (0, None), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_read_only_out_dir(finished):
    config, _ = finished
    result = runner.invoke(app, ["run", "--config", str(config), "--out", "/sys/evoprune-test"])
    assert result.exit_code == 1 and "/sys/evoprune-test" in result.output
    assert "Traceback" not in result.output


def test_disk_full_is_one_line_and_leaves_no_partial_files(tmp_path, finished, monkeypatch):
    config, done = finished
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    out = tmp_path / "full"

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert "Traceback" not in result.output
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert not (out / "summary.json").exists()
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before
