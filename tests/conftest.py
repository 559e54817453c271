"""Shared fixtures: an isolated model cache, the bundled sample and a 1-epoch model."""

from __future__ import annotations

import json
import os

import pytest

from evoprune.config import Config


def _pin_test_worker() -> None:
    """Gives each pytest-xdist worker its own cores, before TensorFlow or BLAS start their pools.

    evoprune sizes its thread pools to the cores a process may use; two workers sharing both
    cores would each start pools of two, and BLAS threads spinning against the other worker's
    make a search several times slower. Worker ``i`` of ``n`` gets every ``n``-th usable core
    from the ``i``-th (nothing is pinned when there are fewer cores than workers). A CPU quota
    below the affinity (a container's ``--cpus``) is not split: each worker sizes its pools to it.
    """
    worker, count = (
        os.environ.get("PYTEST_XDIST_WORKER"),
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    try:  # a replacement for a crashed worker is gw2, gw3, ...: it takes its slot's cores
        index = int(worker.removeprefix("gw")) % count
    except ValueError:
        return
    share = set(cores[index::count])
    if len(cores) >= count and share:
        os.sched_setaffinity(0, share)


_pin_test_worker()


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test trains into a temporary cache and ignores the user's data directory."""
    cache = tmp_path_factory.mktemp("model-cache")
    saved = {k: os.environ.get(k) for k in ("EVOPRUNE_CACHE_DIR", "EVOPRUNE_DATA_DIR")}
    os.environ["EVOPRUNE_CACHE_DIR"] = str(cache)
    os.environ.pop("EVOPRUNE_DATA_DIR", None)
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sample_config() -> Config:
    """The bundled sample, a 1-epoch model and a short search."""
    return Config().with_overrides(
        {"data.dataset": "mnist-sample", "model.epochs": 1, "search.generations": 5}
    )


@pytest.fixture(scope="session")
def prepared(sample_config):
    """Dataset and trained (cached) model shared by the tests."""
    from evoprune.experiments.assemble import prepare

    return prepare(sample_config)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, sample_config, prepared):
    """Factory of finished ``evoprune run`` directories on the sample, each made once per settings.

    ``finished_run(generations=2, overrides=None, args=())`` returns ``(config_path, run_dir)``;
    ``overrides`` are config keys, ``args`` extra command-line arguments. Tests must not
    change the directory (copy it first).
    """
    from typer.testing import CliRunner

    from evoprune.cli import app

    made: dict[str, tuple] = {}

    def make(generations: int = 2, overrides: dict | None = None, args: tuple = ()):
        settings = {"search.generations": generations, **(overrides or {})}
        key = json.dumps([sorted(settings.items()), [str(a) for a in args]], default=str)
        if key not in made:
            base = tmp_path_factory.mktemp("finished")
            config = base / "run.toml"
            config.write_text(sample_config.with_overrides(settings).to_toml())
            out = base / "run"
            result = CliRunner().invoke(
                app, ["run", "--config", str(config), "--out", str(out), *map(str, args)]
            )
            assert result.exit_code == 0, result.output
            made[key] = (config, out)
        return made[key]

    return make
