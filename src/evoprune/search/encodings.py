"""Genome encodings: decode genomes into boolean masks over the pruned kernels."""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from evoprune.errors import ConfigError

Masks = list  # one bool array of shape (P, *kernel.shape) per pruned layer


class Encoding:
    """Base class: bounds, decoding and memo keys of one genome kind.

    Args:
        kernels: kernels of the pruned layers, in model order.
        min_threshold: lower bound of threshold genes.

    Attributes:
        kind: ``real`` (threshold genes) or ``binary`` (one bit per weight).
        length: genes per genome.
        low, high: per-gene bounds (lists of floats).
    """

    name = "base"
    kind = "real"

    def __init__(self, kernels: Sequence[np.ndarray], min_threshold: float = 1e-6) -> None:
        self.kernels = [np.asarray(k) for k in kernels]
        self.abs_kernels = [np.abs(k) for k in self.kernels]
        self.min_threshold = float(min_threshold)
        self.size = sum(k.size for k in self.kernels)

    def decode(self, genomes: Sequence[Sequence[float]]) -> Masks:
        raise NotImplementedError

    def mask_key(self, genome: Sequence[float]) -> object:
        """A key equal for two genomes exactly when their masks are equal."""
        masks = self.decode([genome])
        return np.packbits(np.concatenate([m.ravel() for m in masks])).tobytes()

    def initial(self, n: int, rng=random) -> list[list]:
        """The encoding's natural initial population: thresholds at densities 1 .. 1/n.

        Args:
            n: genomes.
            rng: generator of the encodings that draw (``mask``); default the ``random`` module.
        """
        return [self._at_density(d, rng) for d in _densities(n)]

    def _at_density(self, density: float, rng) -> list:
        raise NotImplementedError

    def describe(self, genome: Sequence[float]) -> str:
        """A compact text form of a genome for CSV files."""
        return " ".join(f"{float(x):.6g}" for x in genome)


def _densities(n: int) -> np.ndarray:
    return np.linspace(1.0, 1.0 / n, n)


def _threshold_for_density(magnitudes: np.ndarray, density: float, low: float) -> float:
    """The threshold that keeps about ``density`` of ``magnitudes``."""
    if density >= 1.0:
        return low
    return max(low, float(np.quantile(magnitudes, 1.0 - density)))


class ThresholdEncoding(Encoding):
    """The paper's genome: one magnitude threshold; weights with ``|w| <= t`` are pruned.

    With several pruned layers the one threshold applies to all of them.
    """

    name = "threshold"
    length = 1

    def __init__(self, kernels, min_threshold: float = 1e-6) -> None:
        if isinstance(kernels, np.ndarray):
            kernels = [kernels]
        super().__init__(kernels, min_threshold)
        self.low = float(min_threshold)
        self.high = float(max(k.max() for k in self.abs_kernels))
        self._sorted = np.sort(np.concatenate([k.ravel() for k in self.abs_kernels]))
        self.lows, self.highs = [self.low], [self.high]

    def decode(self, genomes):
        t = np.asarray([g[0] for g in genomes], dtype=np.float64)
        return [a[None, ...] > t.reshape((-1,) + (1,) * a.ndim) for a in self.abs_kernels]

    def mask_key(self, genome) -> int:
        return int(self._sorted.size - np.searchsorted(self._sorted, genome[0], side="right"))

    def _at_density(self, density, rng):
        return [_threshold_for_density(self._sorted, density, self.low)]


class LayerThresholds(Encoding):
    """One magnitude threshold per pruned layer."""

    name = "layer_thresholds"

    def __init__(self, kernels, min_threshold: float = 1e-6) -> None:
        super().__init__(kernels, min_threshold)
        self.length = len(self.kernels)
        self.lows = [self.min_threshold] * self.length
        self.highs = [float(a.max()) for a in self.abs_kernels]

    def decode(self, genomes):
        g = np.asarray(genomes, dtype=np.float64)
        return [a[None, ...] > g[:, i].reshape((-1,) + (1,) * a.ndim) for i, a in enumerate(self.abs_kernels)]

    def _at_density(self, density, rng):
        return [_threshold_for_density(a, density, self.min_threshold) for a in self.abs_kernels]


