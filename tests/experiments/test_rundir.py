"""Safe run directories: data-only checkpoints, verified data and model, locks, late --out."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.experiments.methods import RunContext
from evoprune.experiments.methods.evolution import run_search
from evoprune.models.training import build_model, save_model
from evoprune.search import checkpoint

runner = CliRunner()


class _Payload:
    """A pickle that, when loaded, creates a marker file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _pickle_bomb(marker) -> bytes:
    return pickle.dumps(_Payload(marker))


def _one_error(result, needle: str = "") -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code not in (0, None) and len(errors) == 1, result.output
    assert "Traceback" not in result.output and needle in errors[0], result.output
    return errors[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, prepared):
    path = tmp_path_factory.mktemp("model") / "user.keras"
    shutil.copy(prepared.trained.path, path)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, finished_run, model_file):
    """A finished run of a user's model file, and an unfinished copy (as after a SIGKILL)."""
    _, done = finished_run(generations=3, args=("--model-file", model_file))
    unfinished = tmp_path_factory.mktemp("runs") / "unfinished"
    unfinished.mkdir()
    for name in ("config.toml", "checkpoint.npz", ".evoprune.lock"):
        shutil.copy(done / name, unfinished / name)
    return done, unfinished


def test_summary_and_checkpoint_record_data_and_model(finished, model_file):
    from evoprune.io import file_sha256

    done, _ = finished
    summary = json.loads((done / "summary.json").read_text())
    assert summary["model_sha256"] == file_sha256(model_file)
    assert len(summary["model_weights_sha256"]) == 64 and len(summary["dataset_checksum"]) == 64
    with np.load(done / "checkpoint.npz", allow_pickle=False) as npz:
        meta = json.loads(bytes(npz["meta"]))
    assert meta["identity"]["model_sha256"] == summary["model_sha256"]
    assert not (done / "checkpoint.pkl").exists()


def test_pickle_in_place_of_any_run_file_never_executes(tmp_path, finished):
    done, unfinished = finished
    marker = tmp_path / "pwned"
    for name in sorted(p.name for p in unfinished.iterdir()):
        run = tmp_path / f"resume-{name}"
        shutil.copytree(unfinished, run)
        (run / name).write_bytes(_pickle_bomb(marker))
        _one_error(
            runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "m.keras")]), "summary.json"
        )  # export reads finished runs only
        result = runner.invoke(app, ["run", "--resume", str(run)])
        if name == ".evoprune.lock":  # never read, only locked: the run resumes
            assert result.exit_code == 0, result.output
        else:
            _one_error(result, name)
        assert not marker.exists(), name
    for name in ("summary.json", "config.toml", "checkpoint.npz", "front.csv"):  # what export reads
        run = tmp_path / f"export-{name}"
        shutil.copytree(done, run)
        (run / name).write_bytes(_pickle_bomb(marker))
        _one_error(runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "m.keras")]), name)
        assert not marker.exists(), name


def test_old_pickle_checkpoint_is_refused_unread(tmp_path, finished):
    _, unfinished = finished
    run = tmp_path / "old"
    shutil.copytree(unfinished, run)
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.pkl").write_bytes(_pickle_bomb(tmp_path / "pwned"))
    line = _one_error(runner.invoke(app, ["run", "--resume", str(run)]), "Old checkpoint format")
    assert "not loaded" in line and not (tmp_path / "pwned").exists()


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value(arrays[name]) if callable(value) else value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _meta(**changes):
    def edit(meta):
        data = json.loads(bytes(meta))
        data.update(changes)
        return np.frombuffer(json.dumps(data).encode(), dtype=np.uint8)

    return edit


