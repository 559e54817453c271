"""The retraining log: data only and validated; a fine-tuning resumed from it ends as an uninterrupted one."""

from __future__ import annotations

import io
import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from evoprune.config import Config
from evoprune.errors import CheckpointError
from evoprune.refine.finetune import refine_front
from evoprune.refine.retrain_log import RetrainLog, logged_score, mask_key

CONFIG = Config().with_overrides({"search.seed": 3})
IDENTITY = {"dataset_checksum": "abc", "model_weights_sha256": "def"}
SHAPES = [(3, 2), (2,)]


def _weights(value: float) -> list[np.ndarray]:
    return [np.full((3, 2), value, dtype=np.float32), np.arange(2, dtype=np.float32)]


def _log(path, resume=True, **changes) -> RetrainLog:
    settings = {"config": CONFIG, "identity": IDENTITY, "shapes": SHAPES, **changes}
    return RetrainLog.open(path, resume=resume, **settings)


def test_entries_survive_a_new_process_and_a_fresh_run_starts_empty(tmp_path):
    path = tmp_path / "retrain.npz"
    log, added = _log(path), []
    log.on_add = added.append
    log.add("round 0", {"accuracy": 0.5, "test_accuracy": float("nan"), "nonzero": 7}, _weights(1.0))
    log.add("round 1", {"accuracy": 0.75, "test_accuracy": 0.7})  # no weights (a head fine-tuning)
    assert added == ["round 0", "round 1"]
    again = _log(path)
    assert again.keys() == ["round 0", "round 1"] and again.done("round 1") and not again.done("round 2")
    row = again.row("round 0")
    assert row["accuracy"] == 0.5 and math.isnan(row["test_accuracy"]) and row["nonzero"] == 7
    for a, b in zip(again.weights("round 0"), _weights(1.0)):
        np.testing.assert_array_equal(a, b)
    assert again.weights("round 1") is None
    assert len(_log(path, resume=False)) == 0  # a fresh run ignores an earlier run's log
    with pytest.raises(ValueError, match="logged already"):
        again.add("round 0", {"accuracy": 0.1})


def test_an_in_memory_log_writes_nothing(tmp_path):
    log = RetrainLog(None, CONFIG)
    log.add("a", {"accuracy": 0.5}, _weights(2.0))
    assert log.done("a") and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"config": CONFIG.with_overrides({"search.seed": 4})}, r"another config: search\.seed=3 there, 4"),
        ({"identity": {**IDENTITY, "dataset_checksum": "xyz"}}, "dataset differs"),
        ({"shapes": [(3, 2), (3,)]}, "shapes differ"),
    ],
)
def test_a_log_of_another_run_is_refused(tmp_path, changes, message):
    path = tmp_path / "retrain.npz"
    _log(path).add("p", {"accuracy": 0.5}, _weights(1.0))
    with pytest.raises(CheckpointError, match=message):
        _log(path, **changes)


def _rewrite(path, change) -> None:
    """Rewrites a log's members after ``change(members)`` (a damaged or forged file)."""
    with np.load(path, allow_pickle=False) as npz:
        members = {name: npz[name] for name in npz.files}
    change(members)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    path.write_bytes(buffer.getvalue())


def _meta(members, **updates):
    meta = json.loads(bytes(members["meta"]).decode())
    meta.update(updates)
    members["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b"not a zip"), "not a data-only .npz"),
        (lambda p: _rewrite(p, lambda m: m.pop("a0_1")), "damaged"),
        (lambda p: _rewrite(p, lambda m: m.update(a0_0=np.full((3, 2), np.nan))), "finite numbers"),
        (lambda p: _rewrite(p, lambda m: m.update(a0_0=np.array([{"x": 1}], dtype=object))), "unreadable"),
        (lambda p: _rewrite(p, lambda m: _meta(m, kind="something else")), "Not an evoprune retraining log"),
        (lambda p: _rewrite(p, lambda m: _meta(m, entries=[{"key": 5, "row": {}, "arrays": 2}])), "damaged"),
        (
            lambda p: _rewrite(p, lambda m: _meta(m, entries=[{"key": "p", "row": {"a": [1]}, "arrays": 2}])),
            "not a number",
        ),
    ],
)
def test_a_damaged_or_forged_log_is_refused_without_running_anything(tmp_path, damage, message):
    path = tmp_path / "retrain.npz"
    _log(path).add("p", {"accuracy": 0.5}, _weights(1.0))
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        _log(path)