class UnitThresholds(Encoding):
    """One magnitude threshold per output unit (last kernel axis) of each pruned layer."""

    name = "unit_thresholds"

    def __init__(self, kernels, min_threshold: float = 1e-6) -> None:
        super().__init__(kernels, min_threshold)
        self.units = [k.shape[-1] for k in self.kernels]
        self.length = sum(self.units)
        self.lows = [self.min_threshold] * self.length
        self.highs = [float(a[..., u].max()) for a in self.abs_kernels for u in range(a.shape[-1])]

    def decode(self, genomes):
        g = np.asarray(genomes, dtype=np.float64)
        masks, start = [], 0
        for a, units in zip(self.abs_kernels, self.units):
            t = g[:, start : start + units].reshape((len(g),) + (1,) * (a.ndim - 1) + (units,))
            masks.append(a[None, ...] > t)
            start += units
        return masks

    def _at_density(self, density, rng):
        return [
            _threshold_for_density(a[..., u], density, self.min_threshold)
            for a in self.abs_kernels
            for u in range(a.shape[-1])
        ]


class MaskEncoding(Encoding):
    """One bit per weight (1 keeps it)."""

    name = "mask"
    kind = "binary"

    def __init__(self, kernels, min_threshold: float = 1e-6, noise: float = 0.02) -> None:
        super().__init__(kernels, min_threshold)
        self.length = self.size
        self.lows, self.highs = [0] * self.length, [1] * self.length
        self.noise = noise
        self._magnitudes = np.concatenate([a.ravel() for a in self.abs_kernels])

    def decode(self, genomes):
        bits = np.asarray(genomes, dtype=bool).reshape(len(genomes), -1)
        masks, start = [], 0
        for k in self.kernels:
            masks.append(bits[:, start : start + k.size].reshape((len(genomes),) + k.shape))
            start += k.size
        return masks

    def mask_key(self, genome) -> bytes:
        return np.packbits(np.asarray(genome, dtype=bool)).tobytes()

    def _at_density(self, density, rng):
        """Keeps the largest ``density`` share of weights, then flips bits with ``noise``.

        Uses ``rng.random`` for the flips.
        """
        keep = self._magnitudes > _threshold_for_density(self._magnitudes, density, -1.0)
        if density >= 1.0:
            keep[:] = True
        return [int(bit) ^ (rng.random() < self.noise) for bit in keep]

    def describe(self, genome) -> str:
        return np.packbits(np.asarray(genome, dtype=bool)).tobytes().hex()


ENCODINGS = {cls.name: cls for cls in (ThresholdEncoding, LayerThresholds, UnitThresholds, MaskEncoding)}


AUTO = "auto"  # one pruned kernel: threshold (the paper's genome); more: layer_thresholds
ENCODING_CHOICES = (AUTO, *ENCODINGS)


def resolve_encoding(name: str, kernels: int) -> str:
    """The genome ``search.encoding`` names for a target of ``kernels`` pruned kernels.

    ``auto`` is the paper's one threshold for one kernel and one threshold per kernel for
    more (one threshold cannot fit layers of different scales); other names stay.
    """
    if name != AUTO:
        return name
    return ThresholdEncoding.name if kernels == 1 else LayerThresholds.name


def make_encoding(name: str, kernels: Sequence[np.ndarray], min_threshold: float) -> Encoding:
    """Builds an encoding by name (``auto`` resolved for these kernels, see :func:`resolve_encoding`).

    Raises:
        ConfigError: unknown name (the message lists the valid names).
    """
    kernels = list(kernels)
    name = resolve_encoding(name, len(kernels))
    if name not in ENCODINGS:
        raise ConfigError(
            f"Unknown encoding. Expected one of: {', '.join(ENCODING_CHOICES)}. "
            f"Received: search.encoding={name!r}"
        )
    return ENCODINGS[name](kernels, min_threshold)