DAMAGES = {
    "truncated": ("not a data-only", lambda p: p.write_bytes(p.read_bytes()[:200])),
    "object array": ("unreadable", lambda p: _rewrite(p, genomes=np.array([object()]))),
    "missing member": ("Not an evoprune checkpoint", lambda p: _rewrite(p, accuracy=None)),
    "foreign header": ("Not an evoprune checkpoint", lambda p: _rewrite(p, meta=_meta(kind="x"))),
    "future format": ("format not supported", lambda p: _rewrite(p, meta=_meta(format=99))),
    "header not JSON": ("not JSON", lambda p: _rewrite(p, meta=np.frombuffer(b"\xff{", np.uint8))),
    "short genomes": ("damaged", lambda p: _rewrite(p, genomes=lambda a: a[:-1])),
    "accuracy > 1": ("accuracy", lambda p: _rewrite(p, accuracy=lambda a: a + 2)),
    "NaN genes": ("non-finite", lambda p: _rewrite(p, genomes=lambda a: a * np.nan)),
    "generation too far": ("generation", lambda p: _rewrite(p, meta=_meta(generation=10**6))),
    "bad random state": ("python_random", lambda p: _rewrite(p, python_random=lambda a: a[:10])),
    "logbook rows": ("logbook", lambda p: _rewrite(p, meta=_meta(logbook=[]))),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoint_is_one_clear_error(tmp_path, finished, damage):
    from evoprune.experiments.configure import load_config

    _, unfinished = finished
    path = tmp_path / "checkpoint.npz"
    shutil.copy(unfinished / "checkpoint.npz", path)
    needle, damage_it = DAMAGES[damage]
    damage_it(path)
    with pytest.raises(checkpoint.CheckpointError, match=needle) as info:
        checkpoint.load(path, load_config(unfinished / "config.toml"))
    assert "\n" not in str(info.value)


def test_resume_and_export_refuse_another_model(tmp_path, finished, model_file):
    done, unfinished = finished
    saved = model_file.read_bytes()
    try:
        save_model(build_model(), model_file)  # same path, other weights
        run = tmp_path / "run"
        shutil.copytree(unfinished, run)
        line = _one_error(runner.invoke(app, ["run", "--resume", str(run)]), "model differs")
        assert "weights SHA-256" in line and str(run) in line
        _one_error(
            runner.invoke(app, ["export", str(done), "--out", str(tmp_path / "m.keras")]), "model differs"
        )
    finally:
        model_file.write_bytes(saved)


@pytest.mark.parametrize(
    "algorithm,encoding,mutation,crossover",
    [
        ("nsga2", "threshold", "polynomial", "sbx"),
        ("spea2", "mask", "flip_bit", "uniform"),
        ("nsga3", "unit_thresholds", "gaussian", "blend"),
        ("tournament", "layer_thresholds", "polynomial", "sbx"),
    ],
)
def test_interrupted_search_resumes_exactly(
    tmp_path, prepared, sample_config, algorithm, encoding, mutation, crossover
):
    config = sample_config.with_overrides(
        {
            "search.algorithm": algorithm,
            "search.encoding": encoding,
            "search.mutation": mutation,
            "search.crossover": crossover,
            "search.generations": 5,
            "search.population": 20,
        }
    )
    whole = run_search(config, prepared)

    def stop(state):
        if state.generation == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(config, prepared, RunContext(observers=[stop], checkpoint=tmp_path / "checkpoint.npz"))
    resumed = run_search(config, prepared, RunContext(checkpoint=tmp_path / "checkpoint.npz", resume=True))
    pd.testing.assert_frame_equal(resumed.front, whole.front)
    pd.testing.assert_frame_equal(resumed.population, whole.population)
    cols = ["gen", "evaluations", "fitness_max", "fitness_avg", "best_genome"]
    pd.testing.assert_frame_equal(resumed.logbook[cols], whole.logbook[cols])
    assert resumed.summary["evaluations"] == whole.summary["evaluations"]


def test_rerunning_into_an_interrupted_run_without_resume_keeps_its_checkpoint(tmp_path, finished):
    _, unfinished = finished
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    saved = (run / "checkpoint.npz").read_bytes()
    args = ["run", "--config", str(run / "config.toml"), "--out", str(run)]
    error = _one_error(runner.invoke(app, args), "holds an interrupted run (checkpoint.npz)")
    assert "--resume" in error and error.endswith(f"Received: {run}")
    assert (run / "checkpoint.npz").read_bytes() == saved  # nothing lost
    replaced = runner.invoke(app, [*args, "--overwrite", "--generations", "1"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((run / "summary.json").read_text())["generations"] == 1


def test_a_retraining_log_alone_marks_an_interrupted_run_and_overwrite_discards_it(tmp_path, sample_config):
    from evoprune.errors import EvopruneError
    from evoprune.experiments.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "retrain.npz").write_bytes(b"a GMP run's finished levels")
    with pytest.raises(EvopruneError, match=r"holds an interrupted run \(retrain.npz\); continue it"):
        run.check(resume=False, overwrite=False)
    run.check(resume=True, overwrite=False)  # --resume continues it
    (run.path / "checkpoint.npz").write_bytes(b"an earlier search")
    with run.open(sample_config, resume=False, overwrite=True):
        assert not (run.path / "retrain.npz").exists() and not (run.path / "checkpoint.npz").exists()


def test_out_is_created_only_after_data_and_model_load(tmp_path, finished):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    out = tmp_path / "new" / "run"
    config = finished[0] / "config.toml"
    _one_error(
        runner.invoke(app, ["run", "--config", str(config), "--out", str(out), "--model-file", str(junk)]),
        "junk.keras",
    )
    assert not (tmp_path / "new").exists()


def _spawn(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "evoprune", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _finish(proc, timeout=300):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out:\n{out}\n{err}") from None
    return proc.returncode, out, err


def test_second_run_into_the_same_out_is_refused(tmp_path, sample_config, prepared):
    config = tmp_path / "slow.toml"
    config.write_text(
        sample_config.with_overrides({"search.generations": 8, "search.evaluator": "exact"}).to_toml()
    )
    out = tmp_path / "run"
    first = _spawn(["run", "--config", str(config), "--out", str(out)])
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists():
        assert first.poll() is None and time.monotonic() < deadline, _finish(first)
        time.sleep(0.05)
    code, _, err = _finish(_spawn(["run", "--config", str(config), "--out", str(out), "--overwrite"]))
    assert code == 1 and "Another evoprune run" in err and "Traceback" not in err, err
    code, _, err = _finish(first)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generations"] == 8 and len(pd.read_csv(out / "logbook.csv")) == 9


def test_two_processes_training_one_uncached_model_both_finish(tmp_path):
    cache = tmp_path / "cache"
    args = ["train", "--dataset", "mnist-sample", "--epochs", "1", "--seed", "3"]
    procs = [_spawn(args, {"EVOPRUNE_CACHE_DIR": str(cache)}) for _ in range(2)]
    results = [_finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    outputs = sorted(out for _, out, _ in results)
    assert sum("trained in" in o for o in outputs) == 1, outputs  # the other waited, then loaded
    assert sum("loaded from cache" in o for o in outputs) == 1, outputs
    assert len(list(cache.glob("*.keras"))) == 1 and not list(cache.glob("*.tmp*"))


def test_environment_data_dir_is_written_into_config(tmp_path, sample_config, monkeypatch):
    from evoprune.experiments.rundir import resolve_environment as _resolve_environment

    monkeypatch.setenv("EVOPRUNE_DATA_DIR", str(tmp_path / "idx"))
    resolved = _resolve_environment(sample_config.with_overrides({"data.dataset": "mnist"}))
    assert resolved.data.data_dir == str((tmp_path / "idx").resolve())
    assert _resolve_environment(sample_config) == sample_config  # the bundled sample ignores it
    other = sample_config.with_overrides({"data.dataset": "fashion_mnist"})
    assert _resolve_environment(other) == other  # it stands in for the default mnist only
    given = sample_config.with_overrides({"data.dataset": "mnist", "data.data_file": str(tmp_path / "d.npz")})
    assert _resolve_environment(given) == given  # a data file given is not overridden (nor refused)


def test_relative_input_paths_are_written_absolute(tmp_path, sample_config, monkeypatch):
    from evoprune.experiments.rundir import resolve_environment as _resolve_environment

    monkeypatch.chdir(tmp_path)
    resolved = _resolve_environment(
        sample_config.with_overrides({"data.data_file": "in/d.npz", "model.model_file": "m.keras"})
    )
    assert resolved.data.data_file == str(tmp_path.resolve() / "in" / "d.npz")
    assert resolved.model.model_file == str(tmp_path.resolve() / "m.keras")
    folder = _resolve_environment(sample_config.with_overrides({"data.data_dir": "idx"}))
    assert folder.data.data_dir == str(tmp_path.resolve() / "idx")


@pytest.mark.parametrize("umask, file_mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_directory_files_follow_the_umask(tmp_path, sample_config, prepared, umask, file_mode):
    import evoprune
    from evoprune.experiments.rundir import FIGURE

    previous = os.umask(umask)
    try:
        evoprune.prune(config=sample_config, out=tmp_path / "run", generations=2)
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert {"summary.json", "checkpoint.npz", "front.csv", FIGURE, "config.toml"} <= set(modes)
    assert modes == dict.fromkeys(modes, file_mode), modes
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~umask
