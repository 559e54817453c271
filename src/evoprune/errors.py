"""User-facing error types: each carries one clear line for the CLI (and :func:`plural` for its counts)."""

import difflib
import importlib.util
import math
import numbers
import re


class EvopruneError(Exception):
    """An error caused by user input; the CLI prints its message on one line.

    A message that lists choices (``Expected one of: a, b. Received: x``) gets "Did you
    mean" its nearest choice, from Python as from the CLI.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            first, newline, rest = args[0].partition("\n")
            args = (suggested(first) + newline + rest,)
        super().__init__(*args)


class ConfigError(EvopruneError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(EvopruneError):
    """A dataset cannot be found, read or parsed."""


class ModelError(EvopruneError):
    """A model file is unusable (not Keras, NaN weights, missing layer)."""


class CheckpointError(EvopruneError):
    """A checkpoint that is missing, damaged, foreign or of another run."""


class SearchInterrupted(EvopruneError):
    """The user asked to stop; the work done so far is checkpointed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, ``docker stop``, Kubernetes, systemd), raised in the main thread so that
    worker pools, Dask clusters and locks are cleaned up as after a Ctrl-C."""


class MissingExtraError(EvopruneError):
    """An optional dependency is not installed: the message names the extra that brings it."""


def installed(module: str) -> bool:
    """True when ``module`` (a top-level name) can be imported; it is not imported here."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken package, or one blocked in sys.modules
        return False


def require_extra(extra: str, what: str, *modules: str) -> None:
    """Refuses, before any work, a feature whose optional dependencies are missing.

    Args:
        extra: the extra of ``pyproject.toml`` that installs them (``dask``, ``tflite``, ``peer``).
        what: the feature, to start the message ("the Dask executor").
        modules: the top-level modules it imports.

    Raises:
        MissingExtraError: one line, e.g. "the Dask executor needs the 'dask' extra:
            pip install 'evoprune[dask]'".
    """
    missing = [m for m in modules if not installed(m)]
    if missing:
        raise MissingExtraError(
            f"{what} needs the '{extra}' extra: pip install 'evoprune[{extra}]' "
            f"(missing module{'s' if len(missing) > 1 else ''}: {', '.join(missing)})"
        )


def compression_text(compression) -> str:
    """``12.34x`` for messages; a model with no weight left (infinite, or None in JSON) is "all pruned"."""
    if compression is None or not math.isfinite(float(compression)):
        return "all pruned"
    return f"{float(compression):.2f}x"


def step_text(done: int, total: int) -> str:
    """A progress count: ``3/20``, or ``3`` when the total is 0 (not known)."""
    return f"{done}/{total}" if total else f"{done}"


def plural(count: float, noun: str, many: str | None = None) -> str:
    """A count and its noun for one-line messages: ``1 point``, ``2 points``, ``1,500 weights``, ``1 class``.

    Args:
        many: the plural when it is not ``noun`` + ``s`` (or ``es`` after s, x, sh; "epoch" is "epochs").
    """
    text = (
        f"{count:,}" if isinstance(count, numbers.Integral) and not isinstance(count, bool) else f"{count:g}"
    )
    if count == 1:
        return f"{text} {noun}"
    return f"{text} {many or (noun + 'es' if noun.endswith(('s', 'x', 'sh')) else noun + 's')}"


def nearest(given: str, choices: list[str]) -> str | None:
    """The choice ``given`` most likely meant: itself, the one choice equal but for case (NSGA2),
    else a close spelling; None when nothing is close."""
    if given in choices:
        return given
    same = [c for c in choices if c.lower() == given.lower()]
    if len(same) == 1:
        return same[0]
    near = difflib.get_close_matches(given, choices, n=1, cutoff=0.7)
    return near[0] if near else None


def suggested(line: str) -> str:
    """An ``Expected one of: a, b, c. Received: ...x`` line with "Did you mean" its nearest choice.

    The value is the last word of ``Received:`` (a key like ``search.popluation`` is matched
    by its last part); nothing is added when no choice is close or the line has a suggestion.
    """
    found = re.search(r"Expected one of: (.+?)\. Received: (.+)$", line)
    if found is None or "Did you mean" in line:
        return line
    choices = [c.strip().strip("'\"") for c in found.group(1).split(",")]
    given = found.group(2).split()[-1].strip("'\"")
    given = given.split("=", 1)[1] if "=" in given else given.split(".")[-1]  # key=value: the value
    given = given.strip("'\"")
    near = nearest(given, choices)
    if near is None or near == given:
        return line
    cut = found.start(2) - len("Received: ")
    return f"{line[:cut]}Did you mean {near!r}? {line[cut:]}"
