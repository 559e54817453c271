"""Tests for the exact threshold sweep: the incremental pass must equal brute force exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evoprune.reporting.metrics import pareto_front
from evoprune.scoring.evaluate import KerasEvaluator
from evoprune.scoring.head import HeadScorer
from evoprune.scoring.sweep import brute_force_sweep, exact_front, exact_sweep, prune_steps, step_thresholds
from evoprune.search.encodings import ThresholdEncoding

COLUMNS = ["threshold", "pruned", "nonzero", "correct", "accuracy"]


def _stand_in(features, kernel, bias, labels) -> HeadScorer:
    """The fast evaluator's head scorer on given arrays (no model needed)."""
    return HeadScorer(features, kernel, bias, labels)


def _assert_same(evaluator, threads: int | None = None) -> pd.DataFrame:
    fast, brute = exact_sweep(evaluator, threads=threads), brute_force_sweep(evaluator)
    pd.testing.assert_frame_equal(fast[COLUMNS], brute[COLUMNS], check_exact=True)
    return fast


def _assert_thresholds_decode(table: pd.DataFrame, kernel: np.ndarray) -> None:
    encoding = ThresholdEncoding(kernel)
    genomes = [[t] for t in table["threshold"]]
    masks = encoding.decode(genomes)[0]
    assert masks.reshape(len(masks), -1).sum(axis=1).tolist() == table["nonzero"].tolist()
    assert [encoding.mask_key(g) for g in genomes] == table["nonzero"].tolist()


# a real trained model


@pytest.fixture(scope="module")
def trained():
    from evoprune.config import DataConfig, ModelConfig
    from evoprune.data.dataset import load_dataset
    from evoprune.models.training import train

    dataset = load_dataset(DataConfig(dataset="mnist-sample"))
    return dataset, train(dataset, ModelConfig(epochs=1), seed=0)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_exact_sweep_equals_brute_force_on_trained_model(trained, split):
    dataset, model = trained
    evaluator = KerasEvaluator(model, dataset.split(split))
    table = _assert_same(evaluator)
    size = evaluator.kernel.size
    assert len(table) == size + 1 and table["pruned"].tolist() == list(range(size + 1))
    assert table["nonzero"].iloc[0] == size and table["nonzero"].iloc[-1] == 0
    assert table["rechecked"].sum() < len(table) / 2  # the incremental pass does the work
    _assert_thresholds_decode(table, evaluator.kernel)
    full = np.ones((1,) + evaluator.kernel.shape, dtype=bool)
    assert table["correct"].iloc[0] == evaluator.correct_counts(full)[0]


def test_exact_front_on_trained_model(trained):
    dataset, model = trained
    evaluator = KerasEvaluator(model, dataset.validation)
    front = exact_front(evaluator)
    pd.testing.assert_frame_equal(front[COLUMNS], pareto_front(brute_force_sweep(evaluator))[COLUMNS])
    assert front["nonzero"].is_monotonic_increasing
    assert front["accuracy"].is_monotonic_increasing and front["accuracy"].is_unique


# synthetic evaluators


