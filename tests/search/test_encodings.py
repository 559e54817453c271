"""Encodings: decoding, bounds, memo keys and natural initializers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evoprune.errors import ConfigError
from evoprune.search.encodings import (
    LayerThresholds,
    MaskEncoding,
    ThresholdEncoding,
    UnitThresholds,
    make_encoding,
)

RNG = np.random.default_rng(0)
KERNELS = [RNG.normal(size=(3, 3, 1, 3)).astype(np.float32), RNG.normal(size=(6, 4)).astype(np.float32)]


def test_threshold_prunes_all_layers_with_one_threshold():
    enc = ThresholdEncoding(KERNELS, 1e-6)
    masks = enc.decode([[0.5], [enc.high]])
    assert [m.shape for m in masks] == [(2, 3, 3, 1, 3), (2, 6, 4)]
    assert np.array_equal(masks[1][0], np.abs(KERNELS[1]) > 0.5)
    assert not any(m[1].any() for m in masks)
    assert enc.mask_key([0.5]) == sum(int(m[0].sum()) for m in masks)


def test_layer_thresholds_use_one_gene_per_layer():
    enc = LayerThresholds(KERNELS, 1e-6)
    assert enc.length == 2 and enc.highs == [float(np.abs(k).max()) for k in KERNELS]
    masks = enc.decode([[0.1, 1.0]])
    assert np.array_equal(masks[0][0], np.abs(KERNELS[0]) > 0.1)
    assert np.array_equal(masks[1][0], np.abs(KERNELS[1]) > 1.0)


def test_unit_thresholds_use_one_gene_per_output_unit():
    enc = UnitThresholds(KERNELS, 1e-6)
    assert enc.length == 3 + 4
    genome = [0.0, 0.0, 9.0, 0.2, 0.4, 0.6, 9.0]
    masks = enc.decode([genome])
    assert not masks[0][0][..., 2].any() and masks[0][0][..., 0].all()
    for unit, t in enumerate(genome[3:]):
        assert np.array_equal(masks[1][0][:, unit], np.abs(KERNELS[1][:, unit]) > t)


def test_mask_encoding_round_trip_and_keys():
    enc = MaskEncoding(KERNELS)
    bits = [random.Random(1).randint(0, 1) for _ in range(enc.length)]
    masks = enc.decode([bits])
    flat = np.concatenate([m[0].ravel() for m in masks])
    assert flat.tolist() == [bool(b) for b in bits]
    assert enc.mask_key(bits) == enc.mask_key([float(b) for b in bits])
    assert enc.kind == "binary" and enc.lows == [0] * enc.length


@pytest.mark.parametrize("cls", [ThresholdEncoding, LayerThresholds, UnitThresholds, MaskEncoding])
def test_initializers_span_densities_within_bounds(cls):
    random.seed(0)
    enc = cls(KERNELS, 1e-6)
    population = enc.initial(10)
    assert len(population) == 10 and all(len(g) == enc.length for g in population)
    for genome in population:
        assert all(lo <= x <= hi for x, lo, hi in zip(genome, enc.lows, enc.highs))
    kept = [sum(int(m[0].sum()) for m in enc.decode([g])) for g in population]
    assert kept[0] >= 0.9 * enc.size and kept[-1] <= 0.35 * enc.size  # dense to sparse


def test_generic_mask_key_matches_decode_equality():
    enc = UnitThresholds(KERNELS, 1e-6)
    a, b = [0.1] * 7, [0.1 + 1e-9] * 7
    same = all(np.array_equal(x, y) for x, y in zip(enc.decode([a]), enc.decode([b])))
    assert (enc.mask_key(a) == enc.mask_key(b)) == same


def test_unknown_encoding_lists_names():
    with pytest.raises(ConfigError, match="Expected one of: auto, threshold, layer_thresholds"):
        make_encoding("bits", KERNELS, 1e-6)


def test_auto_is_the_papers_threshold_for_one_kernel_and_one_per_kernel_for_more():
    from evoprune.config import Config

    assert Config().search.encoding == "auto"
    assert make_encoding("auto", KERNELS[:1], 1e-6).name == "threshold"  # the paper's run is unchanged
    per_layer = make_encoding("auto", KERNELS, 1e-6)
    assert per_layer.name == "layer_thresholds" and per_layer.length == len(KERNELS)
    assert make_encoding("threshold", KERNELS, 1e-6).length == 1  # asked for by name: kept
