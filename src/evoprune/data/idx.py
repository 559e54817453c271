"""Read and write MNIST-style IDX files (uint8, raw or gzip) with strict validation."""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from evoprune.data.arrays import check_classes, check_same_shape
from evoprune.errors import DataError, plural

_GZIP_MAGIC = b"\x1f\x8b"
_UINT8_TYPE_CODE = 0x08
_HEADER_PREFIX_LEN = 4
_DIM_BYTES = 4
_MAX_DIM = 2**32 - 1

# Accepted spellings per file, in order of preference (first existing wins).
_MNIST_NAMES: dict[str, tuple[str, ...]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _one_line(text: str) -> str:
    """Join the lines of ``text`` with single spaces so the message fits on one line.

    Args:
        text: Any message text.

    Returns:
        The text on a single line.
    """
    return " ".join(part.strip() for part in text.splitlines())


def _fail(path: Path, problem: str) -> DataError:
    """Build a one-line DataError that names the file and the problem.

    Args:
        path: The file or directory concerned.
        problem: What is wrong, in the style "Expected ... Received: ...".

    Returns:
        The DataError to raise.
    """
    return DataError(_one_line(f"{path}: {problem}"))


def _read_bytes(path: Path) -> bytes:
    """Read a file's bytes, transparently decompressing gzip content.

    Gzip is detected by the 1f 8b magic bytes, not by the file suffix.

    Args:
        path: File to read.

    Returns:
        The (decompressed) file content.

    Raises:
        DataError: If the file cannot be read or the gzip stream is corrupt.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(
            path, "cannot read IDX file. Expected an existing file. Received: no such file."
        ) from None
    except OSError as exc:
        raise _fail(
            path, f"cannot read IDX file. Expected a readable file. Received: {exc.strerror or exc}."
        ) from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(
            path,
            "corrupt gzip stream. Expected a valid gzip-compressed IDX file. "
            f"Received: {type(exc).__name__}: {exc}.",
        ) from None


def read_idx(path: Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (type code 0x08), raw or gzip-compressed.

    Args:
        path: Path of the IDX file; gzip content is detected by its magic bytes.
        expected_ndim: If given, the number of dimensions the file must declare.

    Returns:
        A uint8 array with the shape declared in the file header.

    Raises:
        DataError: If the file is missing or unreadable, the gzip stream is corrupt, the
            header is invalid (magic, type code, ndim), or the payload length is not
            exactly the product of the declared dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < _HEADER_PREFIX_LEN:
        raise _fail(
            path, f"file too short for an IDX header. Expected at least 4 bytes. Received: {len(data)} bytes."
        )
    zero0, zero1, type_code, ndim = data[:_HEADER_PREFIX_LEN]
    if zero0 != 0 or zero1 != 0:
        raise _fail(
            path,
            "invalid IDX magic number. Expected first two bytes 00 00. "
            f"Received: {data[:_HEADER_PREFIX_LEN].hex(' ')}.",
        )
    if type_code != _UINT8_TYPE_CODE:
        raise _fail(path, f"unsupported IDX type code. Expected 0x08 (uint8). Received: 0x{type_code:02x}.")
    if ndim == 0:
        raise _fail(path, "invalid IDX header. Expected at least 1 dimension. Received: 0.")
    if expected_ndim is not None and ndim != expected_ndim:
        raise _fail(path, f"wrong number of dimensions. Expected {expected_ndim}. Received: {ndim}.")
    header_len = _HEADER_PREFIX_LEN + _DIM_BYTES * ndim
    if len(data) < header_len:
        raise _fail(
            path,
            f"truncated IDX header. Expected {header_len} header bytes for {ndim} dims. "
            f"Received: {len(data)} bytes.",
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=_HEADER_PREFIX_LEN))
    expected_len = math.prod(shape)
    payload_len = len(data) - header_len
    if payload_len != expected_len:
        kind = "truncated payload" if payload_len < expected_len else "trailing bytes after payload"
        raise _fail(
            path,
            f"{kind}. Expected {expected_len} data bytes for shape {shape}. Received: {payload_len} bytes.",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file; gzip-compressed if the path ends with ``.gz``.

    Gzip output uses mtime=0 and no embedded file name, so the bytes are reproducible.

    Args:
        path: Destination file; its parent directory must exist.
        array: Array of dtype uint8 with 1 to 255 dimensions, each below 2**32.

    Raises:
        TypeError: If the array is not of dtype uint8.
        ValueError: If the array has 0 or more than 255 dimensions, or a dimension too large.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx expected a uint8 array. Received: dtype {array.dtype}.")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx expected 1 to 255 dimensions. Received: {array.ndim}.")
    if any(d > _MAX_DIM for d in array.shape):
        raise ValueError(f"write_idx expected every dimension below 2**32. Received: shape {array.shape}.")
    header = bytes([0, 0, _UINT8_TYPE_CODE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    content = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
            gz.write(content)
        content = buffer.getvalue()
    path.write_bytes(content)


def find_mnist_files(directory: Path) -> dict[str, Path]:
    """Locate the four MNIST IDX files in a directory.

    Accepts the standard names (``train-images-idx3-ubyte``) and the dotted spelling
    (``train-images.idx3-ubyte``), each with or without ``.gz``. When several spellings
    exist, the first of: standard, standard ``.gz``, dotted, dotted ``.gz`` is used.

    Args:
        directory: Directory holding the MNIST files.

    Returns:
        Paths under the keys ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.

    Raises:
        DataError: If the directory does not exist or a file is missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        received = "not a directory" if directory.exists() else "no such directory"
        raise _fail(
            directory,
            f"MNIST directory not found. Expected a directory of MNIST IDX files. Received: {received}.",
        )
    found: dict[str, Path] = {}
    for key, names in _MNIST_NAMES.items():
        candidates = [directory / f"{name}{suffix}" for name in names for suffix in ("", ".gz")]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            standard = names[0]
            raise _fail(
                directory,
                f"missing MNIST file. Expected '{standard}' or '{standard}.gz' (or '{names[1]}[.gz]') "
                "in this directory, or an image folder (train/<class>/*.png, test/<class>/...). "
                "Received: no such file.",
            )
        found[key] = match
    return found


def _load_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one split's images and labels.

    Args:
        images_path: IDX file of images, shape (n, H, W) or (n, H, W, C).
        labels_path: IDX file of labels, shape (n,).

    Returns:
        The images and labels arrays, both uint8.

    Raises:
        DataError: If shapes or counts are invalid.
    """
    images = read_idx(images_path)
    if images.ndim not in (3, 4):
        raise _fail(
            images_path,
            f"wrong number of dimensions. Expected 3 (n, H, W) or 4 (n, H, W, C). Received: {images.ndim}.",
        )
    labels = read_idx(labels_path, expected_ndim=1)
    if images.shape[0] == 0:
        raise _fail(images_path, "empty split. Expected at least 1 image. Received: 0.")
    if min(images.shape[1:]) == 0:
        raise _fail(
            images_path, f"empty images. Expected every dimension >= 1. Received: shape {images.shape}."
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            _one_line(
                f"image/label count mismatch between {images_path} and {labels_path}. "
                f"Expected equal counts. Received: {plural(images.shape[0], 'image')} and "
                f"{plural(labels.shape[0], 'label')}."
            )
        )
    return images, labels


def load_idx_dir(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load train and test splits from a directory of MNIST-style IDX files.

    Any image size (``(n, H, W)`` or ``(n, H, W, C)`` files) and any class count: the
    classes are ``0 .. max label``, each of which must occur in train.

    Args:
        directory: Directory with the four MNIST files (see :func:`find_mnist_files`).

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}`` with images uint8 of
        shape (n, H, W) or (n, H, W, C), the same in both splits, and labels uint8 (n,).

    Raises:
        DataError: If a file is missing, unreadable or invalid, the counts disagree, the
            splits' image sizes differ, or a class has no training image.
    """
    files = find_mnist_files(directory)
    train = _load_split(files["train_images"], files["train_labels"])
    test = _load_split(files["test_images"], files["test_labels"])
    check_same_shape(
        [
            (str(files["train_images"]), _with_channel(train[0])),
            (str(files["test_images"]), _with_channel(test[0])),
        ]
    )
    check_classes((str(files["train_labels"]), train[1]), [(str(files["test_labels"]), test[1])])
    return {"train": train, "test": test}


def _with_channel(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images
