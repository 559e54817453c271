"""Config loading: defaults, overrides, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoprune.config import Config
from evoprune.errors import ConfigError
from evoprune.experiments.configure import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_paper_config_matches_the_notebook():
    cfg = load_config(ROOT / "configs" / "paper.toml")
    assert (cfg.search.population, cfg.search.generations, cfg.search.algorithm) == (20, 30, "paper")
    assert (cfg.model.epochs, cfg.model.batch_size, cfg.model.learning_rate) == (5, 128, 0.005)
    assert cfg.search.min_threshold == 1e-6
    assert cfg.data.fitness_split == "validation"
    assert load_config(ROOT / "configs" / "notebook.toml").data.fitness_split == "test"


def test_round_trip_through_toml(tmp_path):
    cfg = Config().with_overrides(
        {"search.seed": 7, "data.dataset": "mnist-sample", "data.data_dir": 'a "quoted" dir'}
    )
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_none_overrides_change_nothing():
    assert Config().with_overrides({"search.seed": None}) == Config()


def test_int_accepted_for_float():
    assert Config().with_overrides({"model.learning_rate": 1}).model.learning_rate == 1.0


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[search]\npopulaton = 20\n", "search.populaton"),
        ("[serch]\n", "[serch]"),
        ('[search]\npopulation = "big"\n', "search.population='big'"),
        ("[search]\npopulation = 0\n", "search.population=0"),
        ("[search]\ncxpb = 1.5\n", "search.cxpb=1.5"),
        ('[search]\nalgorithm = "nsga4"\n', "search.algorithm='nsga4'"),
        ('[data]\ndataset = "CIFAR 10"\n', "data.dataset='CIFAR 10'"),
        ('[data]\ndata_dir = "d"\ndata_file = "f.npz"\n', "data.data_file='f.npz'"),
        ('[data]\nfitness_split = "train"\n', "data.fitness_split='train'"),
        ("[data]\nvalidation_fraction = 0.0\n", "data.validation_fraction=0.0"),
        ("[model]\nepochs = -1\n", "model.epochs=-1"),
        ('[search]\nalgorithm = "nsga2"\npopulation = 22\n', "groups of 4), such as 20 or 24. Received"),
        ("[search]\npopulation = 12\n", "search.population=12"),
        ("[search\n", "not valid TOML"),
        ("[select]\ncompressions = 12\n", "to be a list of numbers such as [12, 24]"),
        ('[compare]\nalgorithms = "nsga2"\n', "Expected compare.algorithms to be a list of strings."),
    ],
)
def test_bad_values_name_field_and_value(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_config(tmp_path / "nope.toml")


def test_memory_estimate_refuses_absurd_searches_before_allocating():
    import time

    from evoprune.config import ConfigError, SearchConfig
    from evoprune.search.budget import memory_estimate, memory_limit

    assert memory_estimate(SearchConfig(encoding="threshold")) == (20 * 31, (20 * 31 + 30 + 40) * 600)
    assert memory_estimate(SearchConfig()) == (20 * 31, (20 * 31 + 30 + 40) * 800)  # auto: per layer
    assert memory_estimate(SearchConfig(max_evaluations=100))[0] == 120  # budget + one generation
    start = time.perf_counter()
    from evoprune.experiments.configure import with_overrides

    with pytest.raises(ConfigError, match=r"100,000,100,000 evaluations of 'mask' genomes") as info:
        with_overrides(
            Config(),
            {
                "search.encoding": "mask",
                "search.crossover": "uniform",
                "search.mutation": "flip_bit",
                "search.population": 100_000,
                "search.generations": 1_000_000,
            },
        )
    assert time.perf_counter() - start < 1.0
    assert f"{memory_limit() / 2**30:,.1f} GiB" in str(info.value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("search.seed", 2**32),
        ("data.split_seed", -1),
        ("search.mutpb", float("nan")),
        ("search.eta", float("inf")),
        ("model.epochs", 10**12),
        ("search.population", 100_001),
    ],
)
def test_numbers_must_be_finite_and_in_range(key, value):
    from evoprune.config import ConfigError

    with pytest.raises(ConfigError, match=f"Received: {key}="):
        Config().with_overrides({key: value})


@pytest.mark.parametrize(
    "registry,field,module,attr",
    [
        ("algorithm", "search.algorithm", "evoprune.experiments.methods", "METHODS"),
        ("encoding", "search.encoding", "evoprune.search.encodings", "ENCODING_CHOICES"),
        ("executor", "bench.executor", "evoprune.experiments.executors", "EXECUTORS"),
        ("crossover", "search.crossover", "evoprune.search.operators", "CROSSOVERS"),
        ("mutation", "search.mutation", "evoprune.search.operators", "MUTATIONS"),
    ],
)
def test_config_names_come_from_the_registries(registry, field, module, attr):
    import importlib

    from evoprune.experiments.configure import registry_names, with_overrides

    assert registry_names(registry) == tuple(getattr(importlib.import_module(module), attr))
    with pytest.raises(ConfigError) as info:
        with_overrides(Config(), {field: "no-such-name"})
    assert f"Expected one of: {', '.join(registry_names(registry))}. " in str(info.value)
    assert f"Received: {field}='no-such-name'" in str(info.value)


def test_every_deap_strategy_and_baseline_is_a_method():
    from evoprune.experiments.methods import METHODS
    from evoprune.search.algorithms import STRATEGIES

    assert set(STRATEGIES) < set(METHODS)
    assert {"magnitude", "pymoo-nsga2"} < set(METHODS)
