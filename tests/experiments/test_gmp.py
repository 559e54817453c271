"""The gmp method: one gradual-pruning retraining to an exact size, its curve, export, config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import evoprune
from evoprune.cli import app
from evoprune.errors import ConfigError

SETTINGS = {
    "model.architecture": "lenet-300-100",
    "search.layers": "dense",
    "finetune.scope": "model",
    "finetune.epochs": 1,
    "finetune.model_learning_rate": 0.003,
    "gmp.frequency": 20,
}


@pytest.fixture(scope="module")
def gmp_run(tmp_path_factory, sample_config):
    out = tmp_path_factory.mktemp("gmp") / "run"
    config = evoprune.load_config(
        sample_config,
        {
            **SETTINGS,
            "search.algorithm": "gmp-global",
            "gmp.compression": 12.0,
            "select.compressions": [12.0, 30.0],
        },
    )
    return evoprune.prune(config=config, out=out), out


def test_gmp_prunes_to_exactly_the_target_in_one_retraining(gmp_run):
    result, out = gmp_run
    total = result.summary["baseline"]["nonzero"]
    chosen = result.selected
    assert chosen["nonzero"] == round(total / 12.0) and chosen["refined"]
    assert result.summary["gmp"]["allocation"] == "global" and result.summary["gmp"]["retrain_epochs"] == 1
    # the curve: one model per level at exactly its size, the 12x one being the selected model
    curve = result.curve
    assert list(curve["compression"]) == [12.0, 30.0]
    assert list(curve["nonzero"]) == [round(total / 12.0), round(total / 30.0)]
    assert curve.loc[0, "accuracy"] == chosen["accuracy"]
    base = result.summary["baseline"]
    assert curve["test_drop_pp"].tolist() == pytest.approx(
        [100 * (base["test_accuracy"] - a) for a in curve["test_accuracy"]]
    )
    per_layer = json.loads(curve.loc[1, "per_layer"])
    assert set(per_layer) == {"fc1", "fc2", "fc3"}
    assert per_layer["fc3"] > per_layer["fc1"]  # one global threshold spares the small output layer
    on_disk = json.loads((out / "summary.json").read_text())
    times = on_disk["times_s"]  # the curve's own phase, and the phases still add up to the wall time
    assert times["curve"] >= 0 and sum(times.values()) == pytest.approx(on_disk["wall_time_s"])
    assert on_disk["curve"] == [  # the same rows, per_layer an object rather than JSON text
        {**row, "per_layer": json.loads(row["per_layer"])} for row in result.curve.to_dict("records")
    ]
    assert on_disk["curve"][1]["per_layer"] == per_layer
    assert "members" not in on_disk["gmp"] and on_disk["gmp"]["allocation"] == "global"  # no gmp-pbt keys
    assert (out / "curve.csv").read_text().splitlines()[0] == (
        "compression,nonzero,accuracy,test_accuracy,drop_pp,test_drop_pp,per_layer"
    )
    shown = CliRunner().invoke(app, ["show", str(out)])  # the curve's levels, printed again
    assert shown.exit_code == 0, shown.output
    assert [line.split(":")[0] for line in shown.output.splitlines()[1:3]] == ["curve 12x", "curve 30x"]
    assert (
        f"nonzero {int(curve.loc[1, 'nonzero']):,}, accuracy {curve.loc[1, 'accuracy']:.4f}" in shown.output
    )


def test_gmp_model_is_the_one_the_run_measured(gmp_run, tmp_path):
    result, out = gmp_run
    model = result.model()
    kept = sum(int(np.count_nonzero(model.get_layer(n).kernel.numpy())) for n in ("fc1", "fc2", "fc3"))
    assert kept == result.selected["nonzero"]
    report = evoprune.export(out, tmp_path / "m.tflite")
    assert report.sidecar["nonzero"] == result.selected["nonzero"]
    assert report.sidecar["test_accuracy"] == pytest.approx(result.selected["test_accuracy"], abs=1e-6)


def test_uniform_allocation_prunes_every_layer_alike(sample_config, monkeypatch):
    from evoprune.scoring import evaluate

    traced = []
    graph_scorer = evaluate.GraphScorer
    monkeypatch.setattr(evaluate, "GraphScorer", lambda *a, **k: traced.append(1) or graph_scorer(*a, **k))
    config = evoprune.load_config(
        sample_config, {**SETTINGS, "search.algorithm": "gmp", "gmp.compression": 20.0}
    )
    result = evoprune.prune(config=config)
    per_layer = result.selected["per_layer"]
    assert max(per_layer.values()) - min(per_layer.values()) < 0.002
    # GMP scores only the unpruned model: one plain pass a split, no masked graph traced for it
    assert not traced and result.summary["times_s"]["setup"] > 0
    assert result.summary["evaluator"] == "keras" != config.search.evaluator  # the mode it used
    model, data = result._prepared.trained.model, result._prepared.dataset
    target = result._prepared.target("dense")
    n = len(data.test[1])  # an exact fraction of the test images, not Keras' float32 mean
    assert result.selected["test_accuracy"] == round(result.selected["test_accuracy"] * n) / n
    for split, key in ((data.validation, "accuracy"), (data.test, "test_accuracy")):
        fast = evaluate.KerasEvaluator(model, split, "fast", target=target)
        assert traced and fast.path == "graph"  # the traced scorer agrees on the baseline
        full = [np.ones((1,) + k.shape, dtype=bool) for k in target.kernels]
        assert fast.correct_counts(full)[0] / fast.n == result.summary["baseline"][key]


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"gmp.compression": 1.0}, "gmp.compression=1.0"),
        ({"gmp.begin": 0.8, "gmp.end": 0.5}, "gmp.begin <= gmp.end"),
        ({"gmp.allocation": "layerwise"}, "gmp.allocation='layerwise'"),
        ({"gmp.allocation": {"fc1": 1.5}}, "gmp.allocation.fc1=1.5"),
        ({"gmp.allocation": {"fc1": "a"}}, "table of numbers"),
        ({"gmp.frequency": 0}, "gmp.frequency=0"),
        ({"gmp.rank_by": "los"}, "gmp.rank_by='los'"),
        ({"select.compressions": [12.0, 12.0]}, "distinct select.compressions"),
    ],
)
def test_gmp_settings_are_checked(overrides, needle):
    with pytest.raises(ConfigError, match=None) as info:
        evoprune.load_config(None, {"search.algorithm": "gmp", **overrides})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_gmp_table_is_written_with_its_defaults(tmp_path):
    config = evoprune.load_config(
        None, {"search.algorithm": "gmp", "gmp.allocation": {"fc1": 0.05, "fc 2": 0.2}}
    )
    text = config.to_toml()
    assert "[gmp]" in text and 'allocation = {fc1 = 0.05, "fc 2" = 0.2}' in text
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert evoprune.load_config(path) == config
    assert "[gmp]" not in evoprune.load_config(None, {"search.algorithm": "nsga2"}).to_toml()
    for variant in ("gmp-uniform", "gmp-global", "gmp-pbt"):  # they read [gmp]; no table of their own
        text = evoprune.load_config(None, {"search.algorithm": variant}).to_toml()
        assert "[gmp]" in text and f"[{variant}]" not in text, variant


def test_population_based_gmp_keeps_one_lineage_at_the_same_budget(sample_config, tmp_path):
    """gmp-pbt: members evolve exchange rates in rounds; the answer is exact, measured and exportable."""
    config = evoprune.load_config(
        sample_config,
        {
            **SETTINGS,
            "finetune.epochs": 2,
            "search.algorithm": "gmp-pbt",
            "gmp.compression": 20.0,
            "gmp.members": 3,
            "gmp.round_epochs": 1,
            "gmp.rate_sigma": 1.0,
        },
    )
    out = tmp_path / "run"
    result = evoprune.prune(config=config, out=out)
    total = result.summary["baseline"]["nonzero"]
    assert result.selected["nonzero"] == round(total / 20.0)
    evolved = result.summary["gmp"]["evolved"]["20"]
    assert result.summary["gmp"]["allocation"] == "population-based"
    assert evolved["search_epochs"] == 2 * 2  # two other members of two epochs each
    assert set(evolved["log_scales"]) == {"fc1", "fc2", "fc3"}
    model = result.model()
    kept = sum(int(np.count_nonzero(model.get_layer(n).kernel.numpy())) for n in ("fc1", "fc2", "fc3"))
    assert kept == result.selected["nonzero"]
    report = evoprune.export(out, tmp_path / "m.tflite")  # export retrains nothing: the run's weights
    assert report.sidecar["test_accuracy"] == pytest.approx(result.selected["test_accuracy"], abs=1e-6)


@pytest.fixture(scope="module")
def population_runs(sample_config):
    """Two population-based prunings with one seed, 3 members in rounds of one epoch, the ramp
    ending in the second of 3 epochs: one plain, one averaged after the ramp."""
    from evoprune.experiments import curve
    from evoprune.experiments.assemble import prepare

    config = evoprune.load_config(sample_config, {**SETTINGS, "finetune.epochs": 3, "gmp.frequency": 5})
    tuner = curve.finetuner(config, prepare(config))
    plain = curve.population_point(tuner, 10.0, 0.5, 0.0, 0.6, 5, 3, 1, 0.5)
    averaged = curve.population_point(tuner, 10.0, 0.5, 0.0, 0.6, 5, 3, 1, 0.5, average=True)
    return config, tuner, plain, averaged


def test_population_rounds_select_the_better_half_and_continue_its_state(population_runs):
    """Each round the worse half continues a survivor (its parent) with a mutated genome; once the
    ramp ends (in the second of 3 epochs here) the best member trains on alone."""
    _, tuner, (point, found), _ = population_runs
    assert found.evolving_epochs == 2 and found.search_epochs == 2 * 2
    assert sorted({row["round"] for row in found.history}) == [0, 1]
    rounds = [[row for row in found.history if row["round"] == r] for r in (0, 1)]
    assert [row["member"] for row in rounds[0]] == [0, 1, 2]
    assert rounds[0][0]["log_scales"] == {"fc1": 0.0, "fc2": 0.0, "fc3": 0.0}  # GMP global starts
    ranked = sorted(rounds[0], key=lambda row: -row["accuracy"])
    survivors = {row["member"] for row in ranked[:2]}
    for row in rounds[1]:
        if row["member"] in survivors:  # kept unchanged, its own parent
            assert row["parent"] == row["member"]
            assert row["log_scales"] == rounds[0][row["member"]]["log_scales"]
        else:  # a mutated copy of a survivor
            assert row["parent"] in survivors
            assert row["log_scales"] != rounds[0][row["parent"]]["log_scales"]
    best = max(rounds[1], key=lambda row: row["accuracy"])
    assert found.log_scales == pytest.approx(best["log_scales"], abs=1e-6)
    assert point.accuracy == pytest.approx(found.accuracy, abs=1e-6)  # measured after its last 2 epochs
    assert sum(int(m.sum()) for m in point.masks) == round(tuner.target.base_nonzero / 10.0)


def test_a_retraining_in_pieces_continues_exactly_from_a_loaded_state(sample_config):
    """RetrainSession: an epoch fitted from a loaded state is the epoch fitted straight on, bit for bit."""
    from evoprune.experiments import curve
    from evoprune.experiments.assemble import prepare
    from evoprune.refine.gradual import schedule_for

    config = evoprune.load_config(sample_config, {**SETTINGS, "finetune.epochs": 3, "gmp.frequency": 5})
    tuner = curve.finetuner(config, prepare(config))
    target = tuner.target
    schedule = schedule_for(
        target.names, [k.size for k in target.kernels], 10.0, "global", tuner.steps(), 0.5, 0.0, 0.7, 5
    )
    with tuner.session([np.ones(k.shape, dtype=bool) for k in target.kernels], schedule) as session:
        session.fit(0, 1, 11)
        after_one = session.state()
        session.fit(1, 2, 12)
        straight = session.state()
        with pytest.raises(ValueError, match="not at the start of epoch 1"):
            session.fit(1, 2, 12)  # the optimizer is two epochs on
        session.load(after_one)
        session.fit(1, 2, 12)
        again = session.state()
    per_epoch = tuner.steps() // 3
    assert int(again.optimizer[0]) == 2 * per_epoch  # Adam's step counter came back and went on
    for a, b in zip(
        straight.weights + straight.masks + straight.optimizer, again.weights + again.masks + again.optimizer
    ):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(after_one.weights, straight.weights))


def test_population_based_gmp_is_reproducible_and_its_level_replays_with_its_record(population_runs):
    """Same seed, same members, same answer; a level read back from the retraining log keeps its info."""
    from evoprune.experiments import curve
    from evoprune.refine.retrain_log import RetrainLog

    config, tuner, (first, found), (_, again) = population_runs
    assert found.history == again.history and found.log_scales == again.log_scales  # up to the ramp's end
    for a, b in zip(again.alone, first.weights):  # and the best one's continuation after it
        np.testing.assert_array_equal(a, b)
    log = RetrainLog.open(None, config)
    made = curve.logged_point(log, "level 10x", tuner, lambda: first)
    replayed = curve.logged_point(
        log, "level 10x", tuner, lambda: pytest.fail("replayed levels are not retrained")
    )
    assert made.info == replayed.info == first.info
    assert first.info["search_epochs"] == 2 * 2 and first.info["log_scale.fc1"] == found.log_scales["fc1"]


def test_members_are_ranked_by_the_chosen_score(population_runs, monkeypatch):
    """rank_by: with scripted fitness-split scores where the rankings disagree (member 0 the
    more accurate, member 1 the lower loss), "accuracy" keeps member 0 (GMP global's genome)
    and "loss" member 1, at every selection and for the answer."""
    from evoprune.experiments import curve
    from evoprune.refine.retrain import RetrainSession

    _, tuner, _, _ = population_runs
    calls = []

    def scripted(self):
        calls.append(None)
        return ((0.9, 0.5), (0.8, 0.3))[(len(calls) - 1) % 2]  # members are scored in slot order

    monkeypatch.setattr(RetrainSession, "fit_scores", scripted)
    _, by_accuracy = curve.population_point(tuner, 10.0, 0.5, 0.0, 0.6, 5, 2, 1, 0.5)
    assert [row["member"] for row in by_accuracy.history] == [0, 1, 0, 1]
    assert by_accuracy.log_scales == {"fc1": 0.0, "fc2": 0.0, "fc3": 0.0}
    assert by_accuracy.history[3]["parent"] == 0  # member 1 continued member 0 after round 0
    calls.clear()
    _, by_loss = curve.population_point(tuner, 10.0, 0.5, 0.0, 1.0, 5, 2, 1, 0.5, rank_by="loss")
    assert [row["member"] for row in by_loss.history] == [0, 1] * 3  # the ramp ends at the last step
    assert by_loss.history[2]["parent"] == 1 and by_loss.history[3]["parent"] == 1
    assert by_loss.log_scales == pytest.approx(by_loss.history[-1]["log_scales"], abs=1e-6)
    assert by_loss.log_scales != by_accuracy.log_scales
    assert by_loss.accuracy == 0.8  # no epoch after the ramp: the answer's score from its last round


@pytest.mark.parametrize("head", ["logits", "softmax"])
def test_the_members_loss_is_kerass_cross_entropy(head):
    """correct_and_loss: Keras's sparse cross-entropy for logits and for probabilities (clipped
    and renormalised), with saturated outputs among them; and the argmax correctness."""
    import keras

    from evoprune.data.dataset import eval_pipeline
    from evoprune.models.training import correct_and_loss

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(300, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, size=300)
    activation = None if head == "logits" else "softmax"
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation)]
    )
    model.layers[-1].kernel.assign(model.layers[-1].kernel.numpy() * 40.0)  # some outputs saturate
    right, loss = correct_and_loss(model, (images, labels), from_logits=head == "logits")
    outputs = model.predict(eval_pipeline((images, labels), 1024), verbose=0)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=head == "logits")(labels, outputs)
    assert loss == pytest.approx(float(expected), rel=1e-4)
    np.testing.assert_array_equal(right, outputs.argmax(-1) == labels)
    if head == "softmax":
        assert (outputs.max(-1) > 1 - 1e-7).any()  # the clipping was exercised


def test_averaging_after_the_ramp_keeps_the_mask_and_the_best_ones_own_continuation(population_runs):
    """average: every member continues the best one; the answer is their mean on its mask, and
    ``alone`` is exactly the answer without averaging."""
    _, tuner, (plain, alone), (soup, averaged) = population_runs
    assert averaged.search_epochs == 2 * 3 and alone.search_epochs == 2 * 2
    assert [m.tolist() for m in soup.masks] == [m.tolist() for m in plain.masks]  # one mask
    assert sum(int(m.sum()) for m in soup.masks) == round(tuner.target.base_nonzero / 10.0)
    assert not all(np.array_equal(a, b) for a, b in zip(soup.weights, plain.weights))
    assert soup.info["alone.test_accuracy"] == pytest.approx(plain.test_accuracy, abs=1e-9)


@pytest.mark.parametrize(
    "algorithm, allocation", [("gmp-global", "global"), ("gmp-pbt", "global"), ("gmp-uniform", "uniform")]
)
def test_a_variant_that_fixes_the_allocation_records_it(algorithm, allocation, tmp_path):
    config = evoprune.load_config(None, {"search.algorithm": algorithm})
    assert config.section("gmp").allocation == allocation  # config.toml says what the run uses
    saved = tmp_path / "config.toml"
    saved.write_text(config.to_toml())
    assert evoprune.load_config(saved) == config
    assert hash(evoprune.experiments.methods.get(algorithm))  # a Method stays hashable
    # another allocation in the table (a config written for 'gmp', a run saved before the
    # variants recorded theirs) is replaced by the one the variant runs, and still loads
    other = {"fc1": 0.1} if allocation == "global" else "global"
    replaced = evoprune.load_config(None, {"search.algorithm": algorithm, "gmp.allocation": other})
    assert replaced.section("gmp").allocation == allocation
    # a comparison of the variants records each trial's own
    from evoprune.experiments.compare import algorithm_config

    base = evoprune.load_config(None, {"compare.algorithms": ["gmp-uniform", "gmp-global"]})
    assert algorithm_config(base, algorithm, 0).section("gmp").allocation == allocation
