"""Resume for every algorithm, refined runs and evaluation budgets: same result as one go."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from evoprune.experiments.methods import RunContext
from evoprune.experiments.methods import evolution as experiments
from evoprune.experiments.methods.evolution import run_search

STOP_AT = 2


class Stop(Exception):
    """Stands in for a kill right after generation ``STOP_AT`` was checkpointed."""


def _stop(state) -> None:
    if state.generation == STOP_AT:
        raise Stop


VARIANTS = {
    "nsga2": {"search.algorithm": "nsga2"},
    "spea2": {"search.algorithm": "spea2"},
    "nsga3": {"search.algorithm": "nsga3"},
    "tournament": {"search.algorithm": "tournament"},
    "mask genome": {
        "search.algorithm": "nsga2",
        "search.encoding": "mask",
        "search.crossover": "uniform",
        "search.mutation": "flip_bit",
    },
    "refine front": {"finetune.refine": "front", "finetune.steps": 20, "finetune.max_points": 3},
    "refine each": {"finetune.refine": "each", "finetune.steps": 10},
    "max evaluations": {"search.generations": 50, "search.max_evaluations": 50},
}


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.front, b.front)
    pd.testing.assert_frame_equal(a.population, b.population)
    pd.testing.assert_frame_equal(a.archive, b.archive)
    cols = [c for c in a.logbook.columns if c != "time_s"]
    pd.testing.assert_frame_equal(a.logbook[cols], b.logbook[cols])
    for key in ("best", "evaluations", "front_size"):
        assert a.summary[key] == b.summary[key], key
    if a.refined is not None or b.refined is not None:
        pd.testing.assert_frame_equal(a.refined, b.refined)
        assert a.summary["refined"]["best_within_1pp"] == b.summary["refined"]["best_within_1pp"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_resume_matches_an_uninterrupted_run(name, tmp_path, sample_config, prepared, monkeypatch):
    monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", "0")  # every generation: one to stop after
    cfg = sample_config.with_overrides({"search.population": 20, "search.generations": 5, **VARIANTS[name]})
    reference = run_search(cfg, prepared)
    with pytest.raises(Stop):
        run_search(cfg, prepared, RunContext(observers=[_stop], checkpoint=tmp_path / "checkpoint.npz"))
    started, real = [], experiments.evolve

    def spy(*args, state=None, **kwargs):
        started.append(None if state is None else state.generation)
        return real(*args, state=state, **kwargs)

    monkeypatch.setattr(experiments, "evolve", spy)
    resumed = run_search(cfg, prepared, RunContext(checkpoint=tmp_path / "checkpoint.npz", resume=True))
    assert started == [STOP_AT]  # continued from the checkpoint, not from scratch
    assert len(resumed.logbook) > STOP_AT + 1  # and ran further generations
    _same(resumed, reference)


def _saved_generations(monkeypatch, delay: float = 0.0) -> list[int]:
    """The generations checkpoint.save is called with, from now on (each write ``delay`` s slower)."""
    from evoprune.search import checkpoint

    saved, real = [], checkpoint.save

    def spy(path, state, *args, **kwargs):
        saved.append(state.generation)
        time.sleep(delay)
        return real(path, state, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", spy)
    return saved


@pytest.mark.parametrize("every, expected", [("0", list(range(7))), ("3600", [0, 6]), (None, None)])
def test_checkpoints_are_throttled_but_keep_the_first_and_last_generation(
    every, expected, tmp_path, sample_config, prepared, monkeypatch
):
    if every is None:
        monkeypatch.delenv("EVOPRUNE_CHECKPOINT_EVERY_S", raising=False)
    else:
        monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", every)
    saved = _saved_generations(monkeypatch)
    cfg = sample_config.with_overrides({"search.generations": 6})
    result = run_search(cfg, prepared, RunContext(checkpoint=tmp_path / "checkpoint.npz"))
    if expected is None:  # the default, one a second: this search takes a fraction of that
        assert saved[0] == 0 and saved[-1] == 6 and len(saved) <= 2 + result.summary["search_time_s"]
    else:
        assert saved == expected
    assert result.summary["times_s"]["checkpoint"] > 0


def test_slow_checkpoint_writes_stay_a_small_share_of_the_search(
    tmp_path, sample_config, prepared, monkeypatch
):
    monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", "0.001")  # the interval alone would write each one
    saved = _saved_generations(monkeypatch, delay=0.05)  # as a long search's archive makes writes slow
    cfg = sample_config.with_overrides({"search.generations": 40})
    result = run_search(cfg, prepared, RunContext(checkpoint=tmp_path / "checkpoint.npz"))
    assert saved[0] == 0 and saved[-1] == 40 and len(saved) < 20
    times = result.summary["times_s"]
    assert times["checkpoint"] <= (times["search"] + times["checkpoint"]) / 15 + 2 * 0.06  # first and last


def test_a_stop_request_checkpoints_the_generation_it_stops_after(
    tmp_path, sample_config, prepared, monkeypatch
):
    monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", "3600")  # nothing after generation 0 unless forced
    saved = _saved_generations(monkeypatch)
    requested, stops = [], []

    def ctrl_c(state) -> None:  # a Ctrl-C after generation 3 was (not) checkpointed: while its bar draws
        if state.generation == 3:
            requested.append(True)

    def checkpointed(what: str) -> None:  # the caller's interrupt check: it stops there
        stops.append(what)
        raise Stop

    context = RunContext(
        observers=[ctrl_c],
        checkpoint=tmp_path / "checkpoint.npz",
        stop_requested=lambda: bool(requested),
        checkpointed=checkpointed,
    )
    with pytest.raises(Stop):
        run_search(sample_config.with_overrides({"search.generations": 6}), prepared, context)
    assert saved == [0, 4] and stops == ["generation 4"]  # the generation named is the one written


def test_a_bad_checkpoint_interval_is_one_line(tmp_path, sample_config, prepared, monkeypatch):
    from evoprune.errors import ConfigError

    monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", "soon")
    with pytest.raises(
        ConfigError, match=r"^Expected \$EVOPRUNE_CHECKPOINT_EVERY_S >= 0 \(seconds\)\. Received: 'soon'$"
    ):
        run_search(sample_config, prepared, RunContext(checkpoint=tmp_path / "checkpoint.npz"))


def test_a_bad_checkpoint_interval_fails_before_the_run_starts(tmp_path, monkeypatch):
    import evoprune
    from evoprune.errors import ConfigError

    monkeypatch.setenv("EVOPRUNE_CHECKPOINT_EVERY_S", "-1")
    with pytest.raises(ConfigError, match=r"Received: '-1'$"):
        evoprune.prune(dataset="mnist-sample", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
