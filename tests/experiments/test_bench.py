"""bench: grid with invalid pairings skipped, equal budgets, pymoo peer, resume, report."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.experiments import bench
from evoprune.experiments import trials as tr

runner = CliRunner()


@pytest.fixture(scope="module")
def small(sample_config):
    return sample_config.with_overrides(
        {
            "search.generations": 200,
            "search.max_evaluations": 40,
            "finetune.refine": "front",
            "finetune.steps": 20,
            "finetune.max_points": 3,
            "bench.seeds": 2,
            "bench.encodings": ["threshold", "mask"],
            "bench.algorithms": ["paper"],
            "bench.variants": ["average+random_reset", "uniform+flip_bit"],
            "bench.pymoo": True,
            "bench.executor": "serial",
        }
    )


def test_grid_skips_invalid_pairings(small):
    specs, skipped = bench.grid(small, {"threshold": 1, "mask": 1500})
    cells = {s["cell"] for s in specs}
    assert cells == {
        "threshold/paper/average+random_reset",
        "mask/paper/uniform+flip_bit",
        "threshold/pymoo-nsga2/default",
        "mask/pymoo-nsga2/default",
    }
    assert len(specs) == 8 and len({s["key"] for s in specs}) == 8
    assert any("mask with average+random_reset" in line for line in skipped)
    assert any("threshold with uniform+flip_bit" in line for line in skipped)


def test_bench_runs_resumes_and_ranks(small, tmp_path, monkeypatch):
    trials = bench.bench(small, tmp_path)
    assert len(trials) == 8 and (trials["evaluations"] == 40).all()
    # every trial, pymoo's too, fine-tuned its front: a head within 1 point was found
    assert trials["refined_test_accuracy"].notna().all(), trials
    drop = 100 * (trials["baseline_test_accuracy"] - trials["refined_test_accuracy"])
    assert drop.to_numpy() == pytest.approx(trials["refined_test_drop_pp"].to_numpy())
    calls = []
    real = tr.run_trial
    monkeypatch.setattr(tr, "run_trial", lambda spec: calls.append(spec) or real(spec))
    again = bench.bench(small.with_overrides({"bench.seeds": 3}), tmp_path)
    assert len(again) == 12 and not again["key"].duplicated().any()
    assert len(calls) == 4 and all(s["key"].endswith("seed2") for s in calls)  # only the new seed
    table = bench.write_outputs(small, again, tmp_path)
    assert sorted(table["cell"]) == sorted(again["cell"].unique())
    paper_hv = again.loc[again["cell"] == bench.PAPER, "hypervolume"].to_numpy()
    for row in table.itertuples():
        hv = again.loc[again["cell"] == row.cell, "hypervolume"].to_numpy()
        assert row.seeds == 3 and row.hv_median == pytest.approx(np.median(hv))
        # A12 by its definition: the share of (cell, paper) pairs the cell wins, ties half
        pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a in hv for b in paper_hv]
        assert row.a12_vs_paper == pytest.approx(sum(pairs) / len(pairs))
    assert table["hv_median"].is_monotonic_decreasing
    assert table["a12_vs_paper"].nunique() > 1  # not every cell ties with the paper's
    report = (tmp_path / "report.md").read_text()
    assert "(paper)" in report and "pymoo-nsga2" in report and "Skipped cells" in report
    assert (tmp_path / "hypervolume.png").is_file()


def test_cli_bench_rejects_bad_executor(small, tmp_path):
    config = tmp_path / "b.toml"
    config.write_text(small.to_toml())
    result = runner.invoke(
        app, ["bench", "--config", str(config), "--executor", "threads", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "'threads' is not one of" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_bench_resume_allows_more_seeds_but_not_other_settings(small, tmp_path):
    from evoprune.errors import EvopruneError
    from evoprune.experiments.rundir import check_resumable

    (tmp_path / "trials.csv").write_text("key\n")
    (tmp_path / "config.toml").write_text(small.to_toml())
    check_resumable(small.with_overrides({"bench.seeds": 5}), tmp_path, free=("bench", "compare"))
    with pytest.raises(EvopruneError, match="search.max_evaluations"):
        check_resumable(
            small.with_overrides({"search.max_evaluations": 99}), tmp_path, free=("bench", "compare")
        )


def test_bench_applies_each_algorithms_own_rules_before_any_output(small, tmp_path):
    config = tmp_path / "b.toml"
    config.write_text(small.with_overrides({"search.population": 8, "search.algorithm": "nsga2"}).to_toml())
    result = runner.invoke(app, ["bench", "--config", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "search.population >= 20 for algorithm 'paper'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()
