"""User-facing errors: counts agree with their nouns ("1 point", "2 points", "1 class"), and a
near-miss among listed choices gets "Did you mean", from Python as from the CLI."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import evoprune
from evoprune.errors import ConfigError, ModelError, nearest, plural


@pytest.mark.parametrize(
    "count, noun, expected",
    [
        (1, "point", "1 point"),
        (1.0, "point", "1 point"),
        (0.5, "point", "0.5 points"),
        (2, "point", "2 points"),
        (0, "evaluation", "0 evaluations"),
        (1500, "weight", "1,500 weights"),
        (np.int64(1), "class", "1 class"),
        (np.int64(3), "class", "3 classes"),
        (2, "index", "2 indices"),
        (20, "epoch", "20 epochs"),
        (2, "batch", "2 batches"),
    ],
)
def test_plural(count, noun, expected):
    many = {"index": "indices", "batch": "batches"}.get(noun)
    assert plural(count, noun, many) == expected


def test_a_one_class_model_is_named_in_the_singular(prepared):
    from evoprune.models.training import build_model, check_fits

    model = build_model("lenet-300-100", (28, 28, 1), 1)
    with pytest.raises(ModelError, match="Model scores 1 class but the data has 10"):
        check_fits(model, prepared.dataset, "one.keras")


def _summary(**best) -> dict:
    """A finished run's summary with one evaluation; ``best`` adds its genome or threshold."""
    return {
        "best": {
            **best,
            "nonzero": 5,
            "compression": 2.0,
            "accuracy": 0.9,
            "test_accuracy": 0.9,
            "fitness": 1.0,
        },
        "baseline": {"nonzero": 10, "accuracy": 0.95},
        "select": {"tolerance_pp": 1.0},
        "selected": None,
        "evaluations": 1,
        "search_time_s": 0.1,
        "wall_time_s": 1.0,
    }


def test_run_summary_says_one_point_and_one_evaluation():
    from evoprune.cli import describe

    summary = _summary(threshold=0.1)
    lines = describe(summary, "validation", "out")
    assert "within 1 point on validation" in lines[1] and lines[2].startswith("1 evaluation, ")


def test_a_long_genome_is_shortened_between_numbers_and_says_how_many_genes():
    from evoprune.cli import describe

    genes = "0.0686028 0.0791531 0.0746783 0.184864 0.0412 0.144279 0.160831 0.2"
    summary = _summary(genome=genes)
    first = describe(summary, "validation", "out")[0]
    assert "genome 0.0686028 0.0791531 0.0746783 0.184864 0.0412 0.144279 ... (8 genes)," in first
    summary["best"]["genome"] = "0.1 0.2"
    assert "genome 0.1 0.2, " in describe(summary, "validation", "out")[0]


def test_the_nearest_choice_is_the_exact_one_then_the_only_one_equal_but_for_case():
    assert nearest("conv1", ["Conv1", "conv1"]) == "conv1"  # layer names are case-sensitive
    assert nearest("CONV1", ["Conv1", "conv1"]) is None  # two equal but for case: no guess
    assert nearest("NSGA2", ["paper", "nsga2", "nsga3"]) == "nsga2"
    assert nearest("xyz", ["paper", "nsga2"]) is None


def test_an_error_listing_choices_suggests_the_nearest_once_even_after_pickling():
    error = ConfigError(
        "Unknown search.algorithm. Expected one of: paper, nsga2. Received: search.algorithm='NSGA2'"
    )
    assert str(error) == (
        "Unknown search.algorithm. Expected one of: paper, nsga2. Did you mean 'nsga2'? "
        "Received: search.algorithm='NSGA2'"
    )
    again = pickle.loads(pickle.dumps(error))  # as from a worker process: no second suggestion
    assert str(again) == str(error)
    far = "Unknown executor. Expected one of: serial, local. Received: 'zzz'"
    assert str(ConfigError(far)) == far


def test_python_options_and_values_get_did_you_mean_too(tmp_path):
    with pytest.raises(ConfigError, match=r"Did you mean 'population'\? Received: popluation=4$"):
        evoprune.prune(popluation=4, out=tmp_path / "r")
    with pytest.raises(ConfigError, match=r"Did you mean 'nsga2'\? Received: search.algorithm='NSGA2'"):
        evoprune.prune(algorithm="NSGA2", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
