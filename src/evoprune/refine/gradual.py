"""Gradual magnitude pruning (Zhu & Gupta 2017): the cubic schedule, allocations and exact masks.

The sparsity of the pruned layers rises from ``s_i`` to ``s_f`` between steps ``t0`` and
``t1`` of a retraining as

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^3

and every ``frequency`` steps (and at ``t1``) each pruned kernel keeps its largest ``|w|``.
How many weights each layer keeps is the *allocation*:

- ``uniform``: every pruned layer at the same sparsity;
- ``global``: one magnitude threshold over all pruned layers;
- a table of kept fractions by layer name: the shape of the allocation, scaled so that
  the final total is exact (static: each layer follows its own schedule);
- :class:`ScaledGlobal`: one threshold over ``scale_l x |w|`` (global magnitude with a
  per-layer exchange rate, e.g. from an evolved allocation, see :func:`scales_for`): the
  allocation starts where the scales put it and moves with the weights, as global's does.

Counts are exact: the final masks keep ``round(total / compression)`` weights in all.

References:
    Zhu, M. & Gupta, S. (2017). To prune, or not to prune: exploring the efficacy of
    pruning for model compression. arXiv:1710.01878.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from evoprune.errors import ConfigError

ALLOCATIONS = ("uniform", "global")
# Defaults of a schedule, as in the paper's and TF Model Optimization's use: prune from half
# the weights at the start to the target by 70% of the steps, masks updated every 100 steps.
INITIAL_SPARSITY, BEGIN, END, FREQUENCY = 0.5, 0.0, 0.7, 100


def target_nonzero(total: int, compression: float) -> int:
    """Weights kept at ``compression`` (``round(total / compression)``, at least 1)."""
    return max(1, int(round(total / compression)))


def check_levels(name: str, levels: Sequence[float] | float, total: int) -> None:
    """Refuses a compression above ``total``x: one kept weight is the most a model can be
    compressed, and a model labelled with a higher level would not be at it.

    Raises:
        ConfigError: a level above ``total``, naming it and the setting as given (a list or one number).
    """
    listed = [float(levels)] if isinstance(levels, (int, float)) else list(levels)
    beyond = [level for level in listed if level > total]
    if beyond:
        raise ConfigError(
            f"{name} {beyond[0]:g}x is beyond one kept weight of the {total:,} in the pruned layers. "
            f"Expected compressions up to {total:,}x. Received: {name}={levels!r}"
        )


def cubic_sparsity(step: int, initial: float, final: float, begin: int, end: int) -> float:
    """Zhu & Gupta's sparsity at ``step``: ``initial`` before ``begin``, ``final`` from ``end`` on."""
    if step <= begin:
        return initial if end > begin else final
    if step >= end:
        return final
    progress = (step - begin) / (end - begin)
    return final + (initial - final) * (1.0 - progress) ** 3


def allocate(sizes: Sequence[int], shares: Sequence[float], total: int) -> list[int]:
    """Integer counts proportional to ``shares``, each at most its layer's size, summing to ``total``.

    Water-filling with largest-remainder rounding: a layer that would exceed its size is
    filled and the rest shared among the others.
    """
    sizes = [int(s) for s in sizes]
    total = int(min(max(total, 0), sum(sizes)))
    counts = [0] * len(sizes)
    open_layers = [i for i, s in enumerate(sizes) if s > 0 and shares[i] > 0] or [
        i for i, s in enumerate(sizes) if s > 0
    ]
    left = total
    while open_layers and left > 0:
        weight = sum(max(shares[i], 1e-300) for i in open_layers)
        ideal = {i: left * max(shares[i], 1e-300) / weight for i in open_layers}
        full = [i for i in open_layers if ideal[i] >= sizes[i] - counts[i]]
        if full:
            for i in full:
                left -= sizes[i] - counts[i]
                counts[i] = sizes[i]
            open_layers = [i for i in open_layers if i not in full]
            continue
        floors = {i: int(np.floor(ideal[i])) for i in open_layers}
        rest = left - sum(floors.values())
        order = sorted(open_layers, key=lambda i: (floors[i] - ideal[i], i))  # largest remainder first
        for n, i in enumerate(order):
            counts[i] += floors[i] + (1 if n < rest else 0)
        left = 0
    return counts


@dataclass(frozen=True)
class ScaledGlobal:
    """One magnitude threshold over all pruned layers, layer ``l``'s ``|w|`` weighted by ``scales[l]``.

    ``scales`` all equal is ``global``.
    """

    scales: Mapping[str, float]


def scales_for(
    names: Sequence[str], kernels: Sequence[np.ndarray], kept: Mapping[str, float]
) -> ScaledGlobal:
    """Scales under which one global threshold keeps the fractions ``kept`` of these kernels.

    Layer ``l`` keeping a fraction ``f_l`` has its ``f_l``-th largest ``|w|`` at ``q_l``;
    weighting its magnitudes by ``1 / q_l`` puts every layer's cut at 1, so a global
    threshold of 1 reproduces the allocation exactly on these weights (scales are
    normalised to a geometric mean of 1).
    """
    cuts = []
    for name, kernel in zip(names, kernels):
        magnitudes = np.sort(np.abs(np.asarray(kernel, dtype=np.float64)).ravel())[::-1]
        index = min(max(int(round(kept[name] * magnitudes.size)) - 1, 0), magnitudes.size - 1)
        cuts.append(max(float(magnitudes[index]), 1e-12))
    scales = 1.0 / np.asarray(cuts)
    scales = scales / np.exp(np.log(scales).mean())
    return ScaledGlobal({name: float(s) for name, s in zip(names, scales)})


