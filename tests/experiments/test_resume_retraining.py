"""A run killed while retraining resumes after the last retraining it finished, and ends the same.

Fine-tuning the front (``refine = "front"``) and the magnitude baseline's rounds are
logged as they finish (``retrain.npz``); ``--resume`` replays them and retrains the rest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evoprune
from evoprune.errors import SearchInterrupted
from evoprune.experiments.rundir import RETRAIN, WEIGHTS, RunDir
from evoprune.refine.retrain import ModelFinetuner

FINETUNE = {
    "finetune.refine": "front",
    "finetune.scope": "model",
    "finetune.epochs": 1,
    "finetune.max_points": 4,
}


def _logged(run: Path) -> int:
    """Entries of a run's retraining log (0 without one), read as plain data."""
    if not (run / RETRAIN).is_file():
        return 0
    with np.load(run / RETRAIN, allow_pickle=False) as npz:
        return len(json.loads(bytes(npz["meta"]).decode())["entries"])


@pytest.fixture()
def retrainings(monkeypatch):
    """Counts whole-model fine-tunings (each mask trained once; memoized calls are not counted)."""
    calls = []
    real = ModelFinetuner.tuned_weights

    def counting(self, masks):
        before = len(self._cache)
        weights = real(self, masks)
        if len(self._cache) > before:
            calls.append(int(sum(np.count_nonzero(m) for m in masks)))
        return weights

    monkeypatch.setattr(ModelFinetuner, "tuned_weights", counting)
    return calls


def _kill_after_line(args: list[str], needle: str, timeout: float = 900.0) -> str:
    """Starts ``evoprune ARGS``, SIGKILLs it as soon as a stderr line holds ``needle``."""
    command = [sys.executable, "-m", "evoprune", *args]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            seen.append(line)
            if needle in line:
                proc.kill()  # like the OOM killer or a preemption: no goodbye
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(timeout) or proc.poll() is not None, "".join(seen)
    finally:
        proc.kill()
        proc.wait(60)
        reader.join(60)
    assert found.is_set(), f"the run ended before {needle!r}:\n{''.join(seen)}"
    return "".join(seen)


def test_sigkill_while_fine_tuning_then_resume_tunes_only_the_rest(
    tmp_path, sample_config, finished_run, retrainings
):
    config, reference = finished_run(generations=3, overrides=FINETUNE)
    total = len(pd.read_csv(reference / "refined.csv"))
    assert total >= 4, "too few fine-tuned points to interrupt in the middle"
    run = tmp_path / "run"
    _kill_after_line(["run", "--config", str(config), "--out", str(run)], "Fine-tuned point 3")
    logged = _logged(run)
    assert 3 <= logged < total and not (run / "summary.json").exists()
    retrainings.clear()  # the reference run may have been made in this process

    progress, lines = [], []
    result = evoprune.prune(
        out=run, resume=True, progress=lambda *a: progress.append(a[:3]), status=lines.append
    )
    assert len(retrainings) == total - logged  # only the points not logged were fine-tuned
    assert any("search had finished" in line for line in lines), lines
    assert {phase for phase, _, _ in progress} == {"finetune"}  # no generation bar at 0
    assert progress[-1] == ("finetune", total, total)
    pd.testing.assert_frame_equal(pd.read_csv(run / "refined.csv"), pd.read_csv(reference / "refined.csv"))
    expected = json.loads((reference / "summary.json").read_text())
    assert result.selected == expected["selected"] and result.selected is not None
    kept, again = RunDir(reference).read_weights(), RunDir(run).read_weights()
    assert sorted(kept) == sorted(again)
    for point in kept:
        for a, b in zip(kept[point], again[point]):
            np.testing.assert_array_equal(a, b)
    assert not (run / RETRAIN).exists()  # the finished run keeps its weights in weights.npz


MAGNITUDE = {
    "search.algorithm": "magnitude",
    "search.population": 8,
    "search.generations": 1,
    "finetune.epochs": 1,
    "finetune.max_points": 1,
}


