"""Fine-tuning: pruned weights stay zero, accuracy recovers, runs are deterministic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.refine.finetune import FinetuneSettings, HeadFinetuner, head_accuracy
from evoprune.scoring.evaluate import KerasEvaluator

runner = CliRunner()


def test_head_finetuning_keeps_mask_and_recovers_accuracy(prepared):
    model, ds = prepared.trained.model, prepared.dataset
    train = KerasEvaluator(model, ds.train, "fast")
    val = KerasEvaluator(model, ds.validation, "fast")
    magnitudes = np.abs(train.kernel)
    mask = magnitudes > np.quantile(magnitudes, 0.8)  # keep 20%
    tuner = HeadFinetuner(
        train.features, train.labels, train.kernel, train.bias, FinetuneSettings(steps=200, seed=0)
    )
    kernel, bias = tuner.tune(mask)
    assert np.all(kernel[~mask] == 0) and np.count_nonzero(kernel) <= mask.sum()
    before = head_accuracy(val.features, val.labels, train.kernel * mask, train.bias)
    after = head_accuracy(val.features, val.labels, kernel, bias)
    # a head scored from its weights agrees with the fast evaluator scoring its mask
    assert before == val.correct_counts(mask[None])[0] / val.n
    assert after > before + 0.02
    again = tuner.tune(mask)
    assert np.array_equal(again[0], kernel) and np.array_equal(again[1], bias)


def test_run_with_refine_front_then_export(tmp_path, sample_config, prepared):
    config = tmp_path / "c.toml"
    config.write_text(
        sample_config.with_overrides(
            {
                "search.generations": 3,
                "finetune.refine": "front",
                "finetune.steps": 50,
                "finetune.max_points": 5,
            }
        ).to_toml()
    )
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(out)]).exit_code == 0
    refined = pd.read_csv(out / "refined.csv")
    assert 1 <= len(refined) <= 5 + 8  # spread points, then a bisection
    assert refined["nonzero"].is_monotonic_increasing and refined["eval_index"].is_unique
    summary = json.loads((out / "summary.json").read_text())
    # each refined score is that point's head fine-tuned and scored again, by hand
    from evoprune.experiments.assemble import make_finetuner, make_problem
    from evoprune.experiments.configure import load_config
    from evoprune.search import checkpoint

    cfg = load_config(out / "config.toml")
    problem = make_problem(cfg.with_overrides({"finetune.refine": "none"}), prepared)
    tuner = make_finetuner(cfg, prepared, problem.evaluator.target)
    genomes = checkpoint.archive_genomes(checkpoint.load(out / "checkpoint.npz", cfg))
    for row in refined.itertuples():
        mask = problem.encoding.decode([genomes[row.eval_index]])[0][0]
        assert int(mask.sum()) == row.nonzero
        kernel, bias = tuner.tune(mask)
        ev = problem.evaluator
        assert row.refined_accuracy == head_accuracy(ev.features, ev.labels, kernel, bias)
    assert (refined["refined_accuracy"] > refined["accuracy"]).mean() >= 0.5  # tuning helps
    assert summary["refined"]["points"] == len(refined)
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 0, result.output
    assert "gzip size" in result.output and "(fine-tuned)" in result.output
    import keras

    from evoprune.models.training import accuracy, compile_model

    exported = keras.models.load_model(tmp_path / "m.keras", compile=False)
    compile_model(exported)
    best = summary["refined"]["best_within_1pp"]
    chosen = best or refined.sort_values("refined_accuracy").iloc[-1].to_dict()
    assert np.count_nonzero(exported.layers[-1].get_weights()[0]) == chosen["nonzero"]
    assert f"selected point {chosen['eval_index']} (fine-tuned)" in result.output
    # the exported model scores what the run reported for that fine-tuned head
    n = len(prepared.dataset.validation[1])
    assert abs(accuracy(exported, prepared.dataset.validation) - chosen["refined_accuracy"]) <= 1 / n
    bad = runner.invoke(app, ["export", str(out), "--rank", "99", "--out", str(tmp_path / "x.keras")])
    assert bad.exit_code == 1 and "Received: 99" in bad.output


def test_refine_needs_head_layers(sample_config):
    import pytest

    from evoprune.errors import ConfigError

    with pytest.raises(ConfigError, match="search.layers='all'"):
        sample_config.with_overrides({"finetune.refine": "front", "search.layers": "all"})


def test_refine_each_scores_both_splits_after_finetuning(sample_config, prepared):
    from evoprune.experiments.assemble import make_problem
    from evoprune.experiments.methods.evolution import run_search
    from evoprune.refine.finetune import RefiningEvaluator

    cfg = sample_config.with_overrides(
        {"search.generations": 1, "finetune.refine": "each", "finetune.steps": 20}
    )
    problem = make_problem(cfg, prepared)
    assert isinstance(problem.evaluator, RefiningEvaluator)
    assert isinstance(problem.test_evaluator, RefiningEvaluator)
    plain = make_problem(sample_config, prepared)
    genome = [[float(np.quantile(np.abs(plain.evaluator.kernel), 0.8))]]
    assert problem.evaluate(genome)[0].accuracy > plain.evaluate(genome)[0].accuracy
    result = run_search(cfg, prepared)
    assert result.summary["evaluations"] == len(result.archive)


def test_model_finetuning_keeps_mask_restores_model_and_helps(prepared):
    from evoprune.models.target import build_target
    from evoprune.models.training import accuracy
    from evoprune.refine.retrain import ModelFinetuner

    model, ds = prepared.trained.model, prepared.dataset
    before = [w.copy() for w in model.get_weights()]
    kernel = before[-2]
    mask = np.abs(kernel) > np.quantile(np.abs(kernel), 0.8)
    tuner = ModelFinetuner(
        model,
        ds.train,
        ds.validation,
        ds.test,
        build_target(model, "head"),
        epochs=1,
        learning_rate=0.005,
        batch_size=128,
        seed=0,
    )
    weights = tuner.tuned_weights(mask)
    assert np.all(weights[-2][~mask] == 0)
    assert not np.array_equal(weights[0], before[0])  # the convolutions were retrained too
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    try:
        model.layers[-1].kernel.assign(kernel * mask)
        pruned = accuracy(model, ds.validation)
    finally:
        model.set_weights(before)  # the session-shared model, whatever happens
    tuned, _ = tuner.score(mask)
    assert tuned > pruned + 0.02
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_cosine_model_finetuning_decays_to_zero_and_keeps_the_mask(prepared, monkeypatch):
    import keras

    from evoprune.models.target import build_target
    from evoprune.refine import retrain as model_module
    from evoprune.refine.retrain import ModelFinetuner

    model, ds = prepared.trained.model, prepared.dataset
    kernel = model.get_weights()[-2]
    mask = np.abs(kernel) > np.quantile(np.abs(kernel), 0.8)
    rates = []
    real = model_module.compile_model
    monkeypatch.setattr(
        model_module, "compile_model", lambda m, lr=0.005, **kw: (rates.append(lr), real(m, lr, **kw))
    )
    args = (model, ds.train, ds.validation, ds.test, build_target(model, "head"))
    cosine = ModelFinetuner(
        *args, epochs=1, learning_rate=0.005, batch_size=128, seed=0, lr_schedule="cosine"
    )
    weights = cosine.tuned_weights(mask)
    schedule, steps = rates[0], int(np.ceil(len(ds.train[1]) / 128))  # then recompiled for evaluation
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(steps)) == pytest.approx(0.0)
    assert np.all(weights[-2][~mask] == 0)
    rates.clear()
    constant = ModelFinetuner(*args, epochs=1, learning_rate=0.004, batch_size=128, seed=0).tuned_weights(
        mask
    )
    assert rates[0] == 0.004 and not np.array_equal(constant[0], weights[0])


def test_model_finetuning_with_dropout_does_not_depend_on_what_was_tuned_before():
    """Dropout draws from its layer's own seed generator, which ``fit`` advances: each
    fine-tuning restores it, so a mask tuned second equals the same mask tuned alone
    (what export relies on)."""
    import keras

    from evoprune.models.target import build_target
    from evoprune.refine.retrain import ModelFinetuner

    rng = np.random.default_rng(0)
    images = rng.random((256, 6, 6, 1), dtype=np.float32)
    labels = (images.reshape(256, -1).sum(axis=1) > 18).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kernel = model.get_weights()[-2]
    first, second = (np.abs(kernel) > np.quantile(np.abs(kernel), q) for q in (0.3, 0.6))
    args = (model, (images, labels), (images, labels), (images, labels), build_target(model, "head"))
    settings = dict(epochs=2, learning_rate=0.01, batch_size=32, seed=0)
    after_another = ModelFinetuner(*args, **settings)
    after_another.tuned_weights(first)
    alone = ModelFinetuner(*args, **settings).tuned_weights(second)
    for a, b in zip(after_another.tuned_weights(second), alone):
        np.testing.assert_array_equal(a, b)


def test_l2_penalty_shrinks_the_retrained_kernels_and_is_removed_afterwards(prepared):
    """``l2`` adds ``l2 x sum(w^2)`` of the pruned kernels to the loss while fine-tuning:
    the surviving weights come out smaller than without it, the mask holds, and the
    model's kernels carry no regularizer once it is done."""
    from evoprune.models.target import build_target
    from evoprune.refine.retrain import ModelFinetuner

    model, ds = prepared.trained.model, prepared.dataset
    before = [w.copy() for w in model.get_weights()]
    kernel = before[-2]
    mask = np.abs(kernel) > np.quantile(np.abs(kernel), 0.5)
    args = (model, ds.train, ds.validation, ds.test, build_target(model, "head"))
    settings = dict(epochs=1, learning_rate=0.005, batch_size=128, seed=0)
    plain = ModelFinetuner(*args, **settings).tuned_weights(mask)[-2]
    penalised = ModelFinetuner(*args, **settings, l2=0.05).tuned_weights(mask)[-2]
    assert np.all(penalised[~mask] == 0)
    assert np.sum(penalised**2) < 0.9 * np.sum(plain**2)
    assert model.layers[-1].kernel.regularizer is None and not model.losses
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_distillation_learns_from_the_unpruned_model_not_only_the_labels(prepared):
    """With the labels scrambled, plain fine-tuning learns noise; distillation (weight 1)
    still recovers the pruned model, so the teacher's outputs are what it learns from."""
    from evoprune.models.target import build_target
    from evoprune.models.training import accuracy
    from evoprune.refine.retrain import ModelFinetuner

    model, ds = prepared.trained.model, prepared.dataset
    before = [w.copy() for w in model.get_weights()]
    kernel = before[-2]
    mask = np.abs(kernel) > np.quantile(np.abs(kernel), 0.9)
    scrambled = (ds.train[0], np.random.default_rng(0).permutation(ds.train[1]))
    args = (model, scrambled, ds.validation, ds.test, build_target(model, "head"))
    settings = dict(epochs=2, learning_rate=0.002, batch_size=128, seed=0)
    taught = ModelFinetuner(*args, **settings, distill=1.0, temperature=4.0)
    plain = ModelFinetuner(*args, **settings)
    try:
        model.layers[-1].kernel.assign(kernel * mask)
        pruned = accuracy(model, ds.validation)
    finally:
        model.set_weights(before)
    taught_accuracy, _ = taught.score(mask)
    plain_accuracy, _ = plain.score(mask)
    assert taught_accuracy > pruned + 0.02
    assert taught_accuracy > plain_accuracy + 0.2
    assert np.all(taught.tuned_weights(mask)[-2][~mask] == 0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_distillation_loss_is_cross_entropy_plus_the_scaled_divergence():
    import tensorflow as tf

    from evoprune.refine.retrain import distillation_loss

    rng = np.random.default_rng(1)
    student = rng.normal(size=(5, 4)).astype(np.float32)
    teacher = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 2, 0])
    packed = np.concatenate([labels[:, None].astype(np.float32), teacher], axis=1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=student).numpy()
    np.testing.assert_allclose(distillation_loss(0.0, 4.0, True)(packed, student), ce, rtol=1e-5)
    same = np.concatenate([labels[:, None].astype(np.float32), student], axis=1)
    np.testing.assert_allclose(distillation_loss(1.0, 4.0, True)(same, student), 0.0, atol=1e-5)
    t, s = tf.nn.softmax(teacher / 2.0).numpy(), tf.nn.softmax(student / 2.0).numpy()
    kl = (t * np.log(t / s)).sum(axis=1)
    np.testing.assert_allclose(
        distillation_loss(0.25, 2.0, True)(packed, student), 0.75 * ce + 0.25 * 4 * kl, rtol=1e-4
    )
    probs = tf.nn.softmax(student).numpy()  # a softmax model: outputs are probabilities
    np.testing.assert_allclose(distillation_loss(0.0, 4.0, False)(packed, probs), ce, rtol=1e-4)
