"""Model: architecture, cache hits, corrupt cache retrained, unusable model files refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from evoprune.errors import ModelError
from evoprune.models.training import build_model, load_model_file, load_or_train, save_model


def test_architecture_has_the_papers_1500_weight_head():
    model = build_model()
    kernel = model.layers[-1].get_weights()[0]
    assert kernel.shape == (150, 10)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D",
        "AveragePooling2D",
        "Conv2D",
        "AveragePooling2D",
        "Flatten",
        "Dense",
    ]


def test_second_call_loads_from_cache(sample_config, prepared):
    again = load_or_train(prepared.dataset, sample_config.model, sample_config.search.seed)
    assert again.cached and again.path == prepared.trained.path
    for a, b in zip(again.model.get_weights(), prepared.trained.model.get_weights()):
        assert np.array_equal(a, b)


def test_corrupt_cache_is_retrained(sample_config, prepared, tmp_path):
    cfg = sample_config.with_overrides({"model.cache_dir": str(tmp_path)})
    first = load_or_train(prepared.dataset, cfg.model, 0)
    assert not first.cached
    first.path.write_bytes(b"not a zip file")
    second = load_or_train(prepared.dataset, cfg.model, 0)
    assert not second.cached and load_model_file(second.path) is not None
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        assert np.array_equal(a, b)  # seeded training is reproducible


def test_model_file_errors(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_text("hello")
    with pytest.raises(ModelError, match="Not a loadable Keras model"):
        load_model_file(junk)
    with pytest.raises(ModelError, match="not found"):
        load_model_file(tmp_path / "missing.keras")
    model = build_model()
    weights = model.get_weights()
    weights[-2][0, 0] = np.nan
    model.set_weights(weights)
    save_model(model, tmp_path / "nan.keras")
    with pytest.raises(ModelError, match="non-finite"):
        load_model_file(tmp_path / "nan.keras")


def test_model_without_dense_layer_is_refused(tmp_path):
    import keras

    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(10, 3), keras.layers.GlobalAveragePooling2D()]
    keras.Sequential(layers).save(tmp_path / "conv.keras")  # class scores out, but no Dense layer
    with pytest.raises(ModelError, match="no Dense layer"):
        load_model_file(tmp_path / "conv.keras")
    keras.Sequential(layers[:2]).save(tmp_path / "map.keras")  # a feature map out: not a classifier
    with pytest.raises(
        ModelError, match=r"one \(batch, classes\) output. .*outputs \[\(None, 26, 26, 10\)\]$"
    ):
        load_model_file(tmp_path / "map.keras")


def test_cosine_schedule_is_its_own_cached_model_and_decays_to_zero(sample_config, prepared, monkeypatch):
    import keras

    from evoprune.models import training as model_module
    from evoprune.models.training import cache_key

    constant = sample_config.model
    cosine = sample_config.with_overrides({"model.lr_schedule": "cosine"}).model
    ds = prepared.dataset
    assert cache_key(ds, constant, 0) != cache_key(ds, cosine, 0)
    seen = []
    real = model_module.compile_model
    monkeypatch.setattr(
        model_module, "compile_model", lambda m, lr=0.005, **kw: (seen.append(lr), real(m, lr, **kw))
    )
    trained = model_module.train(ds, cosine, 0)
    schedule = seen[-1]
    steps = int(np.ceil(len(ds.train[1]) / cosine.batch_size))
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(cosine.learning_rate) and float(
        schedule(steps)
    ) == pytest.approx(0)
    assert int(trained.optimizer.iterations.numpy()) == steps


def test_epochs_are_reported_while_training_and_not_when_cached(sample_config, prepared, tmp_path):
    from evoprune.experiments.assemble import prepare

    reports = []
    cfg = sample_config.with_overrides({"model.cache_dir": str(tmp_path), "model.epochs": 2})
    trained = load_or_train(prepared.dataset, cfg.model, 0, on_epoch=lambda *r: reports.append(r))
    assert [(epoch, epochs) for epoch, epochs, _ in reports] == [(1, 2), (2, 2)]
    assert all(np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1 for _, _, logs in reports)
    plain = load_or_train(prepared.dataset, cfg.model, 0, on_epoch=lambda *r: reports.append(r))
    assert plain.cached and len(reports) == 2  # loaded: no epochs
    for a, b in zip(trained.model.get_weights(), plain.model.get_weights()):
        assert np.array_equal(a, b)
    steps = []  # through the assembly layer: the "train" phase of a run's progress
    fresh = sample_config.with_overrides({"model.cache_dir": str(tmp_path / "again")})
    again = prepare(fresh, progress=lambda *step: steps.append(step))
    assert [s[:3] for s in steps] == [("train", 1, 1)] and steps[0][3].startswith("loss ")
    for a, b in zip(again.trained.model.get_weights(), prepared.trained.model.get_weights()):
        assert np.array_equal(a, b)  # the callback changes nothing: the same weights as without it
    prepare(fresh, progress=lambda *step: steps.append(step))
    assert len(steps) == 1


def test_thread_pools_are_sized_to_the_cores_the_process_may_use():
    """BLAS and TensorFlow pools larger than the usable cores spin against each other under load."""
    import os
    import subprocess
    import sys

    code = """
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one usable core
from evoprune.models.training import import_tensorflow_quietly
import_tensorflow_quietly()
import tensorflow as tf
from threadpoolctl import threadpool_info
blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
print(len(os.sched_getaffinity(0)), blas, tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "1 [1] 1 1"


def test_free_cores_leave_out_the_other_runnable_tasks(tmp_path):
    from evoprune.models.threads import free_cores

    loadavg, tasks = tmp_path / "loadavg", tmp_path / "task"
    for tid, state in ((11, "R"), (12, "S"), (13, "R")):  # two of our threads run (one a BLAS worker)
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (python3 (x)) {state} 1 2 3\n")
    for running, free in ((2, 4), (3, 3), (5, 1), (9, 1)):  # ours are two of them
        loadavg.write_text(f"0.50 0.40 0.30 {running}/321 4242\n")
        assert free_cores(4, str(loadavg), str(tasks)) == free
    assert free_cores(3, str(tmp_path / "missing"), str(tasks)) == 3
    assert free_cores(2, str(loadavg), str(tmp_path / "none")) == 1  # 9 running, ours unknown: 1


def test_head_products_use_only_the_free_cores(monkeypatch):
    """Two BLAS threads on a core that another process keeps busy wait for each other."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from evoprune.models import threads
    from evoprune.scoring.head import HeadScorer

    threads._controller()  # made before SciPy (its own OpenBLAS) is imported: it must still be limited
    import scipy.linalg  # noqa: F401

    rng = np.random.default_rng(0)
    scorer = HeadScorer(rng.random((50, 8), np.float32), rng.normal(size=(8, 3)), np.zeros(3), np.zeros(50))
    seen = []
    real = scorer._chunk_counts

    def spy(masks):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(masks)

    monkeypatch.setattr(scorer, "_chunk_counts", spy)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)  # another process runs on the other core
    with threadpool_limits(2, user_api="blas"):
        scorer.correct_counts(np.ones((3, 8, 3), bool))
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {2}  # restored
    assert seen and set(seen) == {1}  # every BLAS library loaded (NumPy's, SciPy's) held to one


def test_new_models_predicting_in_a_loop_print_no_retracing_advice():
    """A run predicts with a new model per point; TensorFlow's retracing page must not appear."""
    script = """
import numpy as np
from evoprune.models.training import import_tensorflow_quietly, correct
import_tensorflow_quietly()
import keras
split = (np.zeros((32, 4, 4, 1), "float32"), np.zeros(32, "int64"))
for i in range(8):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    correct(model, split)
import logging
logging.getLogger("tensorflow").warning("another warning still shows")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "retracing" not in done.stderr + done.stdout
    assert "another warning still shows" in done.stderr
