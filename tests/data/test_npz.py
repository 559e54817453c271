"""``.npz`` data files: shapes, dtypes, own validation split, and one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from evoprune.config import DataConfig
from evoprune.data import dataset as data
from evoprune.data.npz import load_npz
from evoprune.errors import DataError
from synthetic import arrays, write_npz


def _load(path, **kwargs):
    return data.load_dataset(DataConfig(data_file=str(path), **kwargs))


def test_gray_uint8_three_dims_get_a_channel_and_a_carved_validation(tmp_path):
    path = write_npz(tmp_path / "gray.npz", (12, 12), 3, n_train=30, n_test=12)
    ds = _load(path, validation_fraction=0.2)
    assert ds.name == f"npz:{path.resolve()}"
    assert ds.input_shape == (12, 12, 1) and ds.n_classes == 3 and ds.class_names == ()
    assert [len(s[1]) for s in (ds.train, ds.validation, ds.test)] == [24, 6, 12]
    assert np.bincount(ds.validation[1]).tolist() == [2, 2, 2]
    assert ds.train[0].dtype == np.uint8 and ds.train[1].dtype == np.int64
    x, y = arrays(12, (12, 12), 3, seed=1)
    np.testing.assert_array_equal(ds.test[0][..., 0], x)
    np.testing.assert_array_equal(ds.test[1], y)


def test_rgb_float_with_own_validation_split(tmp_path):
    path = write_npz(tmp_path / "rgb.npz", (32, 32, 3), 5, n_train=20, n_test=10, n_val=10, dtype="float32")
    ds = _load(path)
    assert ds.input_shape == (32, 32, 3) and ds.n_classes == 5
    x_val, y_val = arrays(10, (32, 32, 3), 5, seed=2, dtype="float32")
    np.testing.assert_array_equal(ds.validation[0], x_val)
    np.testing.assert_array_equal(ds.validation[1], y_val)
    assert len(ds.train[1]) == 20  # nothing carved from train when the file has x_val
    assert ds.train[0].dtype == np.float32
    np.testing.assert_array_equal(data.normalize(ds.validation[0]), x_val)  # floats are not divided again


def test_floats_outside_zero_one_are_kept_as_given(tmp_path):
    """Standardized or ``[-1, 1]`` pixels are a model's own input scale: loaded and fed unchanged."""
    x = np.linspace(-3.0, 250.0, 30 * 12 * 12, dtype=np.float32).reshape(30, 12, 12)
    path = write_npz(
        tmp_path / "scaled.npz",
        (12, 12),
        3,
        n_train=30,
        n_test=12,
        x_train=x,
        x_test=np.full((12, 12, 12), -1.0, np.float32),
    )
    ds = _load(path, validation_fraction=0.2)
    kept = np.concatenate([ds.train[0], ds.validation[0]])
    assert sorted(kept.ravel().tolist()) == sorted(x.ravel().tolist())
    np.testing.assert_array_equal(data.normalize(ds.test[0]), np.full((12, 12, 12, 1), -1.0, np.float32))


def test_checksum_depends_on_the_content(tmp_path):
    a = _load(write_npz(tmp_path / "a.npz", (12, 12), 3))
    again = _load(write_npz(tmp_path / "again.npz", (12, 12), 3))
    other = _load(write_npz(tmp_path / "b.npz", (12, 12), 3, n_test=13))
    assert a.checksum == again.checksum != other.checksum


def test_column_labels_are_accepted(tmp_path):
    """Keras' ``cifar10.load_data()`` gives labels of shape (n, 1)."""
    x, y = arrays(30, (8, 8), 3)
    splits, n_classes = load_npz(write_npz(tmp_path / "col.npz", (8, 8), 3, y_train=y.reshape(-1, 1)))
    assert splits["train"][1].shape == (30,) and n_classes == 3


def _bad(tmp_path, **replace):
    return write_npz(tmp_path / "bad.npz", (12, 12), 3, n_train=30, n_test=12, **replace)


BAD = {
    "missing array": (dict(y_test=None), "missing arrays"),
    "only x_val": (dict(x_val=np.zeros((3, 12, 12), np.uint8)), "x_val and y_val"),
    "wrong ndim": (dict(x_train=np.zeros((30, 144), np.uint8)), "x_train: wrong number of dimensions"),
    "infinite float": (dict(x_test=np.full((12, 12, 12), np.inf, np.float32)), "x_test: non-finite pixel"),
    "NaN": (dict(x_train=np.full((30, 12, 12), np.nan, np.float32)), "x_train: non-finite pixel"),
    "int64 images": (dict(x_train=np.zeros((30, 12, 12), np.int64)), "dtype int64"),
    "negative label": (dict(y_test=-np.ones(12, np.int64)), "y_test: label out of range"),
    "float labels": (dict(y_train=np.zeros(30, np.float32)), "y_train: non-integer labels"),
    "label not in train": (dict(y_test=np.full(12, 7)), "Received: 7 at index 0"),
    "empty class": (
        dict(y_train=np.arange(30) % 2 * 2, y_test=np.arange(12) % 2 * 2),
        "y_train: empty class",
    ),
    "typo label in train": (  # one 12 among 0..2: train lacks 3..11, named before test's labels
        dict(y_train=np.where(np.arange(30) == 5, 12, np.arange(30) % 3)),
        "y_train: empty class. Expected every class 0..12 in the training split. Received: no label 3.",
    ),
    "mixed sizes": (dict(x_test=np.zeros((12, 10, 12), np.uint8)), "x_test: mixed image sizes"),
    "count mismatch": (dict(y_train=np.arange(29) % 3), "Received: 30 images and 29 labels"),
    "mixed dtypes": (dict(x_test=np.zeros((12, 12, 12), np.float32)), "mixed image dtypes"),
    "mixed dtypes, float64 named as stored": (
        dict(x_test=np.zeros((12, 12, 12), np.float64)),
        "mixed image dtypes. Expected the same dtype in every split. Received: float64, uint8.",
    ),
    "train from 1, test from 0": (  # not shifted: subtracting 1 would make test's 0 a -1
        dict(y_train=np.arange(30) % 2 + 1, y_test=np.arange(12) % 2),
        "y_train: empty class. Expected every class 0..2 in the training split. Received: no label 0.",
    ),
    "labels counted from 5": (
        dict(y_train=np.arange(30) % 3 + 5, y_test=np.arange(12) % 3 + 5),
        "y_train: labels do not start at 0. Expected class indices 0..k-1. "
        "Received: labels 5..7 (subtract 5 to count from 0).",
    ),
    "empty split": (
        dict(x_test=np.zeros((0, 12, 12), np.uint8), y_test=np.zeros(0, np.int64)),
        "empty split",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arrays_are_one_line_naming_the_file(tmp_path, case):
    replace, needle = BAD[case]
    path = _bad(tmp_path, **replace)
    with pytest.raises(DataError) as info:
        load_npz(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message, message


def test_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled objects are not loaded"):
        load_npz(path)


@pytest.mark.parametrize(
    "content, needle",
    [(b"not a zip", "not an .npz archive"), (b"PK\x03\x04broken", "not a readable .npz archive")],
)
def test_not_an_archive(tmp_path, content, needle):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=needle):
        load_npz(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "gone.npz")
    with pytest.raises(DataError, match="a directory"):
        load_npz(tmp_path)
