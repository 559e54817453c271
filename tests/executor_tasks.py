"""Tiny task functions for the executor tests (no TensorFlow): dict in, dict out."""

from __future__ import annotations

import os
import time
from pathlib import Path


def square(spec: dict) -> dict:
    """Returns ``x**2`` and the worker's pid."""
    return {"key": spec["key"], "value": spec["x"] ** 2, "pid": os.getpid()}


def slow_square(spec: dict) -> dict:
    """Like :func:`square` after sleeping ``spec["sleep"]`` seconds (default 1)."""
    time.sleep(spec.get("sleep", 1.0))
    return square(spec)


def die_once(spec: dict) -> dict:
    """Kills its own worker process the first time (marker file absent), then squares.

    Specs without ``"marker"`` behave like :func:`slow_square`.
    """
    marker = spec.get("marker")
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(spec.get("sleep_before_death", 0.3))
        os._exit(1)
    return slow_square(spec)


def always_die(spec: dict) -> dict:
    """Kills its worker process every time."""
    os._exit(1)


def gated_square(spec: dict) -> dict:
    """Squares once ``spec["gate"]`` exists: bounds the work, not the time.

    Writes its pid to ``{spec["dir"]}/started-{key}`` first, and ``finished-{key}`` last;
    gives up waiting after ``spec["max_wait"]`` seconds (default 120).
    """
    folder, key = Path(spec["dir"]), spec["key"]
    (folder / f"started-{key}").write_text(str(os.getpid()))
    deadline = time.monotonic() + spec.get("max_wait", 120.0)
    while not Path(spec["gate"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    (folder / f"finished-{key}").write_text(str(os.getpid()))
    return square(spec)


def fail_on_bad(spec: dict) -> dict:
    """Raises ValueError for specs with ``"bad": True``; otherwise like :func:`gated_square`
    (specs with a ``"gate"``) or :func:`slow_square`."""
    if spec.get("bad"):
        raise ValueError(f"bad spec x={spec['x']}")
    return gated_square(spec) if "gate" in spec else slow_square(spec)
