"""Datasets: tensorflow-datasets, IDX directories, image folders, .npz files or the bundled sample."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, cast

import numpy as np

from evoprune.config import SAMPLE_DATASET, DataConfig
from evoprune.data.arrays import check_images, check_labels
from evoprune.data.idx import find_mnist_files, load_idx_dir
from evoprune.data.imagefolder import is_image_folder, load_image_folder
from evoprune.data.npz import check_arrays, check_npz_file, load_npz
from evoprune.errors import DataError

SAMPLE_NAME = SAMPLE_DATASET
DEFAULT_DATASET = "mnist"  # the only name ``$EVOPRUNE_DATA_DIR`` stands in for
TFDS_HOST = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_S = 4.0
TFDS_BATCH = 4096

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Images ``(n, H, W, C)`` (uint8 0..255, or float32 in the model's input scale) and int64
    labels per split.

    Attributes:
        name: what was loaded: a tensorflow-datasets name, ``mnist-sample``, ``idx:<dir>``,
            ``folder:<dir>`` or ``npz:<file>`` (resolved paths).
        train: the training split (validation rows removed).
        validation: the validation split (carved from train, or the file's own; may be empty).
        test: the test split, used for reporting only unless ``fitness_split='test'``.
        checksum: sha256 of all arrays: keys the model cache and is recorded in summaries.
        n_classes: the source's class count (0 when built by hand: max label + 1).
        class_names: class names in label order, when the source has them.
    """

    name: str
    train: Split
    validation: Split
    test: Split
    checksum: str
    n_classes: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.n_classes:
            labels = [split[1] for split in (self.train, self.validation, self.test) if len(split[1])]
            object.__setattr__(self, "n_classes", int(max(int(y.max()) for y in labels)) + 1 if labels else 0)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        shape = tuple(int(d) for d in self.train[0].shape[1:])
        return cast(tuple[int, int, int], shape + (1,) if len(shape) == 2 else shape)

    def split(self, name: str) -> Split:
        """Returns ``train``, ``validation`` or ``test``."""
        if name not in ("train", "validation", "test"):
            raise DataError(f"Unknown split. Expected train, validation or test. Received: {name!r}")
        return getattr(self, name)


def sample_dir() -> Path:
    """Directory of the bundled MNIST sample (IDX files inside the package)."""
    return Path(str(resources.files("evoprune") / "datasets" / "mnist_sample"))


def load_dataset(cfg: DataConfig) -> Dataset:
    """Loads the configured dataset and carves the validation split.

    Order of sources: ``cfg.data_file`` (``.npz``) or ``cfg.data_dir`` (IDX files, or an
    image folder when it holds ``train/`` or ``test/``) when set, else the bundled sample
    for ``mnist-sample``, else ``$EVOPRUNE_DATA_DIR`` for the default ``mnist``, else
    tensorflow-datasets. A source with its own validation split (``x_val`` in an ``.npz``)
    keeps it; otherwise ``cfg.validation_fraction`` of train is carved, per class.

    Raises:
        DataError: files are missing, corrupt or inconsistent (one line naming the file),
            or tensorflow-datasets does not know the name, or has no local copy and no
            network (detected within seconds, not after minutes of retries).
    """
    raw, name, n_classes, names = _load_source(cfg)
    if "validation" in raw:
        train, validation = raw["train"], raw["validation"]
    else:
        train, validation = stratified_split(*raw["train"], cfg.validation_fraction, cfg.split_seed)
    splits = (train, validation, raw["test"])
    return Dataset(name, *splits, _checksum(n_classes, *splits), n_classes, names)


_ARGUMENT = {
    (kind, split): f"{name}[{index}] ({what})"
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test"))
    for kind, index, what in (("x", 0, "images"), ("y", 1, "labels"))
}


def from_arrays(
    train: Split,
    validation: Split | None = None,
    test: Split | None = None,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
) -> Dataset:
    """A dataset from arrays in memory, checked as an ``.npz`` file's would be.

    Args:
        train, validation, test: ``(images, labels)``; images ``(n, H, W)`` or
            ``(n, H, W, C)``, uint8 (scaled by 1/255 when fed to a model) or float in the
            model's own input scale (fed as given); labels integer class indices.
        validation: when ``None``, ``validation_fraction`` of train is carved (per class,
            seeded by ``split_seed``), as for any other source.
        test: optional; without it the runs report test accuracies as NaN.

    Raises:
        DataError: as for an ``.npz`` file, naming "the arrays given".
    """
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if split is not None and (not isinstance(split, (tuple, list)) or len(split) != 2):
            what = f"{len(split)} items" if isinstance(split, (tuple, list)) else type(split).__name__
            raise DataError(f"Expected {name}=(images, labels), a pair. Received: {name}={what}")
    arrays = {"x_train": train[0], "y_train": train[1]}
    if validation is not None:
        arrays.update(x_val=validation[0], y_val=validation[1])
    arrays.update(x_test=train[0][:0], y_test=train[1][:0]) if test is None else arrays.update(
        x_test=test[0], y_test=test[1]
    )
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    try:
        if test is None:  # an empty test split: checked by nothing, reported as NaN
            raw, n_classes = check_arrays(
                {**arrays, "x_test": arrays["x_train"][:1], "y_test": arrays["y_train"][:1]},
                "the arrays given",
            )
            raw["test"] = (raw["test"][0][:0], raw["test"][1][:0])
        else:
            raw, n_classes = check_arrays(arrays, "the arrays given")
    except DataError as exc:  # named as the caller passed them, not as an .npz file's keys
        named = re.sub(r"\b([xy])_(train|val|test)\b", lambda m: _ARGUMENT[m.group(1), m.group(2)], str(exc))
        raise DataError(named) from exc
    if "validation" in raw:
        train_split, validation_split = raw["train"], raw["validation"]
    else:
        train_split, validation_split = stratified_split(*raw["train"], validation_fraction, split_seed)
    splits = (train_split, validation_split, raw["test"])
    return Dataset("memory", *splits, _checksum(n_classes, *splits), n_classes)


