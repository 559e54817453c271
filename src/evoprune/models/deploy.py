"""Deployable artifacts: sparse TFLite conversion, accuracy and latency of .keras/.tflite files."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from evoprune.config.checks import KERAS_ONLY
from evoprune.data.dataset import normalize
from evoprune.errors import ModelError, plural, require_extra
from evoprune.models.refused import lambda_note, refused
from evoprune.models.target import check_classifier, model_input

Artifact = Union[str, Path, bytes]
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of a .tflite file
BATCH = 500


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Silences stdout and stderr at the file-descriptor level (the converter's C++ and prints)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):  # also when sys.stdout is not fd 1 (pytest)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def model_inputs(images: np.ndarray) -> np.ndarray:
    """Images, ``(n, H, W)`` or ``(n, H, W, C)``, uint8 (scaled by 1/255) or float (kept), as the
    model's float32 input."""

    return normalize(images)


def to_tflite(model, image_shape: Optional[tuple[int, ...]] = None) -> bytes:
    """A float32 TFLite flatbuffer of ``model``; kernels sparse enough are stored sparse.

    ``image_shape``: ``(H, W, C)`` fixed in the flatbuffer where the model takes any size
    (``keras.Input((None, None, 1))``): LiteRT cannot resize a sparse model's input.

    Uses ``TFLiteConverter.from_keras_model`` with ``Optimize.EXPERIMENTAL_SPARSITY``
    (no quantization), and the interpreter densifies the sparse tensors when it loads. The
    converter can encode a tensor sparsely where that is larger (a few small kernels a third
    pruned, measured): a model with zero weights is also converted densely, and the
    smaller flatbuffer is kept.
    """
    import tensorflow as tf

    fixed = None  # the model called on images of image_shape, where its own input size is open
    if image_shape is not None and any(d is None for d in model.inputs[0].shape[1:]):
        spec = tf.TensorSpec([None, *image_shape], model.inputs[0].dtype)
        call = tf.function(lambda x: model(model_input(model, x), training=False), input_signature=[spec])
        fixed = call.get_concrete_function()

    def convert(sparse: bool) -> bytes:
        converter = (
            tf.lite.TFLiteConverter.from_concrete_functions([fixed], model)
            if fixed is not None
            else tf.lite.TFLiteConverter.from_keras_model(model)
        )
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        with quiet_fds():
            return bytes(converter.convert())

    sparse = convert(True)
    if not any(np.any(w == 0) for w in model.get_weights() if w.ndim > 1):
        return sparse  # nothing to encode sparsely: the same as dense
    return min(sparse, convert(False), key=len)


def kind_of(path: Path) -> str:
    """``"tflite"`` or ``"keras"`` from the file's contents.

    Raises:
        ModelError: a missing file or one that is neither.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model file not found. Received: {path}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:8] == TFLITE_MAGIC:
        return "tflite"
    if zipfile.is_zipfile(path):
        return "keras"
    why = f" ({KERAS_ONLY}){lambda_note(path)}" if path.suffix.lower() in (".h5", ".hdf5") else ""
    raise ModelError(f"Expected a .keras or .tflite model file{why}. Received: {path}")


def load_keras(path: Path):
    """Loads a ``.keras`` file for inference (not compiled).

    Raises:
        ModelError: the file does not load as a Keras model.
    """
    import keras

    path = Path(path)
    if path.suffix == ".keras":
        return _load(keras, path, path)
    # the kind is read from the contents; Keras reads its zip only under the .keras suffix
    with tempfile.TemporaryDirectory(prefix="evoprune-", ignore_cleanup_errors=True) as tmp:
        named = Path(tmp) / "model.keras"
        try:
            named.symlink_to(path.resolve())
        except OSError:  # no symlinks here: a copy (an OSError of its own, such as a full disk, says so)
            shutil.copyfile(path, named)
        return _load(keras, named, path)


def _load(keras, path: Path, shown: Path):
    """``keras.models.load_model`` of ``path``; a refusal names ``shown``, the user's file."""
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise refused(shown, exc) from exc


def require_litert(what: str = "the .tflite format") -> None:
    """Refuses ``.tflite`` work (export, evaluation) early when LiteRT is not installed.

    Raises:
        MissingExtraError: the ``tflite`` extra is missing.
    """
    require_extra("tflite", what, "ai_edge_litert")


def input_signature(artifact: Artifact) -> tuple[int, ...]:
    """The input shape a ``.tflite`` declares, -1 where it takes any size (nothing allocated).

    Raises:
        ModelError: the flatbuffer does not load.
        MissingExtraError: the ``tflite`` extra is missing.
    """
    detail = _loaded(artifact, lambda runner: None).get_input_details()[0]
    return tuple(int(d) for d in detail["shape_signature"])


def interpreter(artifact: Artifact, batch: int = 1, image_shape: Optional[tuple[int, ...]] = None):
    """A LiteRT interpreter over a ``.tflite`` path or flatbuffer, input resized to ``batch``.

    ``image_shape``: the images' ``(H, W, C)``, for a model built with a flexible input
    size (``keras.Input((None, None, 1))``); the model's own input shape otherwise.

    Raises:
        ModelError: the flatbuffer does not load.
        MissingExtraError: the ``tflite`` extra is missing.
    """

    def allocate(runner) -> None:
        detail = runner.get_input_details()[0]
        shape = list(image_shape) if image_shape is not None else list(detail["shape"][1:])
        runner.resize_tensor_input(detail["index"], [batch, *shape])
        runner.allocate_tensors()

    return _loaded(artifact, allocate)


