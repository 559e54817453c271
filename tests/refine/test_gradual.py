"""Gradual magnitude pruning's schedule: the cubic curve, exact allocations and exact masks."""

from __future__ import annotations

import numpy as np
import pytest

from evoprune.refine.gradual import (
    Schedule,
    allocate,
    cubic_sparsity,
    final_counts,
    schedule_for,
    target_nonzero,
    top_k_mask,
)


def test_cubic_schedule_matches_zhu_and_gupta():
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3
    assert cubic_sparsity(0, 0.5, 0.9, 0, 100) == 0.5
    assert cubic_sparsity(50, 0.5, 0.9, 0, 100) == pytest.approx(0.9 + (0.5 - 0.9) * 0.5**3)
    assert cubic_sparsity(100, 0.5, 0.9, 0, 100) == 0.9
    assert cubic_sparsity(500, 0.5, 0.9, 0, 100) == 0.9
    values = [cubic_sparsity(t, 0.0, 0.95, 10, 90) for t in range(0, 101)]
    assert all(b >= a for a, b in zip(values, values[1:]))  # never decreases
    assert np.diff(values[10:91]).argmax() == 0  # prunes fastest at the start (cubic)


@pytest.mark.parametrize("total", [0, 1, 17, 1000, 1335, 1500])
def test_allocate_is_exact_and_capped(total):
    sizes = [1000, 300, 200]
    counts = allocate(sizes, [0.01, 0.5, 5.0], total)
    assert sum(counts) == total and all(0 <= c <= s for c, s in zip(counts, sizes))
    assert (
        counts[2] == min(200, total) or counts[2] >= counts[1] * 200 / 300 * 0.99
    )  # the favoured layer fills


def test_uniform_and_table_allocations():
    names, sizes = ["fc1", "fc2", "fc3"], [235_200, 30_000, 1_000]
    total = target_nonzero(sum(sizes), 24.0)
    assert total == round(266_200 / 24)
    uniform = final_counts(names, sizes, "uniform", total)
    assert (
        sum(uniform) == total and max(abs(c / s - total / sum(sizes)) for c, s in zip(uniform, sizes)) < 2e-3
    )
    table = final_counts(names, sizes, {"fc1": 0.03, "fc2": 0.1, "fc3": 0.5}, total)
    assert sum(table) == total and table[2] / 1000 > table[1] / 30_000 > table[0] / 235_200
    assert final_counts(names, sizes, "global", total) is None
    with pytest.raises(ValueError, match="exactly the pruned layers"):
        final_counts(names, sizes, {"fc1": 0.1}, total)


def test_top_k_mask_keeps_exactly_k_largest():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50, 40)).astype(np.float32)
    w[0, :5] = 0.25  # ties
    for k in (0, 1, 7, 1999, 2000):
        mask = top_k_mask(np.abs(w), k)
        assert mask.sum() == k
        if 0 < k < w.size:
            assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


@pytest.mark.parametrize("allocation", ["uniform", "global", {"a": 0.02, "b": 0.3}])
def test_schedule_reaches_the_exact_target_and_only_tightens(allocation):
    rng = np.random.default_rng(1)
    kernels = [rng.normal(size=(100, 60)), rng.normal(scale=3.0, size=(60, 10))]
    sizes = [k.size for k in kernels]
    schedule = schedule_for(["a", "b"], sizes, 20.0, allocation, 1000, 0.5, 0.1, 0.7, 50)
    assert isinstance(schedule, Schedule) and (schedule.begin, schedule.end) == (100, 700)
    updates = [t for t in range(1000) if schedule.updates_at(t)]
    assert updates[0] == 100 and updates[-1] == 700 and all(t % 50 == 0 for t in updates)
    kept = []
    for t in updates:
        masks = schedule.masks(t, kernels)
        kept.append(sum(int(m.sum()) for m in masks))
        kernels = [k * m for k, m in zip(kernels, masks)]  # pruned weights stay zero
    assert kept[-1] == target_nonzero(sum(sizes), 20.0)
    assert all(b <= a for a, b in zip(kept, kept[1:]))
    assert kept[0] == pytest.approx(0.5 * sum(sizes), rel=0.01)  # s_i at the first update


