"""bench with real trials in worker processes: the spawn pool and Dask agree with serial."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from evoprune.experiments import bench

TIMING = ["worker_pid", "search_time_s"]


@pytest.fixture(scope="module")
def tiny(sample_config, prepared):
    return sample_config.with_overrides(
        {
            "search.generations": 200,
            "search.max_evaluations": 30,
            "bench.seeds": 1,
            "bench.encodings": ["threshold"],
            "bench.algorithms": ["paper"],
            "bench.variants": ["average+random_reset"],
            "bench.pymoo": True,
            "bench.workers": 2,
        }
    )


@pytest.fixture(scope="module")
def serial(tiny, tmp_path_factory):
    trials = bench.bench(tiny, tmp_path_factory.mktemp("serial"), executor="serial")
    assert (trials["worker_pid"] == os.getpid()).all()
    return trials.sort_values("key").reset_index(drop=True)


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_bench_trials_in_worker_processes_match_serial(executor, tiny, serial, tmp_path):
    if executor == "dask":
        pytest.importorskip("distributed")
    trials = bench.bench(tiny, tmp_path, executor=executor)
    assert len(trials) == 2 and os.getpid() not in set(trials["worker_pid"])
    got = trials.sort_values("key").reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns=TIMING), serial.drop(columns=TIMING))
    saved = pd.read_csv(tmp_path / "trials.csv").sort_values("key").reset_index(drop=True)
    assert saved["key"].tolist() == got["key"].tolist()  # every trial was recorded at once
