"""Checkpoints: the loop's state after a generation, data only (no pickle), and resume."""

from __future__ import annotations

import io
import json
import signal
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from deap import tools

from evoprune.config import Config
from evoprune.errors import CheckpointError, SearchInterrupted  # noqa: F401 (re-exported)
from evoprune.io import atomic_write_bytes
from evoprune.scoring.evaluate import Evaluation
from evoprune.search.algorithms import STRATEGIES, LoopState, individual_class
from evoprune.seeding import SearchRandom

KIND = "evoprune-checkpoint"
FORMAT = 2
MAX_BYTES = 4 << 30  # uncompressed members; a larger file is not one of ours
LOGBOOK_KEYS = (
    "gen",
    "nevals",
    "evaluations",
    "fitness_max",
    "fitness_avg",
    "fitness_min",
    "accuracy_max",
    "nonzero_min",
    "best_genome",
    "time_s",
)


def save(
    path: Path,
    state: LoopState,
    problem,
    rng: SearchRandom,
    config: Config,
    search_time_s: float,
    identity: dict[str, str] | None = None,
) -> None:
    """Writes the loop state, the evaluation memo and the search's generators as one ``.npz``.

    The generators are the two of :class:`~evoprune.seeding.SearchRandom`, all the
    randomness a search has.

    Everything is numbers and one UTF-8 JSON header (``meta``); one file written
    atomically, so a kill at any moment leaves the previous checkpoint or this one.
    """
    memo = problem.state_dict()
    genomes = list(memo["by_genome"])
    evals = [memo["by_genome"][g] for g in genomes]
    mask_of = {id(ev): key for key, ev in memo["by_mask"].items()}
    mask_keys: list[Any] = [mask_of.get(id(ev)) for ev in evals]
    if any(k is None for k in mask_keys):  # not the same objects: ask the encoding
        mask_keys = [problem.encoding.mask_key(g) for g in genomes]
    py_version, py_keys, gauss_next = rng.python.getstate()
    _, np_keys, np_pos, has_gauss, cached_gaussian = rng.numpy.get_state()
    pop = state.population
    meta = {
        "kind": KIND,
        "format": FORMAT,
        "config": plain(config.to_dict()),
        "identity": dict(identity or {}),
        "generation": state.generation,
        "search_time_s": float(search_time_s),
        "evaluations": memo["evaluations"],
        "model_evaluations": memo["model_evaluations"],
        "logbook": [plain(dict(row)) for row in state.logbook],
        "mask_key": "int" if mask_keys and isinstance(mask_keys[0], int) else "bytes",
        "python_random": {"version": py_version, "gauss_next": gauss_next},
        "numpy_random": {
            "pos": int(np_pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    arrays: dict[str, Any] = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        "genomes": _matrix(genomes, np.float64),
        "accuracy": np.array([ev.accuracy for ev in evals], dtype=np.float64),
        "nonzero": np.array([ev.nonzero for ev in evals], dtype=np.int64),
        "correct": np.array([ev.correct for ev in evals], dtype=np.int64),
        "mask_keys": (
            np.array(mask_keys, dtype=np.int64)
            if meta["mask_key"] == "int"
            else _matrix([np.frombuffer(k, np.uint8) for k in mask_keys], np.uint8)
        ),
        "pop_genes": _matrix([list(ind) for ind in pop], np.float64),
        "pop_int": _matrix([[type(g) is int for g in ind] for ind in pop], np.bool_),
        "pop_fitness": _matrix([ind.fitness.values for ind in pop], np.float64),
        "pop_crowding": np.array(
            [getattr(ind.fitness, "crowding_dist", np.nan) for ind in pop], dtype=np.float64
        ),
        "python_random": np.array(py_keys, dtype=np.uint32),
        "numpy_random": np.asarray(np_keys, dtype=np.uint32),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _matrix(rows: list, dtype) -> np.ndarray:
    width = len(rows[0]) if len(rows) else 0
    return np.array(rows, dtype=dtype).reshape(len(rows), width)


def plain(value: Any) -> Any:
    """JSON-ready: tuples become lists, NumPy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def load(path: Path, config: Config, legacy: Path | None = None) -> dict[str, Any]:
    """Reads and validates a checkpoint written for ``config``; nothing in it can run code.

    Args:
        legacy: where an old pickle checkpoint of the same run would be (refused by name).

    Returns:
        The validated payload: ``meta`` (the JSON header) and the arrays.

    Raises:
        CheckpointError: missing, the old pickle format, damaged, foreign, or written for
            another configuration.
    """
    path = Path(path)
    if not path.is_file() and legacy is not None and Path(legacy).is_file():
        raise CheckpointError(
            f"Old checkpoint format ({Path(legacy).name}, a pickle that can run code) "
            f"is not loaded. Start the run again. Received: {legacy}"
        )
    if not path.is_file():
        raise CheckpointError(f"No checkpoint to resume from. Expected a file {path}")
    arrays = _read_arrays(path)
    try:
        meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Checkpoint header is not JSON: {path} ({exc.__class__.__name__})") from exc
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise CheckpointError(f"Not an evoprune checkpoint: {path}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"Checkpoint format not supported. Expected {FORMAT}. Received: "
            f"format={meta.get('format')!r} in {path}"
        )
    current = plain(config.to_dict())
    saved = saved_config(meta.get("config"), config)
    if saved != current:
        raise CheckpointError(
            f"Checkpoint in {path.parent} was written for another config: {config_difference(saved, current)}"
        )
    payload = {"meta": meta, **{k: v for k, v in arrays.items() if k != "meta"}}
    try:
        _validate(payload, config)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"Checkpoint is damaged: {path} ({exc})") from exc
    return payload


def read_data_npz(path: Path, what: str = "Checkpoint") -> dict[str, np.ndarray]:
    """The members of a data-only ``.npz`` file: a size check, then ``allow_pickle=False``.

    Raises:
        CheckpointError: ``what`` (the file's role, for the message) is not a zip archive,
            is larger than :data:`MAX_BYTES` uncompressed, or cannot be read as arrays.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{what} is not a data-only .npz archive: {path} ({exc.__class__.__name__})"
        ) from exc
    if size > MAX_BYTES:
        raise CheckpointError(f"{what} is implausibly large: {size:,} bytes uncompressed. Received: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:  # zip, header or dtype problems of a damaged file
        raise CheckpointError(f"{what} is unreadable: {path} ({exc.__class__.__name__})") from exc


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's members (:func:`read_data_npz`), checked to be the expected ones."""
    arrays = read_data_npz(path)
    expected = {
        "meta",
        "genomes",
        "accuracy",
        "nonzero",
        "correct",
        "mask_keys",
        "pop_genes",
        "pop_int",
        "pop_fitness",
        "pop_crowding",
        "python_random",
        "numpy_random",
    }
    if set(arrays) != expected:
        raise CheckpointError(f"Not an evoprune checkpoint (members {sorted(arrays)}): {path}")
    if arrays["meta"].dtype != np.uint8 or arrays["meta"].ndim != 1:
        raise CheckpointError(f"Not an evoprune checkpoint (bad header): {path}")
    return arrays


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _array(payload: dict, name: str, kind: str, ndim: int, rows: int | None = None) -> np.ndarray:
    a = payload[name]
    _expect(a.dtype.kind == kind and a.ndim == ndim, f"{name}: dtype {a.dtype}, shape {a.shape}")
    _expect(rows is None or a.shape[0] == rows, f"{name}: {a.shape[0]} rows, expected {rows}")
    return a


def _int(meta: dict, key: str, low: int, high: int) -> int:
    value = meta[key]
    _expect(type(value) is int and low <= value <= high, f"{key}={value!r}")
    return value


def _validate(payload: dict, config: Config) -> None:
    """Types, shapes and ranges of everything :func:`restore` uses."""
    meta, search = payload["meta"], config.search
    generation = _int(meta, "generation", 0, search.generations)
    n = _int(meta, "evaluations", 0, 1 << 62)
    _int(meta, "model_evaluations", 0, n)
    _expect(isinstance(meta["search_time_s"], float) and meta["search_time_s"] >= 0, "search_time_s")
    _expect(
        isinstance(meta["identity"], dict) and all(isinstance(v, str) for v in meta["identity"].values()),
        "identity",
    )
    genomes = _array(payload, "genomes", "f", 2, n)
    _expect(bool(np.isfinite(genomes).all()), "genomes: non-finite genes")
    accuracy = _array(payload, "accuracy", "f", 1, n)
    _expect(bool(((accuracy >= 0) & (accuracy <= 1)).all()), "accuracy outside 0..1")
    for name in ("nonzero", "correct"):
        _expect(bool((_array(payload, name, "i", 1, n) >= 0).all()), f"{name}: negative")
    _expect(meta["mask_key"] in ("int", "bytes"), "mask_key")
    keys = _array(
        payload,
        "mask_keys",
        "i" if meta["mask_key"] == "int" else "u",
        1 if meta["mask_key"] == "int" else 2,
        n,
    )
    _expect(
        len({k.tobytes() if keys.ndim == 2 else int(k) for k in keys}) == meta["model_evaluations"],
        "model_evaluations does not match the masks",
    )
    known = set(archive_genomes(payload))
    _expect(len(known) == n, "genomes repeat")
    p = search.population
    genes = _array(payload, "pop_genes", "f", 2, p)
    _expect(genes.shape[1] == genomes.shape[1], "pop_genes: genome length")
    _expect(_array(payload, "pop_int", "b", 2, p).shape == genes.shape, "pop_int: shape")
    objectives = STRATEGIES[search.algorithm].n_objectives
    fitness = _array(payload, "pop_fitness", "f", 2, p)
    _expect(fitness.shape[1] == objectives and bool(np.isfinite(fitness).all()), "pop_fitness")
    crowding = _array(payload, "pop_crowding", "f", 1, p)
    _expect(not bool((crowding < 0).any()), "pop_crowding: negative")
    _expect(all(tuple(float(x) for x in g) in known for g in genes), "population genome never evaluated")
    _validate_random(payload)
    rows = meta["logbook"]
    _expect(isinstance(rows, list) and len(rows) == generation + 1, "logbook: rows")
    for row in rows:
        _expect(isinstance(row, dict) and tuple(row) == LOGBOOK_KEYS, "logbook: columns")
        _expect(
            all(type(row[k]) in (int, float) for k in LOGBOOK_KEYS if k != "best_genome"), "logbook: values"
        )
        _expect(
            isinstance(row["best_genome"], list) and all(type(g) in (int, float) for g in row["best_genome"]),
            "logbook: best_genome",
        )


def _validate_random(payload: dict) -> None:
    meta = payload["meta"]
    py, npr = meta["python_random"], meta["numpy_random"]
    keys = _array(payload, "python_random", "u", 1)
    _expect(keys.shape == (625,) and int(keys[-1]) <= 624 and py["version"] == 3, "python_random")
    _expect(py["gauss_next"] is None or isinstance(py["gauss_next"], float), "python_random")
    _expect(_array(payload, "numpy_random", "u", 1).shape == (624,), "numpy_random")
    _expect(
        type(npr["pos"]) is int
        and 0 <= npr["pos"] <= 624
        and npr["has_gauss"] in (0, 1)
        and isinstance(npr["cached_gaussian"], float),
        "numpy_random",
    )


def check_identity(meta: dict, current: dict[str, str], where: Path) -> None:
    """Refuses data or a model other than the ones the run used, saying which differs.

    Raises:
        CheckpointError: the dataset checksum or the model file's SHA-256 differs.
    """
    saved = meta.get("identity", {}) if isinstance(meta, dict) else {}
    names = {
        "dataset_checksum": "dataset differs from the run's: checksum",
        "model_weights_sha256": "model differs from the run's: weights SHA-256",
    }
    for key, label in names.items():
        if key in saved and key in current and saved[key] != current[key]:
            raise CheckpointError(f"{label} {current[key]} here vs {saved[key]} in {where}")


def saved_config(saved: object, config: Config) -> dict:
    """A config saved with a run, keys it lacks at their defaults (a setting added since), to compare.

    A run started before a section gained a key resumes, as long as the run's config
    leaves that key at its default.
    """
    if not isinstance(saved, dict):
        return {}
    defaults = plain(config.defaults_dict())
    return {
        name: {**defaults.get(name, {}), **values} if isinstance(values, dict) else values
        for name, values in saved.items()
    } | {name: values for name, values in defaults.items() if name not in saved}


def config_difference(saved: dict, current: dict) -> str:
    """The first differing key, as ``section.key=saved there, current here``."""
    for section in sorted(set(saved) | set(current)):
        a_section, b_section = saved.get(section, {}), current.get(section, {})
        if not isinstance(a_section, dict) or not isinstance(b_section, dict):
            return f"[{section}]={a_section!r} there, {b_section!r} here"
        for key in sorted(set(a_section) | set(b_section)):
            a, b = plain(a_section.get(key)), plain(b_section.get(key))
            if a != b:
                return f"{section}.{key}={a!r} there, {b!r} here"
    return "no difference"


def archive_genomes(payload: dict) -> list[tuple]:
    """Every distinct genome evaluated, in evaluation order (rows of ``summary``'s eval_index)."""
    return [tuple(float(x) for x in row) for row in payload["genomes"]]


def restore(payload: dict, problem, rng: SearchRandom) -> LoopState:
    """Restores the memo and the search's generators; returns the loop state to resume from."""
    meta = payload["meta"]
    by_mask: dict[object, Evaluation] = {}
    by_genome: dict[tuple, Evaluation] = {}
    int_keys = meta["mask_key"] == "int"
    for genome, acc, nz, c, key in zip(
        archive_genomes(payload),
        payload["accuracy"],
        payload["nonzero"],
        payload["correct"],
        payload["mask_keys"],
    ):
        key = int(key) if int_keys else key.tobytes()
        by_genome[genome] = by_mask.setdefault(key, Evaluation(float(acc), int(nz), int(c)))
    problem.load_state_dict(
        {
            "evaluations": meta["evaluations"],
            "model_evaluations": meta["model_evaluations"],
            "by_genome": by_genome,
            "by_mask": by_mask,
        }
    )
    individual = individual_class(payload["pop_fitness"].shape[1])
    population = []
    for genes, ints, values, crowding in zip(
        payload["pop_genes"], payload["pop_int"], payload["pop_fitness"], payload["pop_crowding"]
    ):
        ind = individual([int(g) if i else float(g) for g, i in zip(genes, ints)])
        ind.fitness.values = tuple(float(v) for v in values)
        if not np.isnan(crowding):
            ind.fitness.crowding_dist = float(crowding)
        ind.evaluation = by_genome[tuple(float(g) for g in genes)]
        population.append(ind)
    logbook = tools.Logbook()
    for row in meta["logbook"]:
        logbook.record(**row)
    py = meta["python_random"]
    rng.python.setstate((py["version"], tuple(int(k) for k in payload["python_random"]), py["gauss_next"]))
    npr = meta["numpy_random"]
    rng.numpy.set_state(
        ("MT19937", payload["numpy_random"], npr["pos"], npr["has_gauss"], npr["cached_gaussian"])
    )
    return LoopState(meta["generation"], population, logbook)


class GracefulInterrupt:
    """Context manager: the first Ctrl-C sets a flag instead of raising mid-generation.

    :attr:`requested` tells the work that a stop was asked for; once it has saved what it
    completed (a generation's checkpoint, a fine-tuned point), :meth:`stop_after` raises
    :class:`SearchInterrupted` naming it. A second Ctrl-C interrupts at once.
    """

    def __init__(self, resume_hint: str) -> None:
        self.resume_hint = resume_hint
        self.requested = False
        self._previous: Any = None  # the SIGINT handler signal.signal replaced

    def __enter__(self) -> GracefulInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def stop_after(self, what: str) -> None:
        """Raises :class:`SearchInterrupted` once a Ctrl-C came, naming the work saved last."""
        if self.requested:
            raise SearchInterrupted(
                f"Interrupted after {what}; checkpoint saved. Resume with: {self.resume_hint}"
            )
