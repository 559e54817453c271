"""Matched-compression curves through compare: every method's model at exactly each level."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import evoprune


@pytest.fixture(scope="module")
def compared(tmp_path_factory, sample_config):
    out = tmp_path_factory.mktemp("curves") / "compare"
    config = evoprune.load_config(
        sample_config,
        {
            "model.architecture": "lenet-300-100",
            "search.algorithm": "nsga2",
            "search.layers": "dense",
            "search.encoding": "layer_thresholds",
            "search.crossover": "sbx",
            "search.mutation": "polynomial",
            "search.population": 8,
            "search.generations": 1,
            "finetune.scope": "model",
            "finetune.epochs": 1,
            "gmp.compression": 4.0,
            "compare.seeds": 2,
            "compare.algorithms": ["nsga2", "gmp-global", "magnitude"],
            "select.compressions": [4.0],
        },
    )
    return evoprune.compare(config, out), out


def test_every_method_makes_a_model_at_exactly_each_level(compared):
    result, out = compared
    curves = pd.read_csv(out / "curves.csv")
    assert sorted(curves.columns) == sorted(
        [
            "algorithm",
            "seed",
            "compression",
            "nonzero",
            "accuracy",
            "test_accuracy",
            "drop_pp",
            "test_drop_pp",
            "per_layer",
        ]
    )
    assert len(curves) == 2 * 3 and set(curves["algorithm"]) == {"nsga2", "gmp-global", "magnitude"}
    assert (curves["nonzero"] == round(266_200 / 4.0)).all()
    trials = result.trials.set_index(["algorithm", "seed"])
    for row in curves.itertuples():
        base = trials.loc[(row.algorithm, row.seed)]
        assert row.test_drop_pp == pytest.approx(100 * (base["baseline_test_accuracy"] - row.test_accuracy))
        assert sum(json.loads(row.per_layer).values()) > 0
    report = (out / "report.md").read_text()
    assert "## Matched compression" in report and "| 4x | gmp-global | 2 |" in report
    assert (out / "curve.png").is_file()


def test_magnitude_levels_pass_through_halvings(sample_config):
    config = evoprune.load_config(
        sample_config,
        {
            "model.architecture": "lenet-300-100",
            "search.algorithm": "magnitude",
            "search.layers": "dense",
            "finetune.scope": "model",
            "finetune.epochs": 1,
            "select.compressions": [3.0],
        },
    )
    result = evoprune.prune(config=config)
    rounds = result.population
    assert list(rounds["nonzero"]) == [round(266_200 / 2.0), round(266_200 / 3.0)]  # 2x, then the level
    assert result.summary["magnitude"]["rounds"] == 2
    assert result.curve.loc[0, "accuracy"] == rounds.loc[1, "accuracy"]
