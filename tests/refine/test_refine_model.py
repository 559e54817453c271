"""refine = "front": spread points then a bisection for the smallest head within 1 point,
with head and whole-model (``scope = "model"``) fine-tuning."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.refine.finetune import best_refined, refine_front

runner = CliRunner()


def _fake(sizes, base=0.9):
    """A front of the given sizes; genome i decodes to a mask of sizes[i] ones."""
    n = len(sizes)
    front = pd.DataFrame(
        {
            "eval_index": np.arange(n),
            "nonzero": sizes,
            "compression": 1000 / np.asarray(sizes, dtype=float),
            "accuracy": np.linspace(0.5, base, n),
            "test_accuracy": 0.5,
        }
    )
    genomes = [[s] for s in sizes]
    encoding = SimpleNamespace(decode=lambda gs: [np.array([np.arange(1000) < g[0] for g in gs])])
    return front, genomes, SimpleNamespace(base_accuracy=base, encoding=encoding)


@pytest.mark.parametrize("smallest_ok", [3, 57, 400, 999])
def test_bisection_finds_the_smallest_head_within_one_point(smallest_ok):
    sizes = list(range(1, 1001))  # one front point per size
    front, genomes, problem = _fake(sizes)
    calls = []

    def score(masks):  # one mask per pruned layer
        size = int(masks[-1].sum())
        calls.append(size)
        return (0.9 if size >= smallest_ok else 0.8), 0.5

    refined = refine_front(front, genomes, problem, score, max_points=5, max_drop_pp=50.0)
    assert len(calls) == len(set(calls))  # no point scored twice
    assert len(calls) <= 5 + math.ceil(math.log2(1000)) + 1  # bisection, not a scan
    assert refined["nonzero"].is_monotonic_increasing
    assert smallest_ok in calls and (smallest_ok == 1 or smallest_ok - 1 in calls)
    assert best_refined(refined, problem.base_accuracy)["nonzero"] == smallest_ok


def test_no_bisection_when_nothing_holds_and_the_floor_is_respected():
    sizes = list(range(1, 101))
    front, genomes, problem = _fake(sizes)
    calls, lines = [], []
    refined = refine_front(
        front,
        genomes,
        problem,
        lambda masks: calls.append(int(masks[-1].sum())) or (0.5, 0.5),
        max_points=4,
        max_drop_pp=20.0,
        status=lines.append,
    )
    floor = problem.base_accuracy - 0.20
    eligible = front[front["accuracy"] >= floor]["nonzero"]
    assert len(calls) == 4 and min(calls) >= eligible.min()  # only points above the floor
    assert len(lines) == 4 and f"{calls[0]:,} weights" in lines[0] and "-> 0.5000" in lines[0]
    assert best_refined(refined, problem.base_accuracy) is None


@pytest.mark.parametrize(
    "max_points,distill", [(1, 0.0), (1, 0.9), pytest.param(3, 0.0, marks=pytest.mark.slow)]
)
def test_refine_front_with_model_scope(max_points, distill, tmp_path, sample_config, prepared):
    """The README's 5x result: whole-model fine-tuning of the front, then export.

    One point by default (one model fine-tuning); three and their bisection with ``-m slow``.
    With distillation the export must learn from the unpruned model as the run did.
    """
    import keras

    from evoprune.models.training import accuracy, compile_model

    config = tmp_path / "c.toml"
    config.write_text(
        sample_config.with_overrides(
            {
                "search.generations": 3,
                "finetune.refine": "front",
                "finetune.scope": "model",
                "finetune.epochs": 1,
                "finetune.max_points": max_points,
                "finetune.distill": distill,
            }
        ).to_toml()
    )
    out = tmp_path / "run"
    before = [w.copy() for w in prepared.trained.model.get_weights()]
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    refined = pd.read_csv(out / "refined.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= len(refined) <= max_points + 12 and summary["refined"]["points"] == len(refined)
    assert refined["nonzero"].is_monotonic_increasing and refined["eval_index"].is_unique
    assert summary["times_s"]["finetune"] == summary["refined"]["time_s"] > 0  # its own phase
    # retraining the convolutions too recovers accuracy at the smallest refined size
    smallest = refined.iloc[0]
    assert smallest["refined_accuracy"] > smallest["accuracy"]
    best = summary["refined"]["best_within_1pp"]
    if best is not None:
        assert best["refined_accuracy"] >= summary["baseline"]["accuracy"] - 0.01 - 1e-12
        holding = refined[refined["refined_accuracy"] >= summary["baseline"]["accuracy"] - 0.01 - 1e-12]
        assert best["nonzero"] == holding["nonzero"].min()
    target = tmp_path / "m.keras"
    exported = runner.invoke(app, ["export", str(out), "--out", str(target)])
    assert exported.exit_code == 0 and "(fine-tuned)" in exported.output, exported.output
    model = keras.models.load_model(target, compile=False)
    compile_model(model)
    chosen = best or refined.sort_values("refined_accuracy").iloc[-1].to_dict()
    assert np.count_nonzero(model.layers[-1].get_weights()[0]) == chosen["nonzero"]
    assert not np.array_equal(model.get_weights()[0], before[0])  # convolutions retrained
    n = len(prepared.dataset.validation[1])
    assert abs(accuracy(model, prepared.dataset.validation) - chosen["refined_accuracy"]) <= 1 / n
    assert all(np.array_equal(a, b) for a, b in zip(prepared.trained.model.get_weights(), before))


@pytest.mark.parametrize("smallest_ok, max_points", [(57, 5), (999, 4), (2000, 4), (1, 3)])
def test_progress_totals_bound_the_points_tuned_and_only_shrink(smallest_ok, max_points):
    sizes = list(range(1, 1001))
    front, genomes, problem = _fake(sizes)
    reports, lines = [], []

    def score(masks):
        return (0.9 if int(masks[-1].sum()) >= smallest_ok else 0.8), 0.5

    refined = refine_front(
        front,
        genomes,
        problem,
        score,
        max_points=max_points,
        max_drop_pp=50.0,
        status=lines.append,
        progress=lambda done, total, note: reports.append((done, total, note)),
    )
    done = [d for d, _, _ in reports]
    totals = [t for _, t, _ in reports]
    assert done[0] == 0 and totals[0] <= max_points + math.ceil(math.log2(1000))
    assert done == sorted(done) and totals == sorted(totals, reverse=True)  # totals only shrink
    assert all(d <= t for d, t, _ in reports)
    assert done[-1] == totals[-1] == len(refined)  # the last report is exact
    tuned = [r for r in reports if r[2]]  # one report with a note per tuned point
    assert [d for d, _, _ in tuned] == list(range(1, len(refined) + 1))
    assert len(lines) == len(refined) and lines[-1].startswith(f"Fine-tuned point {len(refined)} of ")
    assert all(f"point {k} of " in line for k, line in enumerate(lines, start=1))
    if smallest_ok == 2000:  # nothing holds: no bisection, the total drops to the spread points
        assert len(refined) == max_points and totals[-1] == max_points
