"""Models: the built-in architectures, training, the on-disk cache and safe loading of model files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from evoprune.config import ModelConfig
from evoprune.config.checks import KERAS_ONLY
from evoprune.data.dataset import Dataset, eval_pipeline, train_pipeline
from evoprune.errors import ModelError, plural
from evoprune.io import file_lock
from evoprune.models.architectures import build, check_input
from evoprune.models.refused import lambda_note, refused
from evoprune.models.target import PROBABILITY_OUTPUTS, activation_name, check_classifier
from evoprune.models.threads import size_thread_pools
from evoprune.seeding import seed_everything


@dataclass(frozen=True)
class TrainedModel:
    """A trained Keras model and where it came from.

    Attributes:
        model: the compiled Keras model.
        path: its ``.keras`` file in the cache (or the user's model file); ``None`` for a
            model given in memory.
        cached: True when loaded from disk instead of trained now.
        train_time_s: seconds spent training (0 when loaded).
    """

    model: object
    path: Path | None
    cached: bool
    train_time_s: float


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with stderr silenced (its C++ start-up lines bypass all log levels)
    and sizes the thread pools to the usable cores (:func:`size_thread_pools`).

    An import that fails is retried with stderr open so its error is visible.
    """
    _quiet_retracing()
    if "tensorflow" in sys.modules:
        if not _SIZED:
            _SIZED.append(size_thread_pools())
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    except Exception:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import tensorflow  # noqa: F401,F811

    _SIZED.append(size_thread_pools())


_SIZED: list[int] = []  # the pools' size, once sized in this process


class _NoRetracingWarning(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing".

    A run predicts with one new Keras model per retrained point (its own compiled function,
    traced once, as it must be); TensorFlow counts those traces as if one function retraced
    and prints a page of advice that does not apply, in the middle of the progress bars.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarning) for f in logger.filters):
        logger.addFilter(_NoRetracingWarning())


def build_model(
    architecture: str = "paper-cnn",
    input_shape: tuple[int, ...] = (28, 28, 1),
    n_classes: int = 10,
    learning_rate: float = 0.005,
):
    """Builds and compiles a built-in architecture (see :mod:`evoprune.models.architectures`)."""

    model = build(architecture, tuple(input_shape), n_classes)
    compile_model(model, learning_rate)
    return model


def compile_model(model, learning_rate: float = 0.005, from_logits: bool | None = None) -> None:
    """Adam, sparse categorical cross-entropy and accuracy.

    The loss reads logits unless the model's output layer gives probabilities (softmax or
    sigmoid; ``from_logits`` decided from the model when not given).
    """
    import keras

    if from_logits is None:
        from_logits = activation_name(model.layers[-1]) not in PROBABILITY_OUTPUTS
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def cache_key(dataset: Dataset, cfg: ModelConfig, seed: int) -> str:
    """Hash of everything that determines the trained weights."""
    import keras

    spec = {
        "dataset": dataset.checksum,
        "architecture": cfg.architecture,
        "input_shape": list(data_shape(dataset)),
        "n_classes": n_classes(dataset),
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "seed": seed,
        "keras": keras.__version__,
    }
    if cfg.lr_schedule != "constant":  # keys of models cached before the option stay valid
        spec["lr_schedule"] = cfg.lr_schedule
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def cache_dir(cfg: ModelConfig) -> Path:
    """``model.cache_dir``, else ``$EVOPRUNE_CACHE_DIR``, else ``~/.cache/evoprune``."""
    default = os.environ.get("EVOPRUNE_CACHE_DIR") or Path.home() / ".cache" / "evoprune"
    return Path(cfg.cache_dir or default)


# (epoch done, epochs in all, Keras' logs of that epoch: loss, accuracy)
EpochCallback = Callable[[int, int, dict], None]


def epoch_callback(on_epoch: EpochCallback, epochs: int):
    """A Keras callback that calls ``on_epoch(epoch, epochs, logs)`` after every epoch (1-based)."""
    import keras

    return keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, epochs, dict(logs or {}))
    )


