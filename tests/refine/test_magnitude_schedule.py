"""The iterative magnitude schedule on a stand-in fine-tuner: its rounds, and the progress it reports."""

from __future__ import annotations

import numpy as np

from evoprune.refine.magnitude import MAX_KEEP, magnitude_schedule


class KeepsAccuracyAboveAFraction:
    """A fine-tuner whose 'retraining' is the mask: accuracy 1 while >= ``floor`` of the weights stay."""

    def __init__(self, kernel: np.ndarray, floor: float):
        self.base, self.model, self.floor, self.size = [kernel], None, floor, kernel.size
        self.target = type("Target", (), {"weight_positions": staticmethod(lambda model: [0])})()

    def rebase(self, weights):
        self.base = list(weights)

    def tuned_weights(self, masks):
        return [self.base[0] * masks[0]]

    def evaluate(self, weights):
        kept = np.count_nonzero(weights[0]) / self.size
        return (1.0, 1.0) if kept >= self.floor else (0.0, 0.0)


def schedule(kernel: np.ndarray, floor: float, rounds: int):
    """The schedule's rows and masks on the stand-in, and every ``(done, total)`` it reported."""
    calls: list[tuple[int, int]] = []
    rows, masks, _ = magnitude_schedule(
        KeepsAccuracyAboveAFraction(kernel, floor),
        [kernel],
        base_accuracy=1.0,
        rounds=rounds,
        tolerance_pp=0.5,
        progress=lambda done, total: calls.append((done, total)),
    )
    return rows, masks, calls


def test_a_schedule_that_stops_early_completes_its_progress():
    kernel = np.random.default_rng(0).normal(size=(40, 50))
    rows, masks, calls = schedule(kernel, floor=0.2, rounds=50)
    assert len(rows) < 50 and not rows["accepted"].iloc[-1]  # it stopped on a failed smallest step
    assert rows["keep"].iloc[-1] >= MAX_KEEP
    assert calls[-1] == (len(rows), len(rows))  # the bar ends full, not at 'k of 50'
    assert all(total == 50 for _, total in calls[:-1])
    accepted = rows[rows["accepted"]]
    assert accepted["nonzero"].min() >= 0.2 * kernel.size and rows["nonzero"].iloc[-1] < 0.2 * kernel.size
    assert masks[int(accepted["eval_index"].iloc[-1])][0].sum() == accepted["nonzero"].min()


def test_a_schedule_that_runs_every_round_reports_them_all():
    rows, _, calls = schedule(np.random.default_rng(1).normal(size=(30, 30)), floor=0.0, rounds=4)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)] and rows["accepted"].all()
    assert list(rows["nonzero"]) == [450, 225, 112, 56]  # half of the survivors each round