def _loaded(artifact: Artifact, setup):
    """A LiteRT interpreter over ``artifact`` after ``setup(interpreter)``; LiteRT's refusal,
    at load or in ``setup``, becomes a one-line ``ModelError``."""
    require_litert()
    from ai_edge_litert.interpreter import Interpreter

    content = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
    try:
        with quiet_fds():
            runner = Interpreter(model_content=content)
            setup(runner)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"Not a loadable TFLite model: {artifact if not isinstance(artifact, bytes) else 'bytes'} "
            f"({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})"
        ) from exc
    return runner


def _check_shape(expected, x: np.ndarray, where) -> None:
    """Refuses images the model does not take; a flexible dimension (None, or -1 in TFLite's
    signature) takes any size."""
    shown = tuple(None if d is None or int(d) < 0 else int(d) for d in expected)
    if len(shown) != x.ndim - 1 or any(d is not None and d != n for d, n in zip(shown, x.shape[1:])):
        raise ModelError(
            f"Expected data of shape {shown} for {where}. Received: images of shape {tuple(x.shape[1:])}"
        )


def tflite_predict(
    artifact: Artifact, x: np.ndarray, batch: int = BATCH, source: str = "this TFLite model"
) -> np.ndarray:
    """Outputs of a TFLite classifier on ``x`` (float32), ``batch`` rows per interpreter call.

    Raises:
        ModelError: not one ``(batch, classes)`` output, or ``x`` does not fit.
    """
    _check_shape(input_signature(artifact)[1:], x, source)
    runner = interpreter(artifact, batch, x.shape[1:])  # an open input size set to the images'
    details = runner.get_output_details()
    if len(details) != 1 or len(details[0]["shape"]) != 2:
        raise ModelError(
            f"Expected a classifier with one (batch, classes) output. Received: {source} "
            f"with outputs {[tuple(int(d) for d in o['shape']) for o in details]}"
        )
    inp, out = runner.get_input_details()[0], details[0]
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        padded = np.zeros((batch, *x.shape[1:]), np.float32)
        padded[: len(chunk)] = chunk
        runner.set_tensor(inp["index"], padded)
        runner.invoke()
        outputs.append(runner.get_tensor(out["index"])[: len(chunk)].copy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def keras_predict(model, x: np.ndarray, batch: int = BATCH, source: str = "this Keras model") -> np.ndarray:
    """Outputs of a Keras classifier on ``x``.

    Raises:
        ModelError: not one input and one ``(batch, classes)`` output, or ``x`` does not fit.
    """
    check_classifier(model, source)
    _check_shape(model.inputs[0].shape[1:], x, source)
    return np.asarray(model.predict(model_input(model, x), batch_size=batch, verbose=0))


def predictions(artifact: Artifact, images: np.ndarray) -> np.ndarray:
    """Predicted classes of a ``.keras``/``.tflite`` file (or flatbuffer bytes) on uint8 images."""
    x = model_inputs(images)
    if isinstance(artifact, bytes) or kind_of(Path(artifact)) == "tflite":
        return tflite_predict(artifact, x).argmax(axis=1)
    return keras_predict(load_keras(Path(artifact)), x).argmax(axis=1)


def tflite_accuracy(artifact: Artifact, split: tuple[np.ndarray, np.ndarray]) -> float:
    """Accuracy of a TFLite model (path or bytes) on a ``(images, labels)`` split, by LiteRT."""
    images, labels = split
    return float(np.mean(tflite_predict(artifact, model_inputs(images)).argmax(axis=1) == labels))


def keras_accuracy(model, split: tuple[np.ndarray, np.ndarray]) -> float:
    """Accuracy (argmax of the outputs) of a Keras model or ``.keras`` path on a split."""
    if isinstance(model, (str, Path)):
        model = load_keras(Path(model))
    images, labels = split
    return float(np.mean(keras_predict(model, model_inputs(images)).argmax(axis=1) == labels))


def model_accuracy(model, split: tuple[np.ndarray, np.ndarray]) -> float:
    """Accuracy of a ``.keras`` or ``.tflite`` file (kind read from the contents), or of a
    ``keras.Model`` in memory, on an ``(images, labels)`` split.

    Raises:
        ModelError: no images, not a classifier of one ``(batch, classes)`` output, fewer
            classes than the labels, or images that do not fit.
    """
    images, labels = split
    if len(labels) == 0:
        raise ModelError("Expected a split with images. Received: 0 images")
    x = model_inputs(images)
    file = isinstance(model, (str, os.PathLike))
    source = str(model) if file else "the model given"
    if not file:
        scores = keras_predict(model, x, source=source)
    elif kind_of(Path(model)) == "tflite":
        scores = tflite_predict(Path(model), x, source=source)
    else:
        scores = keras_predict(load_keras(Path(model)), x, source=source)
    if int(np.max(labels)) >= scores.shape[1]:
        raise ModelError(
            f"Model scores {plural(scores.shape[1], 'class')} but the labels go up to {int(np.max(labels))}. "
            f"Received: {source}"
        )
    return float(np.mean(scores.argmax(axis=1) == labels))


def latency_ms(path: Path, image: np.ndarray, repeats: int = 100, warmup: int = 10) -> float:
    """Median milliseconds of one batch-1 prediction of a ``.keras`` or ``.tflite`` file.

    TFLite: one ``invoke`` of LiteRT's interpreter (input already set). Keras: one call of
    the model wrapped in ``tf.function`` (traced once in the warm-up).
    """
    x = model_inputs(image[None])
    if kind_of(path) == "tflite":
        runner = interpreter(path, 1, x.shape[1:])
        runner.set_tensor(runner.get_input_details()[0]["index"], x)
        call = runner.invoke
    else:
        import tensorflow as tf

        model = load_keras(Path(path))
        fn = tf.function(lambda t: model(model_input(model, t), training=False))
        tensor = tf.constant(x)

        def call() -> None:
            fn(tensor).numpy()

    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0
