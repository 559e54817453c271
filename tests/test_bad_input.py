"""Bad input, one clear line each: non-zero exit, names the problem and value, nothing lost."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.data.idx import write_idx
from evoprune.models.training import build_model, save_model
from synthetic import write_folder, write_npz

runner = CliRunner()
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="module")
def finished(finished_run):
    """A finished run whose files must survive every bad command."""
    return finished_run()


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


def _console(args, capsys):
    """Runs the CLI as the console script does (usage errors, too, are one line); its output."""
    from evoprune.cli import run_app

    code = run_app([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _cases(tmp, config, done):
    header = b"\x00\x00\x08\x03" + (30).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    no_dense = tmp / "conv.keras"
    return {
        "truncated idx": (
            lambda: ["--data-dir", str(_idx_dir(tmp / "t", corrupt=(IDX_NAMES[0], header + b"\x00" * 100)))],
            "truncated payload",
        ),
        "wrong magic": (
            lambda: [
                "--data-dir",
                str(_idx_dir(tmp / "m", corrupt=(IDX_NAMES[0], b"\x12\x34\x08\x03" + header[4:]))),
            ],
            IDX_NAMES[0],
        ),
        "corrupt gzip": (
            lambda: [
                "--data-dir",
                str(_idx_dir(tmp / "g", corrupt=(IDX_NAMES[1], b"\x1f\x8b\x08\x00garbage"))),
            ],
            IDX_NAMES[1],
        ),
        "count mismatch": (lambda: ["--data-dir", str(_idx_dir(tmp / "c", train_labels=20))], "30"),
        "missing idx file": (lambda: ["--data-dir", str(tmp)], "train-images"),
        "unknown key": (lambda: _toml(tmp / "k.toml", "[search]\npopsize = 4\n"), "search.popsize"),
        "wrong type": (lambda: _toml(tmp / "w.toml", '[model]\nepochs = "five"\n'), "model.epochs='five'"),
        "rate out of range": (lambda: _toml(tmp / "r.toml", "[search]\nmutpb = 2.0\n"), "search.mutpb=2.0"),
        "negative rate": (lambda: _toml(tmp / "n.toml", "[search]\ncxpb = -0.1\n"), "search.cxpb=-0.1"),
        "population too small": (lambda: ["--population", "3"], "search.population=3"),
        "unknown algorithm": (lambda: ["--algorithm", "cmaes"], "Received: --algorithm cmaes"),
        "unknown algorithm in file": (
            lambda: _toml(tmp / "a.toml", '[search]\nalgorithm = "cmaes"\n'),
            "search.algorithm='cmaes'",
        ),
        "unknown evaluator": (lambda: ["--evaluator", "gpu"], "Received: --evaluator gpu"),
        "unknown dataset": (lambda: ["--dataset", "cifar-10"], "data.dataset='cifar-10'"),
        "not toml": (lambda: _toml(tmp / "x.toml", "[search\n"), "not valid TOML"),
        "missing config": (lambda: ["--config", str(tmp / "none.toml")], "none.toml"),
        "model not keras": (lambda: _junk_model(tmp / "m.keras"), "m.keras"),
        "model NaN weights": (lambda: _model(tmp / "nan.keras", _nan), "non-finite"),
        "model without layer": (lambda: _conv_only(no_dense), "no Dense layer"),
        "missing model": (lambda: ["--model-file", str(tmp / "gone.keras")], "gone.keras"),
        "nsga2 population": (lambda: ["--algorithm", "nsga2", "--population", "30"], "search.population=30"),
        "negative generations": (lambda: ["--generations", "-1"], "search.generations=-1"),
        "resume other config": (lambda: _other_resume(tmp, done), "another config"),
        "npz label out of range": (
            lambda: _npz(tmp / "labels.npz", y_test=np.full(12, 5)),
            "labels.npz: y_test: label out of range",
        ),
        "npz missing arrays": (lambda: _npz(tmp / "part.npz", x_test=None), "part.npz: missing arrays"),
        "npz NaN": (lambda: _npz(tmp / "nan.npz", x_train=np.full((30, 12, 12), np.nan)), "nan.npz: x_train"),
        "npz mixed sizes": (
            lambda: _npz(tmp / "sizes.npz", x_test=np.zeros((12, 9, 9), np.uint8)),
            "sizes.npz: x_test: mixed image sizes",
        ),
        "not npz": (lambda: _npz_junk(tmp / "junk.npz"), "junk.npz: not an .npz archive"),
        "folder empty class": (lambda: _folder(tmp / "f1", "empty"), "empty class"),
        "folder unreadable image": (lambda: _folder(tmp / "f2", "unreadable"), "bad.png: unreadable image"),
        "folder mixed sizes": (lambda: _folder(tmp / "f3", "sizes"), "odd.png: mixed image sizes"),
        "data dir and file": (
            lambda: ["--data-dir", str(tmp), "--data-file", str(tmp / "x.npz")],
            "data.data_file=",
        ),
        "images too small for architecture": (
            lambda: ["--data-file", str(write_npz(tmp / "8.npz", (8, 8), 3))],
            "'paper-cnn' needs images of at least 10x10",
        ),
        "unknown architecture": (lambda: ["--architecture", "vgg16"], "Received: --architecture vgg16"),
        "model classes differ from data": (
            lambda: _sized_model(tmp / "c3.keras", (28, 28, 1), 3),
            "Model scores 3 classes but the data has 10",
        ),
        "model input differs from data": (
            lambda: _sized_model(tmp / "rgb.keras", (32, 32, 3), 10),
            "(32, 32, 3) does not fit the data's images (28, 28, 1)",
        ),
        "model input without channel axis": (
            lambda: _sized_model(tmp / "hw.keras", (28, 28), 10),
            "(28, 28) has no channel axis: evoprune feeds images as (height, width, channels), "
            "here (28, 28, 1). Build the model on keras.Input((28, 28, 1)) (then keras.layers.Reshape",
        ),
        "curve level beyond one weight": (
            lambda: ["--set", "select.compressions=[2, 100000]"],
            "select.compressions 100000x is beyond one kept weight of the 1,500 in the pruned layers",
        ),
        "unknown layer name": (lambda: ["--layers", "dense,nope"], "Unknown layer in search.layers"),
        "NaN rate": (lambda: _toml(tmp / "nan.toml", "[search]\nmutpb = nan\n"), "search.mutpb=nan"),
        "infinite threshold": (
            lambda: _toml(tmp / "inf.toml", "[search]\nmin_threshold = inf\n"),
            "search.min_threshold=inf",
        ),
        "seed above 2^32-1": (lambda: ["--seed", str(2**32)], "search.seed=4294967296"),
        "absurd population": (lambda: ["--population", "1000000"], "search.population=1000000"),
        "memory estimate": (lambda: ["--population", "100000", "--generations", "100000000"], "GiB"),
        "old pickle checkpoint": (lambda: _old_resume(tmp, done), "Old checkpoint format"),
        "negative tolerance": (
            lambda: _toml(tmp / "t.toml", "[select]\ntolerance_pp = -0.5\n"),
            "select.tolerance_pp=-0.5",
        ),
    }


def _sized_model(path, input_shape, n_classes):
    save_model(build_model("lenet-300-100", input_shape, n_classes), path)
    return ["--model-file", str(path)]


def _npz(path, **replace):
    return ["--data-file", str(write_npz(path, (12, 12), 3, **replace))]


def _npz_junk(path):
    path.write_text("x_train,y_train\n1,2\n")
    return ["--data-file", str(path)]


def _folder(root, problem):
    from PIL import Image

    write_folder(root, (12, 12), ("a", "b", "c"), per_class=2)
    if problem == "empty":
        for path in (root / "test" / "b").iterdir():
            path.unlink()
    elif problem == "unreadable":
        (root / "train" / "c" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ncut")
    else:
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "train" / "a" / "odd.png")
    return ["--data-dir", str(root)]


def _junk_model(path):
    path.write_text("not a zip archive")
    return ["--model-file", str(path)]


def _conv_only(path):
    import keras

    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(10, 3), keras.layers.GlobalAveragePooling2D()]
    keras.Sequential(layers).save(path)  # class scores out, but no Dense layer
    return ["--model-file", str(path)]


def _old_resume(tmp, done):
    run = tmp / "old-run"
    run.mkdir()
    (run / "config.toml").write_text((done / "config.toml").read_text())
    (run / "checkpoint.pkl").write_bytes(b"\x80\x04not unpickled")
    return ["--resume", str(run)]


def _other_resume(tmp, done):
    run = tmp / "other-run"
    run.mkdir()
    shutil.copy(done / "checkpoint.npz", run / "checkpoint.npz")
    (run / "config.toml").write_text((done / "config.toml").read_text().replace("seed = 0", "seed = 9"))
    return ["--resume", str(run)]


@pytest.mark.parametrize(
    "name",
    [
        "truncated idx",
        "wrong magic",
        "corrupt gzip",
        "count mismatch",
        "missing idx file",
        "unknown key",
        "wrong type",
        "rate out of range",
        "negative rate",
        "population too small",
        "unknown algorithm",
        "unknown evaluator",
        "unknown dataset",
        "not toml",
        "missing config",
        "model not keras",
        "model NaN weights",
        "model without layer",
        "missing model",
        "nsga2 population",
        "negative generations",
        "resume other config",
        "npz label out of range",
        "npz missing arrays",
        "npz NaN",
        "npz mixed sizes",
        "not npz",
        "folder empty class",
        "folder unreadable image",
        "folder mixed sizes",
        "data dir and file",
        "images too small for architecture",
        "unknown architecture",
        "unknown algorithm in file",
        "model classes differ from data",
        "model input differs from data",
        "model input without channel axis",
        "curve level beyond one weight",
        "unknown layer name",
        "NaN rate",
        "infinite threshold",
        "seed above 2^32-1",
        "absurd population",
        "memory estimate",
        "old pickle checkpoint",
        "negative tolerance",
    ],
)
def test_bad_input_one_line_nothing_lost(name, tmp_path, finished, capsys):
    config, done = finished
    out = tmp_path / "run"
    shutil.copytree(done, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    make_args, needle = _cases(tmp_path, config, done)[name]
    args = make_args()
    if "--config" not in args and "--resume" not in args:
        args = ["--config", str(config), *args]
    if "--resume" in args:
        code, output = _console(["run", *args], capsys)
    else:
        code, output = _console(["run", *args, "--out", str(out), "--overwrite"], capsys)
    assert code != 0, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], output
    assert "Traceback" not in output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_out_dir_below_a_file_says_so(finished, tmp_path):
    config, _ = finished
    (tmp_path / "data.npz").write_bytes(b"x")
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "data.npz/run")])
    assert result.exit_code == 1 and result.output.strip() == (
        f"Error: Cannot write to output directory {tmp_path / 'data.npz/run'}: "
        f"{tmp_path / 'data.npz'} is a file, not a directory"
    )


def test_read_only_out_dir(finished):
    config, _ = finished
    result = runner.invoke(app, ["run", "--config", str(config), "--out", "/sys/evoprune-test"])
    assert result.exit_code == 1 and "/sys/evoprune-test" in result.output
    assert "Traceback" not in result.output


def test_disk_full_is_one_line_and_leaves_no_partial_files(tmp_path, finished, monkeypatch):
    """The disk fills up after the search, while the results are written: one line, no
    partial file, the directory stays unfinished, and ``--resume`` completes it unchanged."""
    config, done = finished
    out = tmp_path / "full"
    real_fsync, failed = os.fsync, []

    def full_at_front_csv(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".front.csv."):
            failed.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_at_front_csv)
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert failed, "the results were never written"
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.endswith(".tmp")], names
    assert "front.csv" not in names and "summary.json" not in names
    assert {"config.toml", "checkpoint.npz", "logbook.csv"} <= names  # written before it filled
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the search is not lost
    resumed = runner.invoke(app, ["run", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    for name in ("front.csv", "population.csv"):
        assert (out / name).read_bytes() == (done / name).read_bytes(), name


@pytest.mark.parametrize("command", [["train"], ["compare", "--seeds", "1"], ["bench", "--seeds", "1"]])
def test_every_data_command_takes_data_file(tmp_path, command):
    bad = write_npz(tmp_path / "bad.npz", (12, 12), 3, y_test=np.full(12, 5))
    out = [] if command[0] == "train" else ["--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*command, *out, "--data-file", str(bad)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"{bad}: y_test: label out of range" in errors[0], result.output
    assert "Traceback" not in result.output


def _deploy_cases(tmp, done):
    unfinished = tmp / "unfinished"
    junk = tmp / "junk.keras"
    return {
        "export unfinished run": (
            lambda: (
                (unfinished.mkdir(), shutil.copy(done / "config.toml", unfinished))
                and ["export", str(unfinished), "--out", str(tmp / "m.keras")]
            ),
            "no summary.json",
        ),
        "export unknown format": (
            lambda: ["export", str(done), "--out", str(tmp / "m.onnx"), "--format", "onnx"],
            "--format onnx",
        ),
        "export wrong suffix": (
            lambda: ["export", str(done), "--out", str(tmp / "m.keras"), "--format", "tflite"],
            "m.keras",
        ),
        "export unknown suffix": (
            lambda: ["export", str(done), "--out", str(tmp / "m.onnx")],
            "the format follows the suffix). Received: ",
        ),
        "export rank out of range": (
            lambda: ["export", str(done), "--out", str(tmp / "m.keras"), "--rank", "99"],
            "Received: 99",
        ),
        "export negative rank": (
            lambda: ["export", str(done), "--out", str(tmp / "m.keras"), "--rank", "-1"],
            "Received: -1",
        ),
        "export unwritable output": (
            lambda: ["export", str(done), "--out", "/sys/evoprune-test/m.tflite"],
            "/sys/evoprune-test/m.tflite",
        ),
        "export below a file": (
            lambda: (
                (tmp / "f.npz").write_bytes(b"x")
                and ["export", str(done), "--out", str(tmp / "f.npz/m.keras")]
            ),
            "f.npz is a file, not a directory",
        ),
        "evaluate non-model file": (
            lambda: junk.write_text("not a model") and ["evaluate", str(junk), "--dataset", "mnist-sample"],
            "junk.keras",
        ),
        "evaluate missing model": (
            lambda: ["evaluate", str(tmp / "gone.tflite"), "--dataset", "mnist-sample"],
            "gone.tflite",
        ),
        "evaluate unknown split": (
            lambda: ["evaluate", str(tmp / "m.tflite"), "--dataset", "mnist-sample", "--split", "dev"],
            "'dev'",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "export unfinished run",
        "export unknown format",
        "export wrong suffix",
        "export unknown suffix",
        "export rank out of range",
        "export negative rank",
        "export unwritable output",
        "export below a file",
        "evaluate non-model file",
        "evaluate missing model",
        "evaluate unknown split",
    ],
)
def test_bad_deploy_input_one_line_nothing_written(name, tmp_path, finished, capsys):
    _, done = finished
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    if name == "evaluate unknown split":
        from evoprune.models.deploy import to_tflite

        (tmp_path / "m.tflite").write_bytes(to_tflite(build_model()))
    make_args, needle = _deploy_cases(tmp_path, done)[name]
    args = make_args()
    existing = set(tmp_path.rglob("*"))
    code, output = _console(args, capsys)
    assert code != 0, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], output
    assert "Traceback" not in output
    assert set(tmp_path.rglob("*")) == existing  # no model, sidecar or temporary file left
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before
