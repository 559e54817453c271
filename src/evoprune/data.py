"""Datasets: tensorflow-datasets, an IDX directory or the bundled sample, split three ways."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from evoprune.config import DataConfig
from evoprune.errors import DataError
from evoprune.idx import load_idx_dir

SAMPLE_NAME = "mnist-sample"
TFDS_HOST = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_S = 4.0

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Images (uint8, ``(n, 28, 28)``) and labels for train, validation and test.

    Attributes:
        name: what was loaded (``mnist``, ``mnist-sample`` or ``idx:<dir>``).
        train: the training split (validation rows removed).
        validation: the validation split carved from train (may be empty).
        test: the test split, used for reporting only unless ``fitness_split='test'``.
        checksum: sha256 of all arrays: keys the model cache and is recorded in summaries.
    """

    name: str
    train: Split
    validation: Split
    test: Split
    checksum: str

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

    Order of sources: ``cfg.data_dir`` when set, else the bundled sample for
    ``mnist-sample``, else ``$EVOPRUNE_DATA_DIR`` when set, else tensorflow-datasets.

    Raises:
        DataError: files are missing or corrupt, or tensorflow-datasets has no local copy
            and no network (detected within seconds, not after minutes of retries).
    """
    data_dir = cfg.data_dir or ("" if cfg.dataset == SAMPLE_NAME else os.environ.get("EVOPRUNE_DATA_DIR", ""))
    if data_dir:
        raw, name = load_idx_dir(Path(data_dir)), f"idx:{Path(data_dir).resolve()}"
    elif cfg.dataset == SAMPLE_NAME:
        raw, name = load_idx_dir(sample_dir()), SAMPLE_NAME
    else:
        raw, name = _load_tfds(cfg.dataset), cfg.dataset
    train, validation = stratified_split(*raw["train"], cfg.validation_fraction, cfg.split_seed)
    return Dataset(name, train, validation, raw["test"], _checksum(train, validation, raw["test"]))


def stratified_split(images: np.ndarray, labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[Split, Split]:
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


def _checksum(*splits: Split) -> str:
    digest = hashlib.sha256()
    for images, labels in splits:
        digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 28, 28)`` -> float32 ``(n, 28, 28, 1)`` in [0, 1], as the notebook does."""
    return (images.astype(np.float32) / np.float32(255.0))[..., None]


def train_pipeline(split: Split, batch_size: int, seed: int):
    """The notebook's training pipeline: map, cache, full shuffle, batch, prefetch."""
    import tensorflow as tf

    images, labels = split
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int64)))
    ds = ds.map(_normalize_tf, num_parallel_calls=tf.data.AUTOTUNE).cache()
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_pipeline(split: Split, batch_size: int):
    """The notebook's evaluation pipeline: map, batch, cache, prefetch."""
    import tensorflow as tf

    images, labels = split
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int64)))
    ds = ds.map(_normalize_tf, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)


def _normalize_tf(image, label):
    import tensorflow as tf

    return tf.cast(image, tf.float32) / 255.0, label


def _tfds_data_dir() -> Path:
    return Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))


def _locally_prepared(name: str) -> bool:
    root = _tfds_data_dir() / name
    return root.is_dir() and any(root.glob("*/dataset_info.json"))


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


def _load_tfds(name: str) -> dict[str, Split]:
    if not _locally_prepared(name) and not network_reachable():
        raise DataError(
            f"Dataset {name!r} is not prepared in {_tfds_data_dir()} and the network is unreachable. "
            f"Use --data-dir DIR (MNIST IDX files) or --dataset {SAMPLE_NAME} (bundled, offline)."
        )
    import tensorflow_datasets as tfds

    try:
        splits = tfds.as_numpy(
            tfds.load(name, split=["train", "test"], as_supervised=True, batch_size=-1)
        )
    except Exception as exc:  # tfds raises many types; the user needs one line
        raise DataError(f"tensorflow-datasets could not load {name!r}: {exc}".splitlines()[0]) from exc
    (x_train, y_train), (x_test, y_test) = splits
    return {
        "train": (x_train.reshape(x_train.shape[:3]), y_train.astype(np.uint8)),
        "test": (x_test.reshape(x_test.shape[:3]), y_test.astype(np.uint8)),
    }