def _random_case(seed: int, n: int = 400, f: int = 30, c: int = 6, grid: float | None = None):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, f)) * rng.random(f)  # mixed signs and scales
    kernel = rng.normal(size=(f, c))  # negative weights included
    if grid is not None:
        kernel = np.round(kernel / grid) * grid  # many tied |w|, +-w, and zeros
    return _stand_in(features, kernel, rng.normal(size=c) * 0.1, rng.integers(0, c, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_features_and_signed_kernel(seed):
    ev = _random_case(seed)
    table = _assert_same(ev)
    assert len(table) == ev.kernel.size + 1
    assert not table["rechecked"].all()
    _assert_thresholds_decode(table, ev.kernel)


@pytest.mark.parametrize("seed", [0, 1])
def test_tied_magnitudes_are_pruned_together(seed):
    ev = _random_case(seed, grid=0.25)
    table = _assert_same(ev)
    magnitudes = np.unique(np.abs(ev.kernel))
    assert magnitudes[0] == 0.0  # exact zeros present
    assert len(table) == len(magnitudes) + 1 < ev.kernel.size + 1
    assert table["threshold"].iloc[0] == -1.0  # keeps the zeros too
    assert table["threshold"].iloc[1:].tolist() == magnitudes.astype(np.float64).tolist()
    _assert_thresholds_decode(table, ev.kernel)


def test_near_ties_are_rechecked():
    # classes 1 and 2 have the same weights as class 0 in another order over equal feature
    # pairs, so their real logits tie exactly while float32 sums may round differently
    rng = np.random.default_rng(5)
    half = rng.random((600, 20)).astype(np.float32)
    features = np.repeat(half, 2, axis=1)  # f[2m] == f[2m+1]
    base = rng.normal(size=40).astype(np.float32)
    swapped = base.reshape(20, 2)[:, ::-1].ravel()  # every pair swapped
    half_swapped = base.reshape(20, 2).copy()
    half_swapped[::2] = half_swapped[::2, ::-1]  # every other pair swapped
    kernel = np.stack([base, swapped, half_swapped.ravel(), rng.normal(size=40).astype(np.float32)], axis=1)
    labels = rng.integers(0, 4, 600)
    ev = _stand_in(features, kernel, np.zeros(4), labels)
    table = _assert_same(ev)
    assert table["rechecked"].any()
    near = _stand_in(features, kernel, [0, 1e-6, -1e-6, 0], labels)  # near, not exact, ties
    _assert_same(near)


def test_single_class_and_tiny_kernel():
    rng = np.random.default_rng(3)
    _assert_same(_stand_in(rng.normal(size=(50, 4)), rng.normal(size=(4, 1)), [0.0], np.zeros(50)))
    _assert_same(_stand_in(rng.normal(size=(50, 1)), [[0.5, -0.5]], [0.0, 0.0], rng.integers(0, 2, 50)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_features_fall_back_to_brute_force():
    ev = _random_case(0, n=50)
    features = ev.features.copy()
    features[3, 2] = np.inf
    ev = _stand_in(features, ev.kernel, ev.bias, ev.labels)
    assert not ev.certified
    table = _assert_same(ev)
    assert table["rechecked"].all()


def test_exact_sweep_needs_a_head_scorer(trained):
    dataset, model = trained
    exact = KerasEvaluator(model, dataset.validation, "exact")
    with pytest.raises(ValueError, match="fast evaluator of a Dense head"):
        exact_sweep(exact)
    ev = _random_case(0, n=20)
    with pytest.raises(ValueError, match="Head shapes"):
        HeadScorer(ev.features, ev.kernel[None], ev.bias, ev.labels)


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_split_rows_without_changing_counts(threads):
    ev = _random_case(4, n=301)
    table = _assert_same(ev, threads=threads)
    pd.testing.assert_frame_equal(table, exact_sweep(ev, threads=2))


def test_prune_steps_and_thresholds():
    kernel = np.array([[0.3, -0.1], [0.1, 0.2], [-0.3, 0.05]], dtype=np.float32)
    order, magnitudes, steps = prune_steps(kernel)
    assert magnitudes.tolist() == pytest.approx([0.05, 0.1, 0.1, 0.2, 0.3, 0.3])
    assert steps.tolist() == [0, 1, 3, 4, 6]
    assert order[0] == 5
    thresholds = step_thresholds(magnitudes, steps)
    assert thresholds[0] == 0.0
    assert thresholds[1:].tolist() == [float(np.float32(x)) for x in (0.05, 0.1, 0.2, 0.3)]
    masks = ThresholdEncoding(kernel).decode([[t] for t in thresholds])[0]
    assert masks.reshape(len(masks), -1).sum(axis=1).tolist() == [6, 5, 3, 2, 0]


FORK_SCRIPT = """
import multiprocessing, sys
import numpy as np
from evoprune.scoring.head import HeadScorer
from evoprune.scoring.sweep import exact_sweep

def case():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(301, 30)) * rng.random(30)
    kernel = rng.normal(size=(30, 6))
    return HeadScorer(features, kernel, rng.normal(size=6) * 0.1, rng.integers(0, 6, 301))

def child(queue):
    queue.put(exact_sweep(case(), threads=2)["correct"].tolist())

if __name__ == "__main__":
    assert "tensorflow" not in sys.modules
    parent = exact_sweep(case(), threads=2)["correct"].tolist()  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    proc = context.Process(target=child, args=(queue,))
    proc.start()
    try:
        result = queue.get(timeout=120)  # a stale pool would hang here
        proc.join(timeout=60)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0, proc.exitcode
    assert result == parent, "the forked child's sweep differs"
    print("same counts", len(result))
"""


def test_a_forked_child_gets_its_own_thread_pool(tmp_path):
    """Forks a fresh interpreter (no TensorFlow, no pytest threads), never the test process."""
    import subprocess
    import sys

    script = tmp_path / "fork_sweep.py"
    script.write_text(FORK_SCRIPT)
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"forked sweep hung: {exc.stdout}\n{exc.stderr}")
    assert out.returncode == 0 and "same counts 181" in out.stdout, out.stdout + out.stderr