def test_the_file_holds_numbers_and_one_json_header_only(tmp_path):
    path = tmp_path / "retrain.npz"
    _log(path).add("p", {"accuracy": 0.5}, _weights(1.0))
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["a0_0.npy", "a0_1.npy", "meta.npy"]
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def _front(n: int, base: float = 0.9):
    """A front of sizes 1..n; genome i decodes to a mask with i+1 ones."""
    sizes = np.arange(1, n + 1)
    front = pd.DataFrame(
        {
            "eval_index": np.arange(n),
            "nonzero": sizes,
            "compression": n / sizes,
            "accuracy": np.linspace(0.5, base, n),
            "test_accuracy": 0.5,
        }
    )
    encoding = SimpleNamespace(decode=lambda gs: [np.array([np.arange(n) < g[0] for g in gs])])
    return front, [[s] for s in sizes], SimpleNamespace(base_accuracy=base, encoding=encoding)


class Killed(Exception):
    """Stands for the process dying in the middle of a fine-tuning."""


@pytest.mark.parametrize("killed_after", [0, 1, 3, 5, 6, 8])
def test_fine_tuning_resumed_from_the_log_tunes_only_the_rest_and_ends_the_same(tmp_path, killed_after):
    """Spread points, then the bisection: a kill after any point loses nothing logged."""
    front, genomes, problem = _front(200)
    smallest_ok = 77

    def score(masks):
        size = int(masks[-1].sum())
        calls.append(size)
        if len(calls) > killed_after and limit[0]:
            raise Killed
        return (0.9 if size >= smallest_ok else 0.8), size / 1000

    def weights(masks):
        return [np.full((3, 2), masks[-1].sum(), dtype=np.float32), np.zeros(2, np.float32)]

    def refine(log, progress=lambda done, total, note: None):
        return refine_front(
            front, genomes, problem, logged_score(log, score, weights), 4, 50.0, progress=progress
        )

    calls, limit = [], [False]
    uninterrupted = refine(RetrainLog(None, CONFIG))
    everything = list(calls)
    assert len(everything) > 4  # spread points and a bisection

    path = tmp_path / "retrain.npz"
    calls.clear()
    limit[0] = True
    if killed_after < len(everything):
        with pytest.raises(Killed):
            refine(_log(path))
    limit[0] = False
    calls.clear()
    log, seen = _log(path), []
    resumed = refine(log, lambda done, total, note: seen.append((done, total)))
    logged = min(killed_after, len(everything))
    assert calls == everything[logged:]  # only the points not logged, in the same order
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert seen[-1][0] == seen[-1][1] == len(everything) and all(d <= t for d, t in seen)
    for size in everything:
        key = mask_key([np.arange(200) < size])
        assert log.weights(key)[0][0, 0] == size  # each point's weights are kept


def test_a_log_from_before_a_setting_existed_resumes_while_it_keeps_its_default(tmp_path):
    """A key the saved config lacks (added to its section since) counts as its default, not a change."""
    path = tmp_path / "retrain.npz"
    _log(path).add("round 0", {"accuracy": 0.5}, _weights(1.0))
    with np.load(path) as stored:
        arrays = dict(stored)
    meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
    del meta["config"]["finetune"]["temperature"]  # as written before finetune.temperature existed
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)
    assert _log(path).done("round 0")
    changed = Config().with_overrides({"search.seed": 3, "finetune.temperature": 2.0})
    with pytest.raises(CheckpointError, match="finetune.temperature=4.0 there, 2.0 here"):
        _log(path, config=changed)
