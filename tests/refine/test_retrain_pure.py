"""Whole-model fine-tuning is a pure function of (model, mask, data, settings, seed).

A point tuned mid-run, after others, must give the weights the same point gets tuned
alone in a fresh process (what ``export`` does when a run kept no weights), bit for bit
on CPU: Dropout's seed generator, BatchNorm's statistics, the optimizer and the data
order may not carry anything over from what ran before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import evoprune
from evoprune.models.target import build_target
from evoprune.refine.retrain import ModelFinetuner

SETTINGS = dict(epochs=1, learning_rate=0.005, batch_size=128, seed=3)

ALONE = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from pathlib import Path
    from evoprune.config import Config
    from evoprune.data.dataset import load_dataset
    from evoprune.models.target import build_target
    from evoprune.models.training import import_tensorflow_quietly, load_model_file
    from evoprune.refine.retrain import ModelFinetuner

    import_tensorflow_quietly()
    random.seed(int(sys.argv[3]))  # a process whose Python generator is anywhere at all
    ds = load_dataset(Config().with_overrides({"data.dataset": "mnist-sample"}).data)
    model = load_model_file(Path(sys.argv[1]))
    mask = np.load(sys.argv[2])["mask"]
    tuner = ModelFinetuner(model, ds.train, ds.validation, ds.test, build_target(model, "head"), %s)
    np.savez(sys.argv[2], *tuner.tuned_weights(mask))
    """
    % ", ".join(f"{k}={v!r}" for k, v in SETTINGS.items())
)


def _env() -> dict:
    src = str(Path(evoprune.__file__).resolve().parents[1])
    saved = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, saved) if p)}


def small_cnn(kind: str, dataset):
    """A small CNN with a Dropout or a BatchNormalization layer, trained one epoch."""
    import keras

    from evoprune.data.dataset import train_pipeline
    from evoprune.models.training import compile_model
    from evoprune.seeding import seed_everything

    seed_everything(0)
    extra = {"dropout": keras.layers.Dropout(0.5), "batchnorm": keras.layers.BatchNormalization()}[kind]
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            *([extra] if kind == "batchnorm" else []),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            *([extra] if kind == "dropout" else []),
            keras.layers.Dense(10),
        ]
    )
    compile_model(model)
    model.fit(train_pipeline(dataset.train, 128, 0), epochs=1, verbose=0)
    return model


def _masks(model) -> list[np.ndarray]:
    kernel = np.abs(model.get_weights()[-2])
    return [kernel > np.quantile(kernel, q) for q in (0.3, 0.5, 0.6, 0.8)]


@pytest.mark.parametrize("kind", ["dropout", "batchnorm"])
def test_a_point_tuned_after_three_others_equals_it_tuned_alone_in_a_fresh_process(kind, prepared, tmp_path):
    import keras

    from evoprune.models.training import save_model

    ds = prepared.dataset
    model = small_cnn(kind, ds)
    path = tmp_path / "model.keras"
    save_model(model, path)
    masks = _masks(model)
    keras.random.uniform((3,))  # other work draws from the global generators first
    tuner = ModelFinetuner(model, ds.train, ds.validation, ds.test, build_target(model, "head"), **SETTINGS)
    for mask in masks[:3]:
        tuner.tuned_weights(mask)
    mid_run = tuner.tuned_weights(masks[3])

    script, out = tmp_path / "alone.py", tmp_path / "alone.npz"
    script.write_text(ALONE)
    np.savez(out, mask=masks[3])
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(out), "12345"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as saved:
        alone = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    assert len(alone) == len(mid_run)
    for a, b in zip(mid_run, alone):
        np.testing.assert_array_equal(a, b)


def test_export_of_a_dropout_model_reports_the_runs_accuracy_kept_or_retrained(prepared, tmp_path):
    """The run's selected fine-tuned point, exported from its kept weights and, without
    them, retrained in a fresh process, is the model the run measured."""
    ds = prepared.dataset
    model = small_cnn("dropout", ds)
    run_dir = tmp_path / "run"
    result = evoprune.prune(
        model,
        ds.train,
        ds.validation,
        ds.test,
        out=run_dir,
        layers="head",
        algorithm="nsga2",
        population=8,
        generations=2,
        seed=0,
        finetune__refine="front",
        finetune__scope="model",
        finetune__epochs=1,
        finetune__max_points=2,
        select__tolerance_pp=100.0,  # every fine-tuned point qualifies: one is selected
    )
    chosen = result.selected
    assert chosen is not None and chosen["refined"]
    kept = evoprune.export(run_dir, tmp_path / "kept.keras")
    n = len(ds.test[1])  # the run's Keras metric is float32: compare correct images

    def correct(value: float) -> int:
        return round(value * n)

    assert kept.refined and correct(kept.sidecar["test_accuracy"]) == correct(chosen["test_accuracy"])

    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    (bare / "weights.npz").unlink()  # no kept weights: export retrains the point
    target = tmp_path / "retrained.keras"
    done = subprocess.run(
        [sys.executable, "-m", "evoprune", "export", str(bare), "--out", str(target)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sidecar = json.loads(target.with_name(target.name + ".json").read_text())
    assert correct(sidecar["test_accuracy"]) == correct(chosen["test_accuracy"])
    import keras

    retrained = keras.models.load_model(target, compile=False).get_weights()
    for a, b in zip(retrained, keras.models.load_model(tmp_path / "kept.keras", compile=False).get_weights()):
        np.testing.assert_array_equal(a, b)
