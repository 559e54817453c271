"""Shared fixtures: an isolated model cache, the bundled sample and a 1-epoch model."""

from __future__ import annotations

import os

import pytest

from evoprune.config import Config


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
    from evoprune.experiments.run import prepare

    return prepare(sample_config)