def test_scaled_global_reproduces_an_allocation_and_moves_with_the_weights():
    from evoprune.refine.gradual import ScaledGlobal, scales_for

    rng = np.random.default_rng(3)
    kernels = [rng.normal(size=(200, 50)), rng.normal(scale=0.2, size=(50, 10))]
    kept = {"a": 0.05, "b": 0.6}
    scaled = scales_for(["a", "b"], kernels, kept)
    total = round(0.05 * 10_000) + round(0.6 * 500)
    schedule = schedule_for(["a", "b"], [10_000, 500], 10_500 / total, scaled, 100, 0.5, 0.0, 0.5, 10)
    masks = schedule.masks(50, kernels)
    assert [int(m.sum()) for m in masks] == pytest.approx(
        [500, 300], abs=2
    )  # the allocation, on these weights
    moved = [kernels[0] * 3.0, kernels[1]]  # layer a's weights grow: the threshold gives it more
    assert int(schedule.masks(50, moved)[0].sum()) > 600
    equal = ScaledGlobal({"a": 1.0, "b": 1.0})
    plain = schedule_for(["a", "b"], [10_000, 500], 20.0, "global", 100, 0.5, 0.0, 0.5, 10)
    same = schedule_for(["a", "b"], [10_000, 500], 20.0, equal, 100, 0.5, 0.0, 0.5, 10)
    assert all(np.array_equal(x, y) for x, y in zip(plain.masks(50, kernels), same.masks(50, kernels)))


def test_one_threshold_never_cuts_a_layer_off_and_keeps_the_total_exact():
    from evoprune.refine.gradual import ScaledGlobal

    rng = np.random.default_rng(5)
    kernels = [rng.normal(size=(200, 50)), rng.normal(size=(50, 10))]
    starved = ScaledGlobal({"a": 1.0, "b": 1e-6})  # an allocation that gave the output layer nothing
    schedule = schedule_for(["a", "b"], [10_000, 500], 40.0, starved, 100, 0.5, 0.0, 0.5, 10)
    masks = schedule.masks(50, kernels)
    assert [int(m.sum()) for m in masks] == [schedule.total - 10, 10]  # as many as its output units
    assert masks[1].ravel()[np.argsort(-np.abs(kernels[1]).ravel())[:10]].all()  # its largest ones
    plain = schedule_for(["a", "b"], [10_000, 500], 40.0, "global", 100, 0.5, 0.0, 0.5, 10)
    unfloored = top_k_mask(np.concatenate([np.abs(k).ravel() for k in kernels]), plain.total)
    floored = np.concatenate([m.ravel() for m in plain.masks(50, kernels)])
    assert np.array_equal(floored, unfloored)  # where no layer falls that low, the floor changes nothing


@pytest.mark.parametrize("end", [0.7, 1.0])
def test_the_ramp_ends_on_a_step_that_runs(end):
    """end = 1 sets the final masks at the last step (step ``steps`` never runs)."""
    steps = 40
    schedule = schedule_for(["a", "b"], [100, 50], 10.0, "global", steps, 0.5, 0.0, end, 7)
    assert schedule.end <= steps - 1 and schedule.updates_at(schedule.end)
    kernels = [np.arange(100, dtype=float), np.arange(50, dtype=float)]
    assert sum(int(m.sum()) for m in schedule.masks(schedule.end, kernels)) == 15


def test_levels_beyond_one_kept_weight_are_refused():
    from evoprune.errors import ConfigError
    from evoprune.refine.gradual import check_levels, target_nonzero

    check_levels("select.compressions", [2.0, 320.0], 320)  # 320x keeps exactly one weight
    assert target_nonzero(320, 320.0) == 1
    with pytest.raises(ConfigError) as info:
        check_levels("select.compressions", [2.0, 500.0], 320)  # round(0.64) = 1 weight: really 320x
    assert str(info.value) == (
        "select.compressions 500x is beyond one kept weight of the 320 in the pruned layers. "
        "Expected compressions up to 320x. Received: select.compressions=[2.0, 500.0]"
    )
    with pytest.raises(ConfigError, match=r"Received: gmp.compression=1000.0$"):
        check_levels("gmp.compression", 1000.0, 320)
