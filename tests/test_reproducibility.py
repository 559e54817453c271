"""Same seed and config: bit-identical weights and results across processes; seeds differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd


def _run(tmp_path, name, config, seed):
    env = {**os.environ, "EVOPRUNE_CACHE_DIR": str(tmp_path / f"cache-{name}")}
    out = tmp_path / name
    args = [
        sys.executable,
        "-m",
        "evoprune",
        "run",
        "--config",
        str(config),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"run {name} hung:\n{exc.stdout}\n{exc.stderr}") from None
    assert done.returncode == 0, f"run {name} failed:\n{done.stdout}\n{done.stderr}"
    return out, next((tmp_path / f"cache-{name}").glob("*.keras"))


def _weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def test_two_processes_train_and_search_identically(tmp_path, sample_config):
    config = tmp_path / "c.toml"
    config.write_text(sample_config.with_overrides({"search.generations": 4}).to_toml())
    a, model_a = _run(tmp_path, "a", config, 0)
    b, model_b = _run(tmp_path, "b", config, 0)
    c, model_c = _run(tmp_path, "c", config, 1)
    assert all(np.array_equal(x, y) for x, y in zip(_weights(model_a), _weights(model_b)))
    assert not all(np.array_equal(x, y) for x, y in zip(_weights(model_a), _weights(model_c)))
    sa, sb, sc = (json.loads((d / "summary.json").read_text()) for d in (a, b, c))
    assert sa["best"] == sb["best"] and sa["baseline"] == sb["baseline"]
    assert pd.read_csv(a / "front.csv").equals(pd.read_csv(b / "front.csv"))
    assert sa["baseline"] != sc["baseline"]
    assert sa["dataset_checksum"] == sb["dataset_checksum"]
    assert {"tensorflow", "keras", "deap", "numpy"} <= set(sa["versions"])
