"""The TOML files shipped in configs/ load, validate and say what the README says they do."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoprune.config import Config
from evoprune.experiments.configure import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_every_shipped_config_loads_and_round_trips(tmp_path):
    paths = sorted(CONFIGS.glob("*.toml"))
    assert {p.name for p in paths} >= {"paper.toml", "notebook.toml", "compare.toml"}
    for path in paths:
        config = load_config(path)
        assert isinstance(config, Config)
        again = tmp_path / path.name
        again.write_text(config.to_toml())
        assert load_config(again) == config, path.name


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "paper.toml",
            {
                "data.fitness_split": "validation",
                "search.algorithm": "paper",
                "search.population": 20,
                "search.generations": 30,
                "model.epochs": 5,
            },
        ),
        (
            "notebook.toml",
            {
                "data.fitness_split": "test",
                "data.validation_fraction": 0.0,
                "search.population": 20,
                "search.generations": 30,
            },
        ),
        (
            "compare.toml",
            {
                "search.max_evaluations": 600,
                "compare.seeds": 10,
                "compare.algorithms": ("paper", "nsga2", "spea2", "nsga3"),
            },
        ),
    ],
)
def test_shipped_config_settings(name, expected):
    config = load_config(CONFIGS / name)
    for dotted, value in expected.items():
        section, key = dotted.split(".")
        assert getattr(getattr(config, section), key) == value, dotted
