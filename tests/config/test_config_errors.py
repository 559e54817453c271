"""Config errors of the [finetune], [bench], [metrics] and [compare] sections: one line each."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.config import Config
from evoprune.errors import ConfigError
from evoprune.experiments.configure import load_config

CASES = {
    "refine unknown": ('[finetune]\nrefine = "all"\n', "finetune.refine='all'"),
    "scope unknown": ('[finetune]\nscope = "convs"\n', "finetune.scope='convs'"),
    "each with model scope": ('[finetune]\nrefine = "each"\nscope = "model"\n', "finetune.scope='model'"),
    "refine all layers": ('[finetune]\nrefine = "front"\n[search]\nlayers = "all"\n', "search.layers='all'"),
    "steps zero": ("[finetune]\nsteps = 0\n", "finetune.steps=0"),
    "epochs zero": ("[finetune]\nepochs = 0\n", "finetune.epochs=0"),
    "learning rate zero": ("[finetune]\nlearning_rate = 0.0\n", "finetune.learning_rate=0.0"),
    "model learning rate": ("[finetune]\nmodel_learning_rate = 2.0\n", "finetune.model_learning_rate=2.0"),
    "max points zero": ("[finetune]\nmax_points = 0\n", "finetune.max_points=0"),
    "distill over 1": ('[finetune]\nscope = "model"\ndistill = 1.5\n', "finetune.distill=1.5"),
    "distill with head scope": ("[finetune]\ndistill = 0.5\n", "finetune.scope='head'"),
    "l2 negative": ('[finetune]\nscope = "model"\nl2 = -0.1\n', "finetune.l2=-0.1"),
    "l2 with head scope": ("[finetune]\nl2 = 0.001\n", "finetune.scope='head'"),
    "temperature zero": ('[finetune]\nscope = "model"\ntemperature = 0.0\n', "finetune.temperature=0.0"),
    "max drop over 100": ("[finetune]\nmax_drop_pp = 150.0\n", "finetune.max_drop_pp=150.0"),
    "bench seeds zero": ("[bench]\nseeds = 0\n", "bench.seeds=0"),
    "bench workers zero": ("[bench]\nworkers = 0\n", "bench.workers=0"),
    "bench executor": ('[bench]\nexecutor = "threads"\n', "bench.executor='threads'"),
    "bench encoding": ('[bench]\nencodings = ["bits"]\n', "bench.encodings='bits'"),
    "bench algorithm": ('[bench]\nalgorithms = ["cmaes"]\n', "bench.algorithms='cmaes'"),
    "bench variant": ('[bench]\nvariants = ["sbx"]\n', "'sbx'"),
    "bench variants not strings": ("[bench]\nvariants = [1, 2]\n", "bench.variants=[1, 2]"),
    "bench pymoo not bool": ('[bench]\npymoo = "yes"\n', "bench.pymoo='yes'"),
    "metrics accuracy": ("[metrics]\nref_accuracy = 1.5\n", "metrics.ref_accuracy=1.5"),
    "metrics nonzero": ("[metrics]\nref_nonzero = -1\n", "metrics.ref_nonzero=-1"),
    "compare seeds zero": ("[compare]\nseeds = 0\n", "compare.seeds=0"),
    "compare no algorithms": ("[compare]\nalgorithms = []\n", "compare.algorithms=[]"),
    "compare algorithm": ('[compare]\nalgorithms = ["paper", "cmaes"]\n', "compare.algorithms='cmaes'"),
    "compare algorithm twice": ('[compare]\nalgorithms = ["nsga2", "nsga2"]\n', "'nsga2' twice"),
    "bench variant twice": (
        '[bench]\nvariants = ["sbx+polynomial", "sbx+polynomial"]\n',
        "'sbx+polynomial' twice",
    ),
    "confidence below half": ("[select]\nconfidence = 0.3\n", "select.confidence=0.3"),
    "compressions not above 1": ("[select]\ncompressions = [12.0, 0.5]\n", "select.compressions=0.5"),
    "unknown section": ("[tuning]\nsteps = 3\n", "[tuning]"),
    "unknown finetune key": ("[finetune]\nrounds = 3\n", "finetune.rounds"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_section_value_names_key_and_value(name, tmp_path):
    text, needle = CASES[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert needle in message and "Received" in message and "\n" not in message, message


@pytest.mark.parametrize(
    "name",
    ["refine unknown", "bench executor", "metrics accuracy", "compare algorithm", "compare algorithm twice"],
)
@pytest.mark.parametrize("command", ["run", "compare", "bench"])
def test_cli_reports_one_line_before_any_output(name, command, tmp_path):
    text, needle = CASES[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [command, "--config", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], result.output
    assert not out.exists()


def test_good_values_of_the_same_keys_load():
    """The table above fails for the value, not the key: valid values of each key load."""
    Config().with_overrides(
        {
            "finetune.refine": "front",
            "finetune.scope": "model",
            "finetune.steps": 1,
            "finetune.epochs": 1,
            "finetune.max_points": 1,
            "finetune.max_drop_pp": 100.0,
            "bench.seeds": 1,
            "bench.workers": 1,
            "bench.executor": "serial",
            "bench.encodings": ["mask"],
            "bench.algorithms": ["tournament"],
            "bench.variants": ["uniform+flip_bit"],
            "metrics.ref_accuracy": 1.0,
            "metrics.ref_nonzero": 0,
            "compare.seeds": 1,
            "compare.algorithms": ["nsga3"],
        }
    )


def test_a_grid_axis_given_from_python_as_a_string_is_not_read_letter_by_letter():
    from evoprune.config.sections import CompareConfig

    with pytest.raises(
        ConfigError, match=r"Expected compare.algorithms to be a list of names. Received: .*'paper'"
    ):
        CompareConfig(algorithms="paper").validate()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"list of names"):
        CompareConfig(algorithms=("paper", ["nsga2"])).validate()  # type: ignore[arg-type]
