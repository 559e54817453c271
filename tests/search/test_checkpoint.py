"""Checkpoint and resume: a run killed (SIGKILL) or interrupted (SIGINT) resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app

runner = CliRunner()
GENERATIONS = 20  # a few seconds of exact search: margin for a signal from a starved test process


@pytest.fixture(scope="module")
def slow_config(tmp_path_factory, sample_config, prepared):
    """The exact evaluator makes each generation take long enough to be interrupted."""
    path = tmp_path_factory.mktemp("ckpt") / "exact.toml"
    path.write_text(
        sample_config.with_overrides(
            {"search.generations": GENERATIONS, "search.evaluator": "exact"}
        ).to_toml()
    )
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, slow_config):
    out = tmp_path_factory.mktemp("ckpt") / "reference"
    result = runner.invoke(app, ["run", "--config", str(slow_config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _start(config, out):
    return subprocess.Popen(
        [sys.executable, "-m", "evoprune", "run", "--config", str(config), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EVOPRUNE_CHECKPOINT_EVERY_S": "0"},  # every generation: one to kill after
    )


def _wait_for_generation(proc, out, generation, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
                if json.loads(bytes(npz["meta"]))["generation"] >= generation:
                    return
        except (FileNotFoundError, ValueError, OSError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no checkpoint in time:\n{proc.communicate(timeout=60)}")


def _resume(out, monkeypatch) -> int:
    """Resumes the run in ``out`` in-process; returns the generation the loop restarted from."""
    from evoprune.experiments.methods import evolution as experiments

    started, real = [], experiments.evolve

    def spy(*args, state=None, **kwargs):
        started.append(None if state is None else state.generation)
        return real(*args, state=state, **kwargs)

    monkeypatch.setattr(experiments, "evolve", spy)
    result = runner.invoke(app, ["run", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert len(started) == 1 and started[0] is not None, "the run restarted instead of resuming"
    assert f"Resuming after generation {started[0]}" in result.output
    return started[0]


def _assert_same_results(out, reference):
    assert pd.read_csv(out / "front.csv").equals(pd.read_csv(reference / "front.csv"))
    assert pd.read_csv(out / "population.csv").equals(pd.read_csv(reference / "population.csv"))
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    assert got["best"] == want["best"] and got["evaluations"] == want["evaluations"]
    cols = ["gen", "evaluations", "fitness_max", "fitness_avg", "best_genome"]
    assert pd.read_csv(out / "logbook.csv")[cols].equals(pd.read_csv(reference / "logbook.csv")[cols])


@pytest.mark.parametrize("kill_at", [1, 4])
def test_sigkill_then_resume_matches_uninterrupted_run(
    tmp_path, slow_config, reference, kill_at, monkeypatch
):
    out = tmp_path / "run"
    proc = _start(slow_config, out)
    _wait_for_generation(proc, out, kill_at)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (out / "summary.json").exists()
    assert kill_at <= _resume(out, monkeypatch) < GENERATIONS
    _assert_same_results(out, reference)


def test_ctrl_c_checkpoints_and_says_how_to_resume(tmp_path, slow_config, reference, monkeypatch):
    out = tmp_path / "run"
    proc = _start(slow_config, out)
    _wait_for_generation(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit after SIGINT:\n{proc.communicate()}") from None
    assert proc.returncode == 130
    assert f"Resume with: evoprune run --resume {out}" in stderr and "Traceback" not in stderr
    assert "Error:" not in stderr  # the user chose to stop: nothing failed
    assert not (out / "summary.json").exists()
    assert 2 <= _resume(out, monkeypatch) < GENERATIONS
    _assert_same_results(out, reference)


def test_sigterm_stops_the_run_at_once_and_it_resumes(tmp_path, slow_config, reference, monkeypatch):
    """What Slurm, docker stop and systemd send: the run ends now (exit 143), its checkpoint intact."""
    out = tmp_path / "run"
    proc = _start(slow_config, out)
    _wait_for_generation(proc, out, 2)
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit after SIGTERM:\n{proc.communicate()}") from None
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert not (out / "summary.json").exists()
    assert 2 <= _resume(out, monkeypatch) < GENERATIONS
    _assert_same_results(out, reference)


def test_resume_errors(tmp_path, slow_config, reference, sample_config):
    done = runner.invoke(app, ["run", "--resume", str(reference)])
    assert done.exit_code == 1 and "already complete" in done.output
    empty = runner.invoke(app, ["run", "--resume", str(tmp_path)])
    assert empty.exit_code == 1 and "no config.toml" in empty.output
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.toml").write_text((reference / "config.toml").read_text())
    (partial / "checkpoint.npz").write_bytes((reference / "checkpoint.npz").read_bytes())
    other = tmp_path / "other.toml"
    other.write_text(sample_config.with_overrides({"search.seed": 5}).to_toml())
    mismatch = runner.invoke(app, ["run", "--resume", str(partial), "--config", str(other)])
    assert mismatch.exit_code == 1 and "search.evaluator" in mismatch.output
    (partial / "config.toml").write_text(other.read_text())
    foreign = runner.invoke(app, ["run", "--resume", str(partial)])
    assert foreign.exit_code == 1 and "another config" in foreign.output
