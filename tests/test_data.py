"""Datasets: the bundled sample, the validation split, and fast offline failure."""

from __future__ import annotations

import time

import numpy as np
import pytest

from evoprune import data
from evoprune.config import DataConfig
from evoprune.errors import DataError
from evoprune.idx import write_idx


def test_sample_loads_with_three_disjoint_splits():
    ds = data.load_dataset(DataConfig(dataset="mnist-sample"))
    assert ds.name == "mnist-sample"
    assert (len(ds.train[1]), len(ds.validation[1]), len(ds.test[1])) == (9000, 1000, 2000)
    assert np.bincount(ds.validation[1]).tolist() == [100] * 10
    assert ds.train[0].dtype == np.uint8 and ds.train[0].shape[1:] == (28, 28, 1)
    assert ds.train[1].dtype == np.int64 and ds.input_shape == (28, 28, 1) and ds.n_classes == 10


def test_sample_checksum_and_inputs_are_unchanged_by_the_channel_axis():
    """The cache key of models trained before 4-D images: the same bytes hash the same."""
    ds = data.load_dataset(DataConfig(dataset="mnist-sample"))
    assert ds.checksum == "f248c6fe8baa266a5c1eb0309f64c564cec904a70d4068699898362c2a50ae8c"
    x = data.normalize(ds.validation[0])
    assert x.dtype == np.float32 and x.shape == (1000, 28, 28, 1)
    np.testing.assert_array_equal(x, ds.validation[0].astype(np.float32) / np.float32(255.0))


def test_split_is_deterministic_and_depends_on_split_seed():
    a = data.load_dataset(DataConfig(dataset="mnist-sample"))
    b = data.load_dataset(DataConfig(dataset="mnist-sample"))
    c = data.load_dataset(DataConfig(dataset="mnist-sample", split_seed=1))
    assert a.checksum == b.checksum and np.array_equal(a.validation[0], b.validation[0])
    assert a.checksum != c.checksum


def test_stratified_split_partitions_rows():
    labels = np.repeat(np.arange(10, dtype=np.uint8), 20)
    images = np.arange(200 * 4, dtype=np.uint8).reshape(200, 2, 2)
    (xt, yt), (xv, yv) = data.stratified_split(images, labels, 0.25, seed=0)
    assert len(yv) == 50 and np.bincount(yv).tolist() == [5] * 10
    rows = sorted(xt[:, 0, 0].tolist() + xv[:, 0, 0].tolist())
    assert rows == sorted(images[:, 0, 0].tolist())


def test_data_dir_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    ds = data.load_dataset(DataConfig(data_dir=str(tmp_path), validation_fraction=0.25))
    assert ds.name.startswith("idx:") and len(ds.test[1]) == 10 and len(ds.validation[1]) == 10


def _no_network(*args, **kwargs):
    raise OSError("Name or service not known")


def test_offline_tfds_fails_fast_naming_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data.socket, "create_connection", _no_network)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        data.load_dataset(DataConfig(dataset="mnist"))
    assert time.perf_counter() - start < 10
    assert "--data-dir" in str(info.value) and "mnist-sample" in str(info.value)


def test_network_probe_gives_up_on_a_hanging_connection(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)  # longer than the probe waits, then fails like a timed-out connect
        raise OSError("timed out")

    monkeypatch.setattr(data.socket, "create_connection", hang)
    start = time.perf_counter()
    assert data.network_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 3