def final_counts(
    names: Sequence[str],
    sizes: Sequence[int],
    allocation: str | Mapping[str, float] | ScaledGlobal,
    total: int,
) -> list[int] | None:
    """Final kept counts per layer for an allocation (``None`` for ``global``: one threshold).

    Raises:
        ValueError: a table that misses a layer or names one that is not pruned.
    """
    if allocation == "global" or isinstance(allocation, ScaledGlobal):
        return None
    if allocation == "uniform":
        return allocate(sizes, [float(s) for s in sizes], total)
    if not isinstance(allocation, Mapping):
        raise ValueError(f"Expected uniform, global or a table of kept fractions. Received: {allocation!r}")
    if set(allocation) != set(names):
        raise ValueError(
            f"Expected kept fractions for exactly the pruned layers {list(names)}. "
            f"Received: {sorted(allocation)}"
        )
    return allocate(sizes, [allocation[n] * s for n, s in zip(names, sizes)], total)


def top_k_mask(magnitudes: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries (exactly ``k``; ties broken by position)."""
    flat = magnitudes.ravel()
    mask = np.zeros(flat.size, dtype=bool)
    k = int(min(max(k, 0), flat.size))
    if k:
        keep = (
            np.argpartition(-flat, k - 1, kind="introselect")[:k] if k < flat.size else np.arange(flat.size)
        )
        mask[keep] = True
    return mask.reshape(magnitudes.shape)


@dataclass(frozen=True)
class Schedule:
    """A GMP schedule over one retraining.

    Attributes:
        sizes: weights per pruned kernel.
        final: final kept count per kernel, or ``None`` for one global threshold.
        total: final kept count over all kernels.
        initial_sparsity: ``s_i`` (each layer starts at ``min(s_i, its final sparsity)``).
        begin, end: steps ``t0`` and ``t1``.
        frequency: steps between mask updates.
        scales: per-kernel weights of ``|w|`` under one global threshold (``None``: 1).
    """

    sizes: tuple[int, ...]
    final: tuple[int, ...] | None
    total: int
    initial_sparsity: float
    begin: int
    end: int
    frequency: int
    scales: tuple[float, ...] | None = None

    def updates_at(self, step: int) -> bool:
        """True where masks are recomputed: every ``frequency`` steps from ``begin``, and at ``end``."""
        return self.begin <= step <= self.end and (
            (step - self.begin) % self.frequency == 0 or step == self.end
        )

    def counts(self, step: int) -> list[int] | int:
        """Kept count per kernel at ``step`` (one number over all kernels for a global allocation)."""
        n = sum(self.sizes)
        if self.final is None:
            final = 1.0 - self.total / n
            sparsity = cubic_sparsity(step, min(self.initial_sparsity, final), final, self.begin, self.end)
            return self.total if step >= self.end else int(round(n * (1.0 - sparsity)))
        out = []
        for size, kept in zip(self.sizes, self.final):
            final = 1.0 - kept / size
            sparsity = cubic_sparsity(step, min(self.initial_sparsity, final), final, self.begin, self.end)
            out.append(kept if step >= self.end else max(kept, int(round(size * (1.0 - sparsity)))))
        return out

    def masks(self, step: int, kernels: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The masks at ``step``: each kernel's (or all kernels' together) largest ``|w|``.

        Under one global threshold every kernel keeps at least as many weights as it has
        output units (its largest ones), when the count allows: a layer whose (scaled)
        magnitudes all fall under the threshold would otherwise cut the network off and
        leave a constant classifier. A layer the threshold leaves that many is unchanged
        (its largest weights are the ones kept either way).
        """
        counts = self.counts(step)
        if isinstance(counts, list):
            return [top_k_mask(np.abs(k), c) for k, c in zip(kernels, counts)]
        scales = self.scales or (1.0,) * len(kernels)
        flat = np.concatenate([np.abs(k).ravel() * s for k, s in zip(kernels, scales)])
        floors = [min(int(k.shape[-1]) if k.ndim else 1, k.size) for k in kernels]
        if sum(floors) <= counts:
            floor = np.concatenate([top_k_mask(np.abs(k), f).ravel() for k, f in zip(kernels, floors)])
            flat[floor] = np.inf  # kept first, then the rest by one threshold: exactly ``counts`` in all
        mask = top_k_mask(flat, counts)
        out, start = [], 0
        for kernel in kernels:
            out.append(mask[start : start + kernel.size].reshape(kernel.shape))
            start += kernel.size
        return out


def schedule_for(
    names: Sequence[str],
    sizes: Sequence[int],
    compression: float,
    allocation: str | Mapping[str, float] | ScaledGlobal,
    steps: int,
    initial_sparsity: float,
    begin: float,
    end: float,
    frequency: int,
) -> Schedule:
    """The schedule of one GMP retraining of ``steps`` optimizer steps to ``compression``.

    Args:
        begin, end: fractions of the steps where the sparsity starts and stops rising
            (``end = 1``: at the last step, so the final model is at the target).
    """
    total = target_nonzero(sum(sizes), compression)
    final = final_counts(names, sizes, allocation, total)
    last = max(int(steps) - 1, 0)  # the last step that runs: the final masks must be set by then
    t0 = min(int(round(begin * steps)), last)
    t1 = min(max(t0, int(round(end * steps))), last)
    return Schedule(
        tuple(int(s) for s in sizes),
        None if final is None else tuple(final),
        total,
        initial_sparsity,
        t0,
        t1,
        max(1, int(frequency)),
        tuple(float(allocation.scales[n]) for n in names) if isinstance(allocation, ScaledGlobal) else None,
    )
