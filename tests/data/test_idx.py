"""Tests for the IDX reader/writer, the MNIST directory loader and the shipped sample."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import evoprune
from evoprune.data.idx import find_mnist_files, load_idx_dir, read_idx, write_idx
from evoprune.errors import DataError

ROOT = Path(__file__).resolve().parents[2]

SAMPLE_DIR = Path(evoprune.__file__).resolve().parent / "datasets" / "mnist_sample"
STANDARD = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DOTTED = (
    "train-images.idx3-ubyte",
    "train-labels.idx1-ubyte",
    "t10k-images.idx3-ubyte",
    "t10k-labels.idx1-ubyte",
)


def _images(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _labels(n: int = 12) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def _header(type_code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


def _make_mnist_dir(
    directory: Path, names=STANDARD, suffix: str = ".gz", n_train: int = 12, n_test: int = 6
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (_images(n_train, 1), _labels(n_train), _images(n_test, 2), _labels(n_test))
    for name, array in zip(names, arrays):
        write_idx(directory / f"{name}{suffix}", array)
    return directory


def _assert_one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    array = _images()
    path = tmp_path / name
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    result = read_idx(path, expected_ndim=3)
    assert result.dtype == np.uint8
    assert result.shape == (12, 28, 28)
    np.testing.assert_array_equal(result, array)


def test_round_trip_1d_labels(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", _labels())
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz", expected_ndim=1), _labels())


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", _images())
    renamed = tmp_path / "no-suffix"
    renamed.write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(renamed), _images())


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", _images())
    write_idx(tmp_path / "b.gz", _images())
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_rejects_non_uint8(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_idx(tmp_path / "a", np.zeros((2, 2), dtype=np.float32))


# ---------------------------------------------------------------- read_idx errors


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path: Path, compress: bool) -> None:
    data = _header(0x08, (12, 28, 28)) + _images().tobytes()[:-5]
    path = tmp_path / "trunc-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "truncated", "Expected 9408", "Received: 9403")


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "trail-idx3-ubyte"
    path.write_bytes(_header(0x08, (12, 28, 28)) + _images().tobytes() + b"\x00\x01")
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "trailing", "Received: 9410")


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "magic-idx3-ubyte"
    path.write_bytes(b"\x12\x34" + _header(0x08, (12, 28, 28))[2:] + _images().tobytes())
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "magic", "Received: 12 34")


def test_wrong_dtype_code(tmp_path: Path) -> None:
    path = tmp_path / "float-idx3-ubyte"
    path.write_bytes(_header(0x0D, (12, 28, 28)) + np.zeros((12, 28, 28), dtype=">f4").tobytes())
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "0x08", "Received: 0x0d")


def test_wrong_ndim(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, _labels())
    with pytest.raises(DataError) as excinfo:
        read_idx(path, expected_ndim=3)
    _assert_one_line_error(excinfo, path.name, "Expected 3", "Received: 1")


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(_header(0x08, (12, 28, 28))[:9])
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "header")


@pytest.mark.parametrize(
    "payload",
    [
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"this is not a deflate stream at all" * 3,
        gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 100)[:-12],  # stream cut short
    ],
    ids=["garbage", "cut"],
)
def test_corrupt_gzip(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "corrupt-idx3-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name, "gzip")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent-idx3-ubyte"
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    _assert_one_line_error(excinfo, path.name)


# ---------------------------------------------------------------- directories


@pytest.mark.parametrize("names", [STANDARD, DOTTED], ids=["standard", "dotted"])
@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gz"])
def test_find_and_load_both_spellings(tmp_path: Path, names: tuple[str, ...], suffix: str) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist", names=names, suffix=suffix)
    files = find_mnist_files(directory)
    assert set(files) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert [files[k].name for k in ("train_images", "train_labels", "test_images", "test_labels")] == [
        f"{n}{suffix}" for n in names
    ]
    data = load_idx_dir(directory)
    assert set(data) == {"train", "test"}
    train_x, train_y = data["train"]
    test_x, test_y = data["test"]
    assert train_x.shape == (12, 28, 28) and train_y.shape == (12,)
    assert test_x.shape == (6, 28, 28) and test_y.shape == (6,)
    assert train_x.dtype == train_y.dtype == test_x.dtype == test_y.dtype == np.uint8
    np.testing.assert_array_equal(train_x, _images(12, 1))
    np.testing.assert_array_equal(test_y, _labels(6))


def test_missing_file_names_expected_name(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        find_mnist_files(directory)
    _assert_one_line_error(excinfo, str(directory), "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError):
        load_idx_dir(directory)


def test_missing_directory(tmp_path: Path) -> None:
    directory = tmp_path / "nowhere"
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, str(directory), "no such directory")


def test_count_mismatch(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    write_idx(directory / "train-labels-idx1-ubyte.gz", _labels(11))
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "12", "11")


def test_labels_out_of_range(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    labels = _labels(6)
    labels[4] = 10
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, "t10k-labels-idx1-ubyte.gz", "0..9", "Received: 10 at index 4")


def test_images_must_be_3d(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    write_idx(directory / "train-images-idx3-ubyte.gz", _images().reshape(12, 784))
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, "train-images-idx3-ubyte.gz", "Expected 3", "Received: 2")


def test_labels_must_be_1d(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    write_idx(directory / "train-labels-idx1-ubyte.gz", _labels().reshape(12, 1))
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, "train-labels-idx1-ubyte.gz", "Expected 1", "Received: 2")


# ---------------------------------------------------------------- shipped sample and build script


def test_shipped_sample_loads_balanced() -> None:
    data = load_idx_dir(SAMPLE_DIR)
    for split, per_class in (("train", 1000), ("test", 200)):
        images, labels = data[split]
        assert images.shape == (10 * per_class, 28, 28)
        assert labels.shape == (10 * per_class,)
        assert images.dtype == labels.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [per_class] * 10)
        assert images.max() > 0
    total = sum(p.stat().st_size for p in SAMPLE_DIR.glob("*.gz"))
    assert total <= 4 * 1024 * 1024


def _load_build_script():
    spec = importlib.util.spec_from_file_location(
        "build_mnist_sample", ROOT / "scripts" / "build_mnist_sample.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_is_deterministic_and_stratified(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _load_build_script()
    source = _make_mnist_dir(tmp_path / "full", n_train=60, n_test=30)
    args = ["--source", str(source), "--train-per-class", "3", "--test-per-class", "2", "--seed", "7"]
    assert script.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert script.main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "total:" in capsys.readouterr().out
    for name in STANDARD:
        assert (tmp_path / "a" / f"{name}.gz").read_bytes() == (tmp_path / "b" / f"{name}.gz").read_bytes()
    data = load_idx_dir(tmp_path / "a")
    np.testing.assert_array_equal(np.bincount(data["train"][1], minlength=10), [3] * 10)
    np.testing.assert_array_equal(np.bincount(data["test"][1], minlength=10), [2] * 10)


def test_build_script_class_too_small(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _load_build_script()
    source = _make_mnist_dir(tmp_path / "full", n_train=12, n_test=6)
    assert (
        script.main(["--source", str(source), "--out", str(tmp_path / "out"), "--train-per-class", "5"]) == 1
    )
    assert "class" in capsys.readouterr().err


# ---------------------------------------------------------------- other shapes and class counts


def test_any_image_size_and_class_count(tmp_path: Path) -> None:
    from synthetic import arrays, write_idx_dir

    data = load_idx_dir(write_idx_dir(tmp_path / "small", (12, 12), 3, n_train=9, n_test=6))
    assert data["train"][0].shape == (9, 12, 12) and data["test"][0].shape == (6, 12, 12)
    np.testing.assert_array_equal(data["test"][1], arrays(6, (12, 12), 3, seed=1)[1])


def test_four_dimensional_colour_images(tmp_path: Path) -> None:
    from synthetic import write_idx_dir

    data = load_idx_dir(write_idx_dir(tmp_path / "rgb", (32, 32, 3), 5, n_train=10, n_test=5))
    assert data["train"][0].shape == (10, 32, 32, 3)


def test_image_sizes_differ_between_splits(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((6, 12, 12), np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(
        excinfo, "t10k-images-idx3-ubyte.gz", "mixed image sizes", "(28, 28, 1)", "Received: (12, 12, 1)"
    )


def test_class_without_training_images(tmp_path: Path) -> None:
    directory = _make_mnist_dir(tmp_path / "mnist")
    write_idx(directory / "train-labels-idx1-ubyte.gz", (np.arange(12) % 2 * 3).astype(np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(6, np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_idx_dir(directory)
    _assert_one_line_error(excinfo, "train-labels-idx1-ubyte.gz", "empty class", "Received: no label 1")
