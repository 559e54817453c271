"""Resume for every algorithm, refined runs and evaluation budgets: same result as one go."""

from __future__ import annotations

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
