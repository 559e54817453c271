"""Whole runs through the CLI: tournament, layer thresholds over all layers, test-split fitness."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from evoprune.cli import app

runner = CliRunner()


def _run(tmp_path, sample_config, overrides):
    config = tmp_path / "c.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 3, **overrides}).to_toml())
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    return out, summary, pd.read_csv(out / "logbook.csv"), pd.read_csv(out / "front.csv")


def test_tournament_run_is_elitist_scalar_search(tmp_path, sample_config):
    out, summary, logbook, front = _run(tmp_path, sample_config, {"search.algorithm": "tournament"})
    assert summary["algorithm"] == "tournament" and summary["evaluator"] == "fast"
    assert logbook["gen"].tolist() == [0, 1, 2, 3]
    assert logbook["fitness_max"].is_monotonic_increasing  # (mu + lambda): the best survives
    assert summary["evaluations"] == logbook["nevals"].sum()
    population = pd.read_csv(out / "population.csv")
    assert len(population) == 20 and population["fitness"].max() == summary["best"]["fitness"]


def test_layer_thresholds_over_all_layers(tmp_path, sample_config, prepared):
    from evoprune.models.target import build_target

    out, summary, logbook, front = _run(
        tmp_path,
        sample_config,
        {
            "search.layers": "all",
            "search.encoding": "layer_thresholds",
            "search.algorithm": "nsga2",
            "search.crossover": "sbx",
            "search.mutation": "polynomial",
        },
    )
    model = prepared.trained.model
    layers = build_target(model, "all").indices
    assert len(layers) >= 3  # the convolutions and both Dense layers
    assert summary["layers"] == "all" and summary["encoding"] == "layer_thresholds"
    assert summary["baseline"]["nonzero"] == sum(
        int(np.count_nonzero(model.layers[i].kernel.numpy())) for i in layers
    )
    # one threshold per pruned layer in every genome
    assert front["genome"].map(lambda g: len(g.split())).eq(len(layers)).all()
    assert (front["nonzero"] <= summary["baseline"]["nonzero"]).all()
    assert front["nonzero"].min() < summary["baseline"]["nonzero"] // 2  # pruning reaches the convs
    assert summary["best"]["compression"] == summary["baseline"]["nonzero"] / summary["best"]["nonzero"]


def test_fitness_on_the_test_split(tmp_path, sample_config):
    out, summary, logbook, front = _run(
        tmp_path, sample_config, {"data.fitness_split": "test", "data.validation_fraction": 0.0}
    )
    assert summary["fitness_split"] == "test"
    base, best = summary["baseline"], summary["best"]
    assert base["accuracy"] == base["test_accuracy"] and best["accuracy"] == best["test_accuracy"]
    assert front["accuracy"].equals(front["test_accuracy"])
    (tmp_path / "v").mkdir()
    _, other, _, _ = _run(tmp_path / "v", sample_config, {})
    assert other["baseline"]["accuracy"] != other["baseline"]["test_accuracy"]