def train(
    dataset: Dataset, cfg: ModelConfig, seed: int, verbose: int = 0, on_epoch: EpochCallback | None = None
):
    """Trains the network on ``dataset.train`` with the notebook's settings, seeded.

    Args:
        on_epoch: called after every epoch (progress bars); it does not change the weights.
    """
    seed_everything(seed)
    model = build_model(cfg.architecture, data_shape(dataset), n_classes(dataset), cfg.learning_rate)
    if cfg.lr_schedule == "cosine":
        import math

        import keras

        steps = cfg.epochs * math.ceil(len(dataset.train[1]) / cfg.batch_size)
        compile_model(model, keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps))
    callbacks = [epoch_callback(on_epoch, cfg.epochs)] if on_epoch is not None else []
    model.fit(
        train_pipeline(dataset.train, cfg.batch_size, seed),
        epochs=cfg.epochs,
        shuffle=False,  # the pipeline already shuffles, seeded
        verbose=verbose,
        callbacks=callbacks,
    )
    return model


def load_or_train(
    dataset: Dataset,
    cfg: ModelConfig,
    seed: int,
    verbose: int = 0,
    on_epoch: EpochCallback | None = None,
) -> TrainedModel:
    """Returns the user's model file, else the cached model, else trains and caches one.

    ``on_epoch`` reports the epochs of a model trained now (never called for a loaded one).

    A cache file that does not load or holds non-finite weights is retrained and replaced.
    A lock file beside the cache entry serializes processes: of two processes asking for
    the same uncached model one trains and saves it, the other waits and loads it.
    """
    if cfg.model_file:
        path = Path(cfg.model_file)
        model = load_model_file(path)
        check_fits(model, dataset, str(path))
        return TrainedModel(model, path, True, 0.0)

    check_input(cfg.architecture, data_shape(dataset))
    path = cache_dir(cfg) / f"{cfg.architecture}-{cache_key(dataset, cfg, seed)}.keras"
    with file_lock(path.with_name(f".{path.name}.lock")):  # one process trains, others wait, load
        if path.exists():
            try:
                return TrainedModel(load_model_file(path), path, True, 0.0)
            except ModelError:
                pass  # corrupt cache entry: retrain below and overwrite it
        start = time.perf_counter()
        model = train(dataset, cfg, seed, verbose=verbose, on_epoch=on_epoch)
        elapsed = time.perf_counter() - start
        save_model(model, path)
        return TrainedModel(model, path, False, elapsed)


def save_model(model, path: Path) -> None:
    """Saves atomically: write a temporary ``.keras`` file, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def load_model_file(path: Path):
    """Loads a ``.keras`` model and checks it can be pruned (:func:`check_model`).

    Raises:
        ModelError: not a ``.keras`` file (``.h5`` is refused), non-finite weights, or no
            Dense layer to prune.
    """
    import keras

    if Path(path).suffix != ".keras":
        raise ModelError(f"Expected a .keras model file ({KERAS_ONLY}){lambda_note(path)}. Received: {path}")
    if not path.is_file():
        raise ModelError(f"Model file not found. Received: {path}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise refused(path, exc) from exc
    check_model(model, str(path))
    compile_model(model)
    return model


def check_model(model, source: str) -> None:
    """Checks a Keras model can be pruned: one input, class scores out, finite weights, a Dense layer.

    Raises:
        ModelError: naming ``source`` (a file, or ``the model given``).
    """
    import keras

    check_classifier(model, source)
    for weights in model.get_weights():
        if not np.all(np.isfinite(weights)):
            raise ModelError(f"Model has non-finite (NaN or inf) weights: {source}")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ModelError(f"Model has no Dense layer to prune: {source}")


def adopt_model(model, dataset: Dataset) -> TrainedModel:
    """A model given in memory, as a :class:`TrainedModel`: a checked, compiled copy.

    The caller's model is left as it was (its compile state and weights); the copy has
    the same weights, and no file (``path`` is ``None``).

    Raises:
        ModelError: see :func:`check_model` and :func:`check_fits`.
    """
    import keras

    source = "the model given"
    check_model(model, source)
    try:
        copy = keras.models.clone_model(model)
    except Exception as exc:  # subclassed models without get_config
        raise ModelError(
            f"Cannot copy the model given ({exc.__class__.__name__}: {exc}). Expected a Sequential or "
            "functional keras.Model".splitlines()[0]
        ) from exc
    copy.set_weights(model.get_weights())
    check_fits(copy, dataset, source)
    compile_model(copy)
    return TrainedModel(copy, None, True, 0.0)


def data_shape(dataset: Dataset) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the dataset's images."""
    return dataset.input_shape  # already ints


