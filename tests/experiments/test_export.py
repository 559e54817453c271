"""export: the chosen front point's masks land in the saved model, which scores like the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from evoprune.cli import app

runner = CliRunner()


def _run(tmp_path, sample_config, overrides, name="run"):
    config = tmp_path / f"{name}.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 2, **overrides}).to_toml())
    out = tmp_path / name
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _load(path):
    import keras

    from evoprune.models.training import compile_model

    model = keras.models.load_model(path, compile=False)
    compile_model(model)
    return model


def _check_export(out, rank, prepared, tmp_path):
    """Exports ``rank`` and checks it against the front point of that fitness rank."""
    from evoprune.experiments.configure import load_config
    from evoprune.models.target import build_target
    from evoprune.models.training import accuracy

    cfg = load_config(out / "config.toml")
    front = pd.read_csv(out / "front.csv").sort_values("fitness", ascending=False, kind="stable")
    row = front.iloc[rank]
    target = tmp_path / f"rank{rank}.keras"
    result = runner.invoke(app, ["export", str(out), "--rank", str(rank), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert f"rank {rank} point {int(row['eval_index'])}\n" in result.output
    assert "(fine-tuned)" not in result.output
    exported = _load(target)
    trained = prepared.trained.model
    layers = build_target(trained, cfg.search.layers).indices
    nonzero = 0
    for index, (got, base) in enumerate(zip(exported.layers, trained.layers)):
        weights, original = got.get_weights(), base.get_weights()
        if index not in layers:  # unpruned layers are exported unchanged
            assert all(np.array_equal(a, b) for a, b in zip(weights, original)), index
            continue
        kernel = weights[0]
        kept = kernel != 0
        # a pruned kernel keeps original weights where the mask is on, zeros elsewhere
        assert np.array_equal(kernel[kept], original[0][kept]), index
        assert np.array_equal(weights[1], original[1])  # biases are not pruned
        nonzero += int(kept.sum())
    assert nonzero == row["nonzero"]
    assert f"nonzero pruned weights: {nonzero} of " in result.output
    n = len(prepared.dataset.validation[1])
    assert abs(accuracy(exported, prepared.dataset.validation) - row["accuracy"]) <= 1 / n
    return row


def test_export_unrefined_run_by_rank(tmp_path, sample_config, prepared):
    out = _run(tmp_path, sample_config, {})
    best = _check_export(out, 0, prepared, tmp_path)
    second = _check_export(out, 1, prepared, tmp_path)
    assert best["fitness"] >= second["fitness"] and best["eval_index"] != second["eval_index"]
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert best["nonzero"] == summary["best"]["nonzero"]
    front_size = len(pd.read_csv(out / "front.csv"))
    bad = runner.invoke(
        app, ["export", str(out), "--rank", str(front_size), "--out", str(tmp_path / "x.keras")]
    )
    assert bad.exit_code == 1 and f"rank in 0..{front_size - 1}. Received: {front_size}" in bad.output
    assert f"0..{front_size - 1}" in bad.output and not (tmp_path / "x.keras").exists()


def test_export_multi_layer_masks(tmp_path, sample_config, prepared):
    out = _run(
        tmp_path,
        sample_config,
        {
            "search.layers": "all",
            "search.encoding": "layer_thresholds",
            "search.crossover": "blend",
            "search.mutation": "gaussian",
        },
    )
    row = _check_export(out, 0, prepared, tmp_path)
    assert row["nonzero"] > 0


def test_export_refuses_bad_targets(tmp_path, sample_config, prepared):
    out = _run(tmp_path, sample_config, {})
    wrong = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "m.h5")])
    assert wrong.exit_code == 1 and "m.h5" in wrong.output and ".keras" in wrong.output
    (out / "summary.json").unlink()
    unfinished = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "m.keras")])
    assert unfinished.exit_code == 1 and "summary.json" in unfinished.output
    for bad in (wrong, unfinished):
        assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1


def test_a_run_on_relative_paths_exports_from_another_directory(
    tmp_path, sample_config, prepared, monkeypatch
):
    from evoprune.data.dataset import as_npz_arrays
    from evoprune.models.training import save_model

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    save_model(prepared.trained.model, work / "m.keras")
    np.savez(work / "d.npz", **as_npz_arrays(prepared.dataset))
    monkeypatch.chdir(work)
    config = sample_config.with_overrides({"search.generations": 1, "model.model_file": "m.keras"})
    (work / "run.toml").write_text(config.to_toml())
    result = runner.invoke(app, ["run", "--config", "run.toml", "--data-file", "d.npz", "--out", "run"])
    assert result.exit_code == 0, result.output
    saved = (work / "run" / "config.toml").read_text()
    assert f'model_file = "{work.resolve() / "m.keras"}"' in saved
    assert f'data_file = "{work.resolve() / "d.npz"}"' in saved

    monkeypatch.chdir(elsewhere)  # the run's inputs are found from here as well
    result = runner.invoke(app, ["export", str(work / "run"), "--out", "pruned.keras"])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "pruned.keras").is_file()
