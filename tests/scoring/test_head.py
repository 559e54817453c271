"""Tests for the head scorer: batched float32 counts that equal the canonical float64 decision."""

from __future__ import annotations

import numpy as np
import pytest

import evoprune.scoring.head as head
from evoprune.scoring.head import HeadScorer, canonical_logits


def _canonical_counts(scorer: HeadScorer, masks: np.ndarray) -> np.ndarray:
    """The definition, one mask at a time: argmax of canonical logits over every row."""
    out = []
    for mask in masks:
        kernels = np.broadcast_to(np.where(mask, scorer.kernel, 0), (scorer.n,) + scorer.kernel.shape)
        predicted = canonical_logits(scorer.features, kernels, scorer.bias).argmax(axis=1)
        out.append(int((predicted == scorer.labels).sum()))
    return np.array(out)


def _random_masks(kernel: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    thresholds = rng.choice(np.abs(kernel).ravel(), count)
    return np.abs(kernel)[None] > thresholds[:, None, None]


def _tied_case(seed: int = 5, rows: int = 400):
    """Classes 0-2 have exactly tied real logits (same products in another order)."""
    rng = np.random.default_rng(seed)
    half = rng.random((rows, 20)).astype(np.float32)
    features = np.repeat(half, 2, axis=1)  # f[2m] == f[2m+1]
    base = rng.normal(size=40).astype(np.float32)
    swapped = base.reshape(20, 2)[:, ::-1].ravel()
    kernel = np.stack(
        [base, swapped, base[::-1].reshape(20, 2)[::-1].ravel(), rng.normal(size=40).astype(np.float32)],
        axis=1,
    )
    return features, kernel, np.zeros(4, np.float32), rng.integers(0, 4, rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_equal_the_canonical_definition(seed):
    rng = np.random.default_rng(seed)
    features = (rng.normal(size=(300, 24)) * rng.random(24)).astype(np.float32)
    kernel = rng.normal(size=(24, 5)).astype(np.float32)
    scorer = HeadScorer(features, kernel, rng.normal(size=5) * 0.1, rng.integers(0, 5, 300))
    masks = _random_masks(kernel, 70, seed)  # more than one chunk
    assert scorer.certified
    np.testing.assert_array_equal(scorer.correct_counts(masks), _canonical_counts(scorer, masks))


def test_exact_ties_are_decided_canonically(monkeypatch):
    features, kernel, bias, labels = _tied_case()
    scorer = HeadScorer(features, kernel, bias, labels)
    masks = _random_masks(kernel, 10, 2)
    calls = []
    real = head.canonical_predictions
    monkeypatch.setattr(head, "canonical_predictions", lambda *a: calls.append(len(a[-1])) or real(*a))
    counts = scorer.correct_counts(masks)
    assert sum(calls) > 0  # the ties went to the fallback
    monkeypatch.undo()
    np.testing.assert_array_equal(counts, _canonical_counts(scorer, masks))


def test_counts_do_not_depend_on_batch_or_row_order():
    features, kernel, bias, labels = _tied_case(seed=7, rows=500)
    scorer = HeadScorer(features, kernel, bias, labels)
    masks = _random_masks(kernel, 40, 3)
    together = scorer.correct_counts(masks)
    one_by_one = np.concatenate([scorer.correct_counts(m[None]) for m in masks])
    perm = np.random.default_rng(0).permutation(len(labels))
    permuted = HeadScorer(features[perm], kernel, bias, labels[perm]).correct_counts(masks)
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(together, permuted)


def test_first_class_wins_an_exact_tie():
    features = np.zeros((3, 2), np.float32)  # logits are the bias alone
    scorer = HeadScorer(features, np.ones((2, 3), np.float32), [0.5, 0.5, 0.1], [0, 1, 2])
    assert scorer.correct_counts(np.ones((1, 2, 3), bool)).tolist() == [1]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_numbers_use_the_float32_argmax():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 6)).astype(np.float32)
    features[4, 1] = np.inf
    kernel = rng.normal(size=(6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 50)
    scorer = HeadScorer(features, kernel, np.zeros(3), labels)
    assert not scorer.certified
    masks = _random_masks(kernel, 5, 0)
    with np.errstate(invalid="ignore"):
        expected = [int(((features @ np.where(m, kernel, 0)).argmax(axis=1) == labels).sum()) for m in masks]
    assert scorer.correct_counts(masks).tolist() == expected


def test_labels_outside_the_classes_never_count_and_shapes_are_checked():
    features = np.eye(3, dtype=np.float32)
    scorer = HeadScorer(features, np.eye(3, dtype=np.float32), np.zeros(3), [0, 7, -1])
    assert scorer.correct_counts(np.ones((1, 3, 3), bool)).tolist() == [1]
    assert scorer.correct_counts(np.zeros((0, 3, 3), bool)).tolist() == []
    with pytest.raises(ValueError, match="Head shapes do not fit"):
        HeadScorer(features, np.eye(4, dtype=np.float32), np.zeros(4), [0, 1, 2])
    with pytest.raises(ValueError, match="labels \\(2,\\)"):
        HeadScorer(features, np.eye(3, dtype=np.float32), np.zeros(3), [0, 1])
