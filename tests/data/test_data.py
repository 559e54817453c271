"""Datasets: the bundled sample, the validation split, and fast offline failure."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from evoprune.cli import _data_overrides
from evoprune.config import Config, DataConfig
from evoprune.data import dataset as data
from evoprune.data.idx import write_idx
from evoprune.errors import ConfigError, DataError
from synthetic import arrays, write_idx_dir, write_npz


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
        write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
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
    assert "--data-file" in str(info.value)


def test_network_probe_gives_up_on_a_hanging_connection(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)  # longer than the probe waits, then fails like a timed-out connect
        raise OSError("timed out")

    monkeypatch.setattr(data.socket, "create_connection", hang)
    start = time.perf_counter()
    assert data.network_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 3


def test_idx_dir_of_another_shape_and_class_count(tmp_path):
    ds = data.load_dataset(
        DataConfig(data_dir=str(write_idx_dir(tmp_path / "idx", (12, 12), 3)), validation_fraction=0.2)
    )
    assert ds.input_shape == (12, 12, 1) and ds.n_classes == 3
    assert ds.train[0].shape[1:] == (12, 12, 1) and ds.train[1].dtype == np.int64
    assert len(ds.validation[1]) == 6 and len(ds.test[1]) == 12


def test_hand_built_dataset_counts_its_classes():
    x, y = arrays(10, (4, 4, 2), 5)
    ds = data.Dataset("mine", (x, y), (x[:0], y[:0]), (x, y), "sum")
    assert ds.n_classes == 5 and ds.input_shape == (4, 4, 2) and ds.class_names == ()


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_pipelines_take_any_shape_and_both_dtypes(dtype):
    x, y = arrays(10, (6, 5, 3), 4, dtype=dtype)
    expected = x.astype(np.float32) / np.float32(255.0) if dtype == "uint8" else x
    np.testing.assert_array_equal(data.normalize(x), expected)
    batches = list(data.eval_pipeline((x, y), batch_size=4).as_numpy_iterator())
    assert [b[0].shape for b in batches] == [(4, 6, 5, 3), (4, 6, 5, 3), (2, 6, 5, 3)]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), expected)
    train = list(data.train_pipeline((x, y), batch_size=10, seed=0).as_numpy_iterator())[0]
    assert train[0].dtype == np.float32 and train[1].dtype == np.int64
    assert sorted(map(bytes, train[0])) == sorted(map(bytes, expected))  # shuffled, same images


def test_npz_replaces_dataset_and_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPRUNE_DATA_DIR", str(tmp_path / "nowhere"))
    ds = data.load_dataset(DataConfig(data_file=str(write_npz(tmp_path / "d.npz", (12, 12), 3))))
    assert ds.name.startswith("npz:") and ds.n_classes == 3


def test_env_data_dir_stands_in_for_mnist_only(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPRUNE_DATA_DIR", str(write_idx_dir(tmp_path / "idx", (12, 12), 3)))
    assert data.load_dataset(DataConfig(dataset="mnist")).name == f"idx:{(tmp_path / 'idx').resolve()}"
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(data.socket, "create_connection", _no_network)
    with pytest.raises(DataError, match="'fashion_mnist' is not prepared"):
        data.load_dataset(DataConfig(dataset="fashion_mnist"))


@pytest.mark.parametrize(
    "name, needle",
    [
        ("cifar", "Unknown tensorflow-datasets dataset"),
        ("imdb_reviews", "not an image classification dataset"),
        ("tf_flowers", "images of varying size"),
    ],
)
def test_tfds_names_that_cannot_be_used_fail_without_network(name, needle, monkeypatch):
    monkeypatch.setattr(data.socket, "create_connection", _no_network)
    with pytest.raises(DataError) as info:
        data.load_dataset(DataConfig(dataset=name))
    assert needle in str(info.value) and repr(name) in str(info.value)


def test_mocked_tfds_rgb_dataset_loads_without_network(monkeypatch):
    """tensorflow-datasets' own mock: shape, channels and class count come from cifar10's info."""
    import tensorflow_datasets as tfds

    probes = []
    monkeypatch.setattr(data, "network_reachable", lambda *a, **k: probes.append(1) or False)
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load_dataset(DataConfig(dataset="cifar10", validation_fraction=0.2))
    assert probes == []
    assert ds.name == "cifar10" and ds.input_shape == (32, 32, 3) and ds.n_classes == 10
    assert len(ds.class_names) == 10 and len(ds.test[1]) == 20
    assert len(ds.train[1]) + len(ds.validation[1]) == 20
    assert ds.train[0].dtype == np.uint8 and ds.train[1].dtype == np.int64


def test_config_takes_any_tfds_name_but_not_dir_and_file():
    for name in ("cifar10", "emnist/digits", "mnist:3.0.1", "mnist-sample"):
        DataConfig(dataset=name).validate()
    for name in ("CIFAR10", "cifar-10", "../x", ""):
        with pytest.raises(ConfigError, match="data.dataset"):
            DataConfig(dataset=name).validate()
    with pytest.raises(ConfigError) as info:
        DataConfig(data_dir="d", data_file="f.npz").validate()
    assert "data.data_dir='d'" in str(info.value) and "data.data_file='f.npz'" in str(info.value)


def test_cli_data_dir_or_file_replaces_the_other_from_the_config():
    base = Config().with_overrides({"data.data_dir": "from-config"})
    cfg = base.with_overrides(_data_overrides(None, None, Path("x.npz")))
    assert (cfg.data.data_dir, cfg.data.data_file, cfg.data.source) == ("", "x.npz", "x.npz")
    cfg = cfg.with_overrides(_data_overrides(None, Path("dir"), None))
    assert (cfg.data.data_dir, cfg.data.data_file, cfg.data.source) == ("dir", "", "dir")
    assert base.with_overrides(_data_overrides(None, None, None)) == base
    with pytest.raises(ConfigError, match="at most one"):
        base.with_overrides(_data_overrides(None, Path("dir"), Path("x.npz")))
