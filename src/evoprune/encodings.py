"""Genome encodings: decode genomes into boolean masks over a pruned kernel."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class ThresholdEncoding:
    """The paper's genome: one magnitude threshold; weights with ``|w| <= t`` are pruned.

    Args:
        kernel: the pruned layer's kernel.
        min_threshold: lower bound of the genome (the notebook's ``1e-6``).

    Attributes:
        low, high: genome bounds; ``high`` is the largest ``|w|`` (it prunes everything).
        length: number of genes (1).
    """

    name = "threshold"
    length = 1

    def __init__(self, kernel: np.ndarray, min_threshold: float = 1e-6) -> None:
        self.abs_kernel = np.abs(np.asarray(kernel))
        self.low = float(min_threshold)
        self.high = float(self.abs_kernel.max())
        self._sorted = np.sort(self.abs_kernel, axis=None)

    def decode(self, genomes: Sequence[Sequence[float]]) -> np.ndarray:
        """Returns masks of shape ``(len(genomes), *kernel.shape)``; True keeps a weight."""
        thresholds = np.asarray([g[0] for g in genomes], dtype=np.float64)
        return self.abs_kernel[None, ...] > thresholds.reshape((-1,) + (1,) * self.abs_kernel.ndim)

    def mask_key(self, genome: Sequence[float]) -> int:
        """A key equal for two genomes exactly when their masks are equal: weights kept."""
        return int(self._sorted.size - np.searchsorted(self._sorted, genome[0], side="right"))