def as_npz_arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file that loads back as ``dataset`` (its validation split kept)."""
    (x, y), (xv, yv), (xt, yt) = dataset.train, dataset.validation, dataset.test
    return {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv, "x_test": xt, "y_test": yt}


def source_dir(cfg: DataConfig) -> str:
    """The IDX or image folder the data come from: none beside a ``data_file``, else ``data_dir``,
    else ``$EVOPRUNE_DATA_DIR`` for the default ``mnist``, else none."""
    if cfg.data_file:
        return ""
    return cfg.data_dir or (os.environ.get("EVOPRUNE_DATA_DIR", "") if cfg.dataset == DEFAULT_DATASET else "")


def check_source(cfg: DataConfig) -> None:
    """Fails fast on a data file or folder that is not there, without reading it (or importing
    TensorFlow): the same one-line errors :func:`load_dataset` raises for them.

    Raises:
        DataError: a missing ``.npz`` file (or one that is no zip archive), or a missing data
            directory, or one that is neither an image folder nor holds the four MNIST files.
    """
    if cfg.data_file:
        check_npz_file(Path(cfg.data_file))
        return
    data_dir = source_dir(cfg)
    if data_dir and not is_image_folder(Path(data_dir)):
        find_mnist_files(Path(data_dir))


def _load_source(cfg: DataConfig) -> tuple[dict[str, Split], str, int, tuple[str, ...]]:
    """The raw splits (4-D images, int64 labels), the name, the class count and class names."""
    if cfg.data_file:
        path = Path(cfg.data_file)
        raw, n_classes = load_npz(path)
        return raw, f"npz:{path.resolve()}", n_classes, ()
    data_dir = source_dir(cfg)
    if data_dir and is_image_folder(Path(data_dir)):
        raw, names = load_image_folder(Path(data_dir))
        return raw, f"folder:{Path(data_dir).resolve()}", len(names), names
    if data_dir:
        return _from_idx(load_idx_dir(Path(data_dir)), f"idx:{Path(data_dir).resolve()}")
    if cfg.dataset == SAMPLE_NAME:
        return _from_idx(load_idx_dir(sample_dir()), SAMPLE_NAME)
    return _load_tfds(cfg.dataset)


def _from_idx(raw: dict[str, Split], name: str) -> tuple[dict[str, Split], str, int, tuple[str, ...]]:
    """IDX splits (validated by :mod:`evoprune.data.idx`) with a channel axis and int64 labels."""
    out = {
        split: (check_images(x, f"{name} {split}"), check_labels(y, f"{name} {split}"))
        for split, (x, y) in raw.items()
    }
    return out, name, int(max(int(y.max()) for _, y in out.values())) + 1, ()


def stratified_split(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Splits off ``fraction`` of each class, deterministically for a given seed.

    Both parts keep the original order of their rows.
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        n_held = int(round(fraction * len(rows)))
        held[rng.choice(rows, size=n_held, replace=False)] = True
    return (images[~held], labels[~held]), (images[held], labels[held])


def _checksum(n_classes: int, *splits: Split) -> str:
    """sha256 of images and labels as stored; labels hashed as uint8 when they fit.

    uint8 labels keep the checksums (and so the cached models) of the MNIST sources
    from before labels became int64; adding the channel axis leaves the bytes unchanged.
    """
    label_dtype = np.uint8 if n_classes <= 256 else np.int64
    digest = hashlib.sha256()
    for images, labels in splits:
        digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels.astype(label_dtype, copy=False)).tobytes())
    return digest.hexdigest()


def normalize(images: np.ndarray) -> np.ndarray:
    """Images -> the model's float32 ``(n, H, W, C)`` input: uint8 divided by 255 (as the
    notebook), floats kept as given.

    ``(n, H, W)`` images get a channel axis.
    """
    images = images[..., None] if images.ndim == 3 else images
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def train_pipeline(split: Split, batch_size: int, seed: int):
    """The notebook's training pipeline: map, cache, full shuffle, batch, prefetch.

    Integer labels are the targets; float ``labels`` rows (e.g. a label packed with a
    teacher's outputs for distillation) pass through as they are.
    """
    import tensorflow as tf

    images, labels = split
    targets = labels if labels.dtype.kind == "f" else labels.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((_four_d(images), targets))
    ds = ds.map(_normalize_tf, num_parallel_calls=tf.data.AUTOTUNE).cache()
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_pipeline(split: Split, batch_size: int):
    """The notebook's evaluation pipeline: map, batch, cache, prefetch."""
    import tensorflow as tf

    images, labels = split
    ds = tf.data.Dataset.from_tensor_slices((_four_d(images), labels.astype(np.int64)))
    ds = ds.map(_normalize_tf, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)


def _four_d(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


def _normalize_tf(image, label):
    import tensorflow as tf

    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0, label
    return tf.cast(image, tf.float32), label


def _tfds_data_dir() -> Path:
    return Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))


