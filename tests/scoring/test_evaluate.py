"""Evaluator: the fast and exact paths agree; memoization counts honestly."""

from __future__ import annotations

import numpy as np
import pytest

from evoprune.scoring.evaluate import KerasEvaluator, PruningProblem, paper_fitness
from evoprune.search.encodings import ThresholdEncoding


@pytest.fixture(scope="module")
def evaluators(prepared):
    model, split = prepared.trained.model, prepared.dataset.validation
    return KerasEvaluator(model, split, "fast"), KerasEvaluator(model, split, "exact")


def test_fast_and_exact_agree_on_threshold_masks(evaluators):
    fast, exact = evaluators
    enc = ThresholdEncoding(fast.kernel)
    masks = enc.decode([[t] for t in np.linspace(0.0, enc.high, 41)])[0]
    counts = fast.correct_counts(masks)
    assert np.array_equal(counts, exact.correct_counts(masks))
    assert len(set(counts.tolist())) > 20  # the masks really differ in accuracy


def test_fast_and_exact_agree_on_random_masks(evaluators):
    fast, exact = evaluators
    rng = np.random.default_rng(0)
    masks = rng.random((30,) + fast.kernel.shape) < rng.random((30, 1, 1))
    assert np.array_equal(fast.correct_counts(masks), exact.correct_counts(masks))


def test_exact_path_restores_the_model(evaluators, prepared):
    fast, exact = evaluators
    exact.correct_counts(np.zeros((1,) + fast.kernel.shape, dtype=bool))
    kernel = prepared.trained.model.layers[exact.layer_index].get_weights()[0]
    assert np.array_equal(kernel, exact.kernel)


def test_fast_path_chunks_give_the_same_counts(evaluators):
    fast, _ = evaluators
    enc = ThresholdEncoding(fast.kernel)
    masks = enc.decode([[t] for t in np.linspace(0.0, enc.high, 150)])[0]  # > one chunk
    one_by_one = np.concatenate([fast.correct_counts(m[None]) for m in masks])
    assert np.array_equal(fast.correct_counts(masks), one_by_one)


def test_paper_fitness_formula():
    assert paper_fitness(0.9, 300, 0.95, 1500) == pytest.approx((0.9 / 0.95) ** 2 + 0.4)
    assert paper_fitness(0.95, 1500, 0.95, 1500) == pytest.approx(1.0)


def test_problem_memoizes_genomes_and_masks(evaluators):
    fast, _ = evaluators
    problem = PruningProblem(ThresholdEncoding(fast.kernel), fast)
    assert problem.base_nonzero == 1500
    base = problem.model_evaluations
    first = problem.evaluate([[0.01], [0.01], [0.2]])
    assert (problem.evaluations, problem.model_evaluations - base) == (2, 2)
    assert first[0] == first[1]
    tiny_step = np.nextafter(0.01, 1.0)  # a different genome with (almost surely) the same mask
    again = problem.evaluate([[0.2], [tiny_step]])
    assert problem.evaluations == 3 and problem.model_evaluations - base == 2
    assert again[0] == first[2] and again[1] == first[0]
    assert first[2].nonzero == int((np.abs(fast.kernel) > 0.2).sum())
    assert problem.fitness(first[2]) == paper_fitness(
        first[2].accuracy, first[2].nonzero, problem.base_accuracy, 1500
    )


def test_threshold_encoding_mask_key_matches_decode(evaluators):
    fast, _ = evaluators
    enc = ThresholdEncoding(fast.kernel)
    for t in (0.0, 1e-6, 0.05, 0.3, enc.high):
        assert enc.mask_key([t]) == int(enc.decode([[t]])[0].sum())
    assert enc.decode([[enc.high]])[0].sum() == 0


def test_fast_and_exact_agree_when_every_kernel_is_pruned(prepared):
    from evoprune.models.target import build_target

    model, split = prepared.trained.model, prepared.dataset.validation
    target = build_target(model, "all")
    assert len(target.layers) == 3
    fast = KerasEvaluator(model, split, "fast", target=target)
    exact = KerasEvaluator(model, split, "exact", target=target)
    assert fast.path == "graph" and not fast.head_only
    rng = np.random.default_rng(1)
    masks = [rng.random((4,) + k.shape) < rng.random((4,) + (1,) * k.ndim) for k in fast.kernels]
    assert np.array_equal(fast.correct_counts(masks), exact.correct_counts(masks))
    before = [w.copy() for w in model.get_weights()]
    fast.correct_counts(masks)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
