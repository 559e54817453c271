"""Model artifacts: a pruned model written as .keras or sparse .tflite, measured for its sidecar."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from evoprune.errors import EvopruneError
from evoprune.io import atomic_write_bytes, nearest_existing
from evoprune.models.deploy import latency_ms, model_inputs, to_tflite
from evoprune.models.target import kernel_variable
from evoprune.models.training import compile_model, save_model

FORMATS = {"keras": ".keras", "tflite": ".tflite"}
SIDECAR_KEYS = (
    "nonzero",
    "compression",
    "stored_parameters",
    "bytes",
    "gzip_bytes",
    "unpruned_bytes",
    "unpruned_gzip_bytes",
    "test_accuracy",
    "run_test_accuracy",
    "latency_ms",
    "unpruned_latency_ms",
)


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip (level 9): a proxy for the size a sparse model ships at."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def sidecar_path(out: Path) -> Path:
    """``FILE.json`` beside the exported ``FILE``."""
    return out.with_name(out.name + ".json")


def check_output(out: Path, fmt: Optional[str]) -> str:
    """The export format (from ``fmt`` or the suffix); fails early on a bad or unwritable path.

    Raises:
        EvopruneError: an unknown format, a suffix that does not match it, or an output
            path that cannot be written.
    """
    if fmt is None:
        by_suffix = {suffix: name for name, suffix in FORMATS.items()}
        if out.suffix not in by_suffix:
            raise EvopruneError(
                f"Expected an output file ending in {' or '.join(sorted(by_suffix))} "
                f"(the format follows the suffix). Received: {out}"
            )
        fmt = by_suffix[out.suffix]
    if fmt not in FORMATS:
        raise EvopruneError(f"Expected the format keras or tflite. Received: {fmt}")
    if out.suffix != FORMATS[fmt]:
        raise EvopruneError(
            f"Expected an output file ending in {FORMATS[fmt]} for the format {fmt}. Received: {out}"
        )
    if out.is_dir():
        raise EvopruneError(f"Expected an output file, not a directory. Received: {out}")
    folder = nearest_existing(out.parent)
    if not folder.is_dir():
        raise EvopruneError(
            f"Cannot write the output file: {folder} is a file, not a directory. Received: {out}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EvopruneError(f"Cannot write the output file ({exc.strerror or exc}). Received: {out}") from exc
    return fmt


def compile_for_export(model) -> None:
    """Compiles as :func:`evoprune.models.training.compile_model` does (a loss that fits the output
    activation), at Adam's default rate, with the optimizer built: the saved file then
    loads without Keras' optimizer-mismatch warning.
    """

    compile_model(model, learning_rate=0.001)
    model.optimizer.build(model.trainable_variables)


def write_artifact(model, out: Path, fmt: str, image_shape: Optional[tuple[int, ...]] = None) -> None:
    """Writes ``model`` as ``.keras`` (compiled for export) or float32 ``.tflite`` (sparse where smaller;
    ``image_shape`` fixes a flexible input size, see :func:`~evoprune.models.deploy.to_tflite`)."""

    if fmt == "tflite":
        atomic_write_bytes(out, to_tflite(model, image_shape))
    else:
        compile_for_export(model)
        save_model(model, out)


def nonzero_count(model, names) -> int:
    """Nonzero weights of the kernels called ``names`` (``layer`` or ``layer/pointwise``) in ``model``."""
    return int(sum(np.count_nonzero(kernel_variable(model, name).numpy()) for name in names))


def measure(model, out: Path, fmt: str, test_image: np.ndarray, repeats: int) -> dict[str, Any]:

    write_artifact(model, out, fmt, tuple(model_inputs(test_image[None]).shape[1:]))
    return {
        "bytes": out.stat().st_size,
        "gzip_bytes": gzip_size(out),
        "latency_ms": latency_ms(out, test_image, repeats),
    }
