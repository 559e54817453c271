"""Why a model file is refused, as one line that says what was found and what to do.

Keras loads ``.keras`` files in safe mode: a ``Lambda`` layer (its Python code is stored in
the file) and a custom class that is not registered are refused. Legacy ``.h5`` files are
refused before loading (see :data:`~evoprune.config.checks.KERAS_ONLY`), and one with a
``Lambda`` layer says so too. The architecture is plain JSON (``config.json`` in a
``.keras`` zip, the ``model_config`` attribute of an ``.h5`` file), read here without
loading anything.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Iterator

from evoprune.errors import ModelError

REGISTER = (
    "a custom layer decorated with @keras.saving.register_keras_serializable() in code imported "
    "before loading (use evoprune.prune in Python after importing it)"
)
# Keras' words for a class or function it cannot find (.keras: "Could not locate", .h5: "Unknown")
UNKNOWN = re.compile(r"(?:Could not locate (?:class|function)|Unknown [a-z_ ]+?):? '([^']+)'")


def refused(path: Path, exc: BaseException) -> ModelError:
    """The error for a model file Keras did not load (``exc``: what Keras raised)."""
    lambdas = [name for kind, name in _layers(Path(path)) if kind == "Lambda"]
    if lambdas or "`Lambda` layer" in str(exc):
        name = f" ({lambdas[0]!r})" if lambdas else ""
        return ModelError(
            f"Model file has a Lambda layer{name}, which is refused: loading it would run Python code "
            f"stored in the file. Expected the model rebuilt without the Lambda, or {REGISTER}. "
            f"Received: {path}"
        )
    unknown = UNKNOWN.search(str(exc))
    if unknown is not None:
        return ModelError(
            f"Model file uses the custom object {unknown.group(1)!r}, which is not registered, so "
            f"Keras cannot rebuild it. Expected a model of built-in Keras layers, or {REGISTER}. "
            f"Received: {path}"
        )
    return ModelError(f"Not a loadable Keras model file: {path} ({exc.__class__.__name__})")


def lambda_note(path: Path) -> str:
    """``"; it also has a Lambda layer ..."`` for a file (a legacy ``.h5`` one) that has one, else ``""``.

    Saving such a model as ``.keras`` does not make it loadable: the note says so at once.
    """
    lambdas = [name for kind, name in _layers(Path(path)) if kind == "Lambda"]
    if not lambdas:
        return ""
    return (
        f"; it also has a Lambda layer ({lambdas[0]!r}), refused in any format: loading it would run "
        f"Python code stored in the file (rebuild the model without it, or use {REGISTER})"
    )


def _layers(path: Path) -> list[tuple[str, str]]:
    """``(class name, layer name)`` of every layer in the file's architecture (``[]``: unreadable)."""
    config = _architecture(path)
    return list(_walk(config)) if config is not None else []


def _architecture(path: Path) -> dict | None:
    """The model's architecture as JSON: ``config.json`` of a ``.keras`` zip, ``model_config`` of ``.h5``."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("model_config")
        return json.loads(text.decode() if isinstance(text, bytes) else text) if text else None
    except Exception:  # not a zip or HDF5 file, no architecture in it, damaged JSON
        return None


def _walk(node) -> Iterator[tuple[str, str]]:
    """Every ``{"class_name": ..., "config": {...}}`` entry of a Keras config, depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
            yield node["class_name"], str(node["config"].get("name", ""))
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
