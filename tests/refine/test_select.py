"""Selection (smallest model within tolerance) and the magnitude baseline at equal retraining budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.experiments import bench
from evoprune.refine.magnitude import normalized_magnitudes, prune_to, retrain_budget_epochs
from evoprune.refine.select import candidates, select_row

runner = CliRunner()


def _table(accuracy, nonzero):
    n = len(nonzero)
    return pd.DataFrame(
        {
            "eval_index": np.arange(n),
            "nonzero": nonzero,
            "compression": 100 / np.array(nonzero),
            "accuracy": accuracy,
            "test_accuracy": accuracy,
            "refined": False,
        }
    )


def test_select_row_takes_the_smallest_within_tolerance_and_the_more_accurate_on_ties():
    table = _table([0.95, 0.989, 0.9895, 0.991, 0.985], [5, 10, 10, 30, 8])
    assert select_row(table, 0.99, 0.1)["eval_index"] == 2  # ties on size 10: more accurate
    assert select_row(table, 0.99, 0.0)["eval_index"] == 3
    assert select_row(table, 0.99, 0.5)["eval_index"] == 4  # exactly at the tolerance counts
    assert select_row(table, 0.99, 5.0)["eval_index"] == 0
    assert select_row(table, 0.995, 0.1) is None


def test_candidates_use_the_fine_tuned_accuracy_of_refined_runs():
    front = _table([0.5], [3])
    refined = pd.DataFrame(
        {
            "eval_index": [7],
            "nonzero": [3],
            "compression": [1.0],
            "accuracy": [0.5],
            "test_accuracy": [0.4],
            "refined_accuracy": [0.98],
            "refined_test_accuracy": [0.97],
        }
    )
    row = candidates(front, refined).iloc[0]
    assert (row["eval_index"], row["accuracy"], row["test_accuracy"], row["refined"]) == (7, 0.98, 0.97, True)
    assert not candidates(front, None).iloc[0]["refined"]


def test_prune_to_keeps_exactly_k_of_the_survivors_by_layer_normalised_magnitude():
    rng = np.random.default_rng(0)
    big, small = rng.normal(0, 10.0, (20, 5)), rng.normal(0, 0.01, (5, 3))
    scores = normalized_magnitudes([big, small])
    masks = [np.ones(big.shape, bool), np.ones(small.shape, bool)]
    masks[0][0, :] = False  # already pruned: must stay pruned
    kept = prune_to(scores, masks, 40)
    assert sum(int(m.sum()) for m in kept) == 40
    assert not kept[0][0, :].any()
    assert kept[1].any()  # raw magnitudes would have pruned the small layer entirely
    survivors = np.concatenate([s[m] for s, m in zip(scores, kept)])
    dropped = np.concatenate([s[m & ~k] for s, m, k in zip(scores, masks, kept)])
    assert survivors.min() >= dropped.max()
    ties = prune_to([np.ones((4, 4))], [np.ones((4, 4), bool)], 5)  # ties at the cut
    assert int(ties[0].sum()) == 5


def test_retrain_budget_is_the_evolutionary_pipelines_upper_bound(sample_config):
    cfg = sample_config.with_overrides(
        {"search.population": 24, "search.generations": 15, "finetune.epochs": 2, "finetune.max_points": 6}
    )
    assert retrain_budget_epochs(cfg) == 2 * (6 + 9)  # 24 x 16 = 384 evaluations: 9 halvings
    capped = cfg.with_overrides({"search.max_evaluations": 64})
    assert retrain_budget_epochs(capped) == 2 * (6 + 6)


@pytest.fixture(scope="module")
def lenet(sample_config):
    return sample_config.with_overrides(
        {
            "model.architecture": "lenet-300-100",
            "search.layers": "dense",
            "search.encoding": "layer_thresholds",
            "search.algorithm": "nsga2",
            "search.population": 8,
            "search.generations": 2,
            "search.crossover": "blend",
            "search.mutation": "gaussian",
            "finetune.refine": "front",
            "finetune.scope": "model",
            "finetune.epochs": 1,
            "finetune.max_points": 3,
            "select.tolerance_pp": 1.0,
        }
    )


def _run(config, tmp_path, name, *extra):
    path = tmp_path / f"{name}.toml"
    path.write_text(config.to_toml())
    out = tmp_path / name
    result = runner.invoke(app, ["run", "--config", str(path), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "summary.json").read_text()), result.output


def test_refined_run_selects_the_smallest_fine_tuned_model_within_tolerance(lenet, tmp_path):
    out, summary, output = _run(lenet, tmp_path, "evo")
    refined = pd.read_csv(out / "refined.csv")
    base = summary["baseline"]
    chosen = summary["selected"]
    ok = refined[refined["refined_accuracy"] >= base["accuracy"] - 0.01 - 1e-12]
    assert chosen is not None and chosen["nonzero"] == ok["nonzero"].min()
    row = refined[refined["eval_index"] == chosen["eval_index"]].iloc[0]
    assert chosen["accuracy"] == pytest.approx(row["refined_accuracy"])
    assert chosen["test_drop_pp"] == pytest.approx(
        100 * (base["test_accuracy"] - row["refined_test_accuracy"])
    )
    assert chosen["compression"] == pytest.approx(base["nonzero"] / chosen["nonzero"])
    assert set(chosen["per_layer"]) == {"fc1", "fc2", "fc3"}
    sizes = {"fc1": 784 * 300, "fc2": 300 * 100, "fc3": 100 * 10}
    kept = sum(round(chosen["per_layer"][name] * n) for name, n in sizes.items())
    assert kept == chosen["nonzero"]  # kept fractions add up to the size
    assert chosen["genome"].count(" ") == 2 and chosen["refined"]
    assert "selected (smallest within 1 point on" in output
    assert output.count("Fine-tuned point") == len(refined)
    strict = lenet.with_overrides({"select.tolerance_pp": 0.0, "finetune.refine": "none"})
    _, summary, _ = _run(strict, tmp_path, "strict")
    front = pd.read_csv(tmp_path / "strict" / "front.csv")
    at_base = front[front["accuracy"] >= summary["baseline"]["accuracy"] - 1e-12]
    assert summary["selected"]["nonzero"] == at_base["nonzero"].min()
    assert not summary["selected"]["refined"]


def test_magnitude_baseline_prunes_iteratively_within_the_equal_budget(lenet, tmp_path):
    cfg = lenet.with_overrides({"search.algorithm": "magnitude"})
    out, summary, output = _run(cfg, tmp_path, "magnitude")
    assert "magnitude round 0:" in output and "generation" not in output  # rounds, not a generation bar
    rounds = pd.read_csv(out / "population.csv")
    budget = retrain_budget_epochs(cfg)
    assert len(rounds) <= budget // cfg.finetune.epochs == summary["magnitude"]["rounds"]
    retried = (
        (rounds["nonzero"].diff() == 0) & ~rounds["accepted"] & ~rounds["accepted"].shift(fill_value=True)
    )
    assert not retried.any() and summary["magnitude"]["rounds_run"] == len(rounds)  # no identical retries
    accepted = rounds[rounds["accepted"]]
    assert accepted["nonzero"].is_monotonic_decreasing and len(accepted) >= 1
    assert rounds.loc[0, "nonzero"] == round(0.5 * summary["baseline"]["nonzero"])  # first round halves
    chosen = summary["selected"]
    within = accepted[accepted["accuracy"] >= summary["baseline"]["accuracy"] - 0.01 - 1e-12]
    assert chosen["nonzero"] == within["nonzero"].min()
    assert chosen["refined"] and set(chosen["per_layer"]) == {"fc1", "fc2", "fc3"}
    assert (out / "front.csv").is_file() and summary["algorithm"] == "magnitude"
    assert summary["evaluations"] == len(rounds)
    # the selected round's retrained weights are kept, so its model exports as the run measured it
    export = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "m.keras")])
    assert export.exit_code == 0, export.output
    sidecar = json.loads((tmp_path / "m.keras.json").read_text())
    assert sidecar["nonzero"] == chosen["nonzero"]
    assert sidecar["test_accuracy"] == pytest.approx(chosen["test_accuracy"], abs=1e-6)


def test_bench_has_one_magnitude_cell_per_seed(sample_config):
    cfg = sample_config.with_overrides(
        {
            "bench.seeds": 2,
            "bench.encodings": ["threshold", "mask"],
            "bench.algorithms": ["paper", "magnitude"],
            "bench.pymoo": False,
            "bench.variants": ["average+random_reset"],
        }
    )
    specs, _ = bench.grid(cfg, {"threshold": 1, "mask": 1500})
    magnitude = [s for s in specs if s["cell"] == "-/magnitude/-"]
    assert [s["config"]["search"]["seed"] for s in magnitude] == [0, 1]
    assert {s["cell"] for s in specs} == {"threshold/paper/average+random_reset", "-/magnitude/-"}


def test_compare_runs_the_magnitude_baseline_beside_evolution(sample_config, tmp_path):
    """Serially: a trial is the same plain-dict task on every executor (test_bench_executors)."""
    from evoprune.experiments import compare as cmp

    cfg = sample_config.with_overrides(
        {
            "search.population": 4,
            "search.generations": 200,
            "search.max_evaluations": 8,
            "compare.seeds": 1,
            "compare.algorithms": ["nsga2", "magnitude"],
            "compare.executor": "serial",
            "finetune.refine": "front",
            "finetune.scope": "model",
            "finetune.epochs": 1,
            "finetune.max_points": 2,
        }
    )
    trials = cmp.compare(cfg, tmp_path).trials.set_index("algorithm")
    assert set(trials.index) == {"sweep", "nsga2", "magnitude"}
    assert trials.loc["nsga2", "evaluations"] == 8
    assert 1 <= trials.loc["magnitude", "evaluations"] <= retrain_budget_epochs(cmp.with_budget(cfg)) == 5
    assert trials.loc["magnitude", "selected_compression"] > 1
    assert "selected_test_drop_pp" in trials.columns
    saved = pd.read_csv(tmp_path / "trials.csv")
    assert set(saved["algorithm"]) == {"sweep", "nsga2", "magnitude"}


def test_loss_bound_is_the_paired_upper_bound():
    from evoprune.refine.select import loss_bound_pp

    base = np.ones(1000, dtype=bool)
    assert loss_bound_pp(base, base, 0.95) == 0.0
    model = base.copy()
    model[:6] = False  # loses 6 images of 1,000: 0.6 points observed
    assert loss_bound_pp(base, model, 0.5) == pytest.approx(0.6)  # z = 0: the point estimate
    bound = loss_bound_pp(base, model, 0.95)
    d = base.astype(float) - model.astype(float)
    assert bound == pytest.approx(100 * (d.mean() + 1.6448536 * d.std(ddof=1) / np.sqrt(1000)), rel=1e-6)
    # the same net loss (6 images) with more discordant images (12 lost, 6 gained) is less certain
    base_b, model_b = base.copy(), base.copy()
    model_b[:12] = False
    base_b[12:18] = False
    assert 100 * (base_b.mean() - model_b.mean()) == pytest.approx(0.6)
    assert loss_bound_pp(base_b, model_b, 0.95) > bound


def test_confidence_bound_decides_in_size_order_and_lazily():
    from evoprune.refine.select import select_row

    table = pd.DataFrame(
        {"eval_index": [0, 1, 2, 3], "nonzero": [100, 200, 300, 400], "accuracy": [0.99, 0.99, 0.99, 0.99]}
    )
    asked = []

    def bound(index):
        asked.append(index)
        return {0: 0.4, 1: 0.15, 2: 0.05, 3: 0.0}[index]

    row = select_row(table, 0.99, 0.1, bound)
    assert int(row["eval_index"]) == 2 and row["loss_bound_pp"] == 0.05
    assert asked == [0, 1, 2]  # the larger model was never measured
    assert select_row(table, 0.99, 0.1) is not None and int(select_row(table, 0.99, 0.1)["eval_index"]) == 0


def test_gmp_reports_its_loss_bound(sample_config):
    import evoprune
    from evoprune.experiments.assemble import prepare
    from evoprune.models.training import correct
    from evoprune.refine.select import loss_bound_pp

    config = evoprune.load_config(
        sample_config,
        {
            "model.architecture": "lenet-300-100",
            "search.algorithm": "gmp",
            "search.layers": "dense",
            "finetune.scope": "model",
            "finetune.epochs": 1,
            "gmp.compression": 30.0,
            "select.confidence": 0.95,
        },
    )
    result = evoprune.prune(config=config)
    chosen = result.selected
    prepared = prepare(config)
    split = prepared.dataset.validation
    expected = loss_bound_pp(correct(prepared.trained.model, split), correct(result.model(), split), 0.95)
    assert chosen["loss_bound_pp"] == pytest.approx(expected)
    assert chosen["loss_bound_pp"] > 100 * (result.summary["baseline"]["accuracy"] - chosen["accuracy"])
    assert chosen["within_tolerance"] == (chosen["loss_bound_pp"] <= config.select.tolerance_pp)