def test_ctrl_c_between_magnitude_rounds_stops_there_and_resume_continues(
    tmp_path, sample_config, prepared, retrainings, monkeypatch
):
    config = sample_config.with_overrides(MAGNITUDE)
    whole = evoprune.prune(config=config, out=tmp_path / "whole")
    rounds = len(whole.population)
    assert rounds >= 3 and len(retrainings) == rounds

    real, trained = ModelFinetuner.retrain, []

    def interrupted(self, masks, *args, **kwargs):
        trained.append(1)
        if len(trained) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the second round retrains
        return real(self, masks, *args, **kwargs)

    monkeypatch.setattr(ModelFinetuner, "retrain", interrupted)
    retrainings.clear()
    run = tmp_path / "run"
    resume = re.escape(f"evoprune.prune(out={str(run)!r}, resume=True)")
    with pytest.raises(SearchInterrupted, match=rf"after magnitude round 2; .*--resume .*{resume}"):
        evoprune.prune(config=config, out=run)
    assert _logged(run) == 2

    monkeypatch.setattr(ModelFinetuner, "retrain", real)
    retrainings.clear()
    progress = []
    resumed = evoprune.prune(out=run, resume=True, progress=lambda *a: progress.append(a[:3]))
    assert len(retrainings) == rounds - 2
    assert [p for p in progress if p[0] == "round"][-1] == ("round", rounds, rounds)
    columns = [c for c in whole.population.columns if c != "time_s"]
    pd.testing.assert_frame_equal(resumed.population[columns], whole.population[columns])
    assert resumed.selected == whole.selected
    kept, again = RunDir(whole.path).read_weights(), RunDir(run).read_weights()
    assert sorted(kept) == sorted(again) and (run / WEIGHTS).is_file()
    for point in kept:
        for a, b in zip(kept[point], again[point]):
            np.testing.assert_array_equal(a, b)


def test_ctrl_c_between_gmp_levels_then_resume_retrains_only_the_rest(
    tmp_path, sample_config, prepared, retrainings, monkeypatch
):
    """A retraining method uses the same log: GMP's levels (``gmp.compression`` and the curve's)."""
    config = evoprune.load_config(
        sample_config,
        {
            "search.algorithm": "gmp",
            "gmp.compression": 4.0,
            "gmp.frequency": 20,
            "select.compressions": [2.0, 8.0],
            "finetune.epochs": 1,
        },
    )
    real, trained = ModelFinetuner.retrain, []

    def counted(self, masks, *args, **kwargs):
        trained.append(1)
        return real(self, masks, *args, **kwargs)

    monkeypatch.setattr(ModelFinetuner, "retrain", counted)
    whole = evoprune.prune(config=config, out=tmp_path / "whole")
    assert len(trained) == 3  # one retraining per level

    def interrupted(self, masks, *args, **kwargs):
        if not trained:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first level retrains
        return counted(self, masks, *args, **kwargs)

    monkeypatch.setattr(ModelFinetuner, "retrain", interrupted)
    trained.clear()
    run = tmp_path / "run"
    with pytest.raises(SearchInterrupted, match=r"after GMP level 1; .*--resume"):
        evoprune.prune(config=config, out=run)
    assert _logged(run) == 1 and len(trained) == 1

    monkeypatch.setattr(ModelFinetuner, "retrain", counted)
    trained.clear()
    resumed = evoprune.prune(out=run, resume=True)
    assert len(trained) == 2
    pd.testing.assert_frame_equal(resumed.population, whole.population)
    pd.testing.assert_frame_equal(resumed.curve, whole.curve)
    assert resumed.selected == whole.selected
    kept, again = RunDir(whole.path).read_weights(), RunDir(run).read_weights()
    assert sorted(kept) == sorted(again)
    for point in kept:
        for a, b in zip(kept[point], again[point]):
            np.testing.assert_array_equal(a, b)