def network_reachable(host: tuple[str, int] = TFDS_HOST, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Raises the ``absl`` logger (tensorflow-datasets' warnings) to ERROR for the block."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tfds_mocked() -> bool:
    """True inside ``tfds.testing.mock_data``, which replaces ``download_and_prepare``."""
    from tensorflow_datasets.core import dataset_builder

    return (
        getattr(dataset_builder.DatasetBuilder.download_and_prepare, "__name__", "") != "download_and_prepare"
    )


def _load_tfds(name: str) -> tuple[dict[str, Split], str, int, tuple[str, ...]]:
    """A tensorflow-datasets image classification dataset: ``train`` and ``test`` as arrays."""
    import tensorflow_datasets as tfds

    try:
        with _quiet_absl():  # "Variant folder ... has no dataset_info.json" before every download
            builder = tfds.builder(name, data_dir=str(_tfds_data_dir()))
            prepared = builder.is_prepared()
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(
            "Unknown tensorflow-datasets dataset. Expected a registered image classification "
            f"name such as mnist, fashion_mnist, cifar10 or emnist/digits, or {SAMPLE_NAME}. "
            f"Received: data.dataset={name!r}"
        ) from None
    except Exception as exc:  # tfds raises many types; the user needs one line
        raise DataError(f"tensorflow-datasets could not open {name!r}: {exc}".splitlines()[0]) from exc
    label_key = _image_classification_keys(builder, name)
    if not prepared and not _tfds_mocked() and not network_reachable():
        raise DataError(
            f"Dataset {name!r} is not prepared in {_tfds_data_dir()} and the network is unreachable. "
            f"Use --data-file FILE.npz, --data-dir DIR (IDX files or an image folder) "
            f"or --dataset {SAMPLE_NAME} (bundled, offline)."
        )
    try:
        builder.download_and_prepare()
        available = set(builder.info.splits.keys())
        if available and not {"train", "test"} <= available:
            raise DataError(
                f"Dataset {name!r} lacks a train or test split. Expected train and test. "
                f"Received: {', '.join(sorted(available))}"
            )
        raw = {split: _tfds_arrays(builder, split) for split in ("train", "test")}
    except DataError:
        raise
    except Exception as exc:  # tfds raises many types; the user needs one line
        raise DataError(f"tensorflow-datasets could not load {name!r}: {exc}".splitlines()[0]) from exc
    label = builder.info.features[label_key]
    return raw, name, int(label.num_classes), tuple(str(n) for n in label.names)


def _image_classification_keys(builder, name: str) -> str:
    """The label feature's name; a DataError unless fixed-size uint8 images and class labels."""
    import tensorflow_datasets as tfds

    keys = builder.info.supervised_keys
    features = builder.info.features
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        raise DataError(
            f"Dataset {name!r} is not an image classification dataset. Expected "
            f"supervised keys (image, label). Received: {keys!r}"
        )
    image, label = features[keys[0]], features[keys[1]]
    if not isinstance(image, tfds.features.Image) or not isinstance(label, tfds.features.ClassLabel):
        raise DataError(
            f"Dataset {name!r} is not an image classification dataset. Expected an Image "
            f"and a ClassLabel feature. Received: {type(image).__name__} {keys[0]!r}, "
            f"{type(label).__name__} {keys[1]!r}"
        )
    if None in image.shape:
        raise DataError(
            f"Dataset {name!r} has images of varying size. Expected fixed-size images. "
            f"Received: shape {image.shape}"
        )
    if np.dtype(getattr(image, "np_dtype", np.uint8)) != np.uint8:
        raise DataError(
            f"Dataset {name!r} has {image.np_dtype} images. Expected uint8 images. "
            f"Received: dtype {image.np_dtype}"
        )
    return keys[1]


def _tfds_arrays(builder, split: str) -> Split:
    """One split as ``(uint8 (n, H, W, C), int64 (n,))``, read in batches."""
    import tensorflow_datasets as tfds

    batches = tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True, batch_size=TFDS_BATCH))
    images, labels = zip(*batches)
    return np.concatenate(images).astype(np.uint8, copy=False), np.concatenate(labels).astype(np.int64)