def n_classes(dataset: Dataset) -> int:
    """Number of classes of the dataset."""
    return int(dataset.n_classes)


def check_fits(model, dataset: Dataset, source: str) -> None:
    """Checks the model takes the dataset's images and scores its classes.

    Raises:
        ModelError: input shape or class count differ, naming both.
    """
    expected = tuple(model.inputs[0].shape[1:])
    shape = data_shape(dataset)
    if len(expected) == 2 and shape[2] == 1 and all(e is None or e == s for e, s in zip(expected, shape)):
        reshape = f" (then keras.layers.Reshape({shape[:2]}) if its layers need it)"
        raise ModelError(
            f"Model input shape {expected} has no channel axis: evoprune feeds images as "
            f"(height, width, channels), here {shape}. Build the model on "
            f"keras.Input({(*expected, 1)}){reshape if None not in expected else ''}. Received: {source}"
        )
    if len(expected) != 3 or any(e is not None and e != s for e, s in zip(expected, shape)):
        raise ModelError(
            f"Model input shape {expected} does not fit the data's images {shape}. "
            f"Received: {source} and dataset {dataset.name}"
        )
    classes, data_classes = model.outputs[0].shape[-1], n_classes(dataset)
    if classes != data_classes:
        raise ModelError(
            f"Model scores {plural(classes, 'class')} but the data has {data_classes}. "
            f"Received: {source} and dataset {dataset.name}"
        )


def accuracy(model, split, batch_size: int = 128) -> float:
    """Accuracy of ``model`` on a ``(images, labels)`` split (NaN when it is empty).

    The exact fraction of images whose argmax is the label, as the search's scorers report
    theirs (``model.evaluate`` accumulates it in float32: 0.8450000286 for 845 of 1,000).
    """
    if not len(split[1]):
        return float("nan")
    return float(correct(model, split, batch_size).mean())


def correct(model, split, batch_size: int = 1024) -> np.ndarray:
    """Per-image correctness (argmax of the outputs equals the label) on a ``(images, labels)`` split."""
    if not len(split[1]):
        return np.zeros(0, dtype=bool)
    outputs = model.predict(eval_pipeline(split, batch_size), verbose=0)
    return np.asarray(outputs).argmax(axis=-1) == np.asarray(split[1])


def correct_and_loss(model, split, from_logits: bool, batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Per-image correctness and the mean cross-entropy of the labels on a ``(images, labels)`` split.

    One prediction pass; ``from_logits`` says whether the outputs are logits or probabilities
    (clipped and renormalised, as Keras's ``SparseCategoricalCrossentropy`` does).
    The cross-entropy counts every image's confidence, not only its argmax, so it separates
    models whose accuracies tie.
    """
    if not len(split[1]):
        return np.zeros(0, dtype=bool), float("nan")
    outputs = np.asarray(model.predict(eval_pipeline(split, batch_size), verbose=0), dtype=np.float64)
    labels = np.asarray(split[1]).astype(np.int64)
    if not from_logits:  # as Keras does: clipped probabilities' logs, renormalised below
        outputs = np.log(np.clip(outputs, 1e-7, 1.0 - 1e-7))
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = float(-log_p[np.arange(len(labels)), labels].mean())
    return outputs.argmax(axis=-1) == labels, loss
