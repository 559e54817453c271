"""compare: equal budgets on each seed's model, DCD size validation, resume, report."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.errors import ConfigError, EvopruneError
from evoprune.experiments import compare as cmp
from evoprune.experiments import trials as tr
from evoprune.experiments.rundir import check_resumable

runner = CliRunner()


@pytest.fixture(scope="module")
def small(sample_config):
    return sample_config.with_overrides(
        {
            "search.generations": 200,
            "search.max_evaluations": 60,
            "compare.seeds": 2,
            "compare.algorithms": ["paper", "nsga2"],
        }
    )


def test_dcd_population_is_validated_before_any_work(small, tmp_path):
    bad = small.with_overrides({"search.population": 22})
    with pytest.raises(ConfigError, match="multiple of 4.*search.population=22"):
        cmp.compare(bad, tmp_path)
    assert not any(tmp_path.iterdir())


def test_compare_runs_equal_budgets_and_resumes(small, tmp_path, monkeypatch):
    calls = []
    real = tr.run_method

    def counting(config, prepared):
        calls.append((config.search.algorithm, config.search.seed))
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted in the middle of seed 1
        return real(config, prepared)

    monkeypatch.setattr(tr, "run_method", counting)
    with pytest.raises(KeyboardInterrupt):
        cmp.compare(small, tmp_path)
    partial = pd.read_csv(tmp_path / "trials.csv")
    assert set(zip(partial["algorithm"], partial["seed"])) == {
        ("sweep", 0),
        ("paper", 0),
        ("nsga2", 0),
        ("sweep", 1),
    }
    calls.clear()
    monkeypatch.setattr(tr, "run_method", real)
    result = cmp.compare(small, tmp_path)
    trials = result.trials
    assert len(trials) == 6 and not trials.duplicated(["algorithm", "seed"]).any()
    searched = trials[trials["algorithm"] != "sweep"]
    assert (searched["evaluations"] == 60).all()  # equal budgets
    _assert_metrics_against_own_seed(trials, pd.read_csv(tmp_path / "fronts.csv"))
    # each seed prunes its own model
    assert trials.groupby("seed")["baseline_accuracy"].first().nunique() == 2
    gens = pd.read_csv(tmp_path / "generations.csv")
    assert not gens.duplicated(["algorithm", "seed", "gen"]).any()
    assert set(zip(gens["algorithm"], gens["seed"])) == {(a, s) for a in ("paper", "nsga2") for s in (0, 1)}
    assert gens.groupby(["algorithm", "seed"])["hypervolume"].apply(lambda s: s.is_monotonic_increasing).all()
    assert not (tmp_path / "curves.csv").exists()  # no select.compressions: no (header-only) curves file


def _assert_metrics_against_own_seed(trials, fronts):
    """Each trial's HV and IGD recomputed from its saved front and its own seed's exact front."""
    from evoprune.reporting.metrics import hypervolume, igd

    cols = ["accuracy", "nonzero"]
    for row in trials.itertuples():
        own = fronts[(fronts["algorithm"] == row.algorithm) & (fronts["seed"] == row.seed)]
        exact = fronts[(fronts["algorithm"] == "sweep") & (fronts["seed"] == row.seed)]
        assert len(own) == row.front_size and len(exact)
        assert row.hypervolume == pytest.approx(
            hypervolume(own["accuracy"], own["nonzero"], row.baseline_nonzero), rel=1e-9
        )
        assert row.igd == pytest.approx(
            igd(own[cols].to_numpy(), exact[cols].to_numpy(), row.baseline_nonzero), abs=1e-12
        )
        # the exact sweep of one threshold holds every mask a threshold search can find
        for point in own[cols].itertuples():
            assert (
                (exact["accuracy"] >= point.accuracy - 1e-12) & (exact["nonzero"] <= point.nonzero)
            ).any(), (row.algorithm, point)
        exact_hv = trials[(trials["algorithm"] == "sweep") & (trials["seed"] == row.seed)]["hypervolume"]
        assert row.hypervolume <= exact_hv.iloc[0] + 1e-12
    searched = trials[trials["algorithm"] != "sweep"]
    assert (searched["igd"] > 0).any()  # the budget is too small to find the whole exact front


def test_resume_refuses_other_settings(small, tmp_path):
    (tmp_path / "trials.csv").write_text("algorithm,seed\n")
    (tmp_path / "config.toml").write_text(small.to_toml())
    check_resumable(small.with_overrides({"compare.seeds": 5}), tmp_path)  # more seeds: fine
    with pytest.raises(EvopruneError, match="search.max_evaluations"):
        check_resumable(small.with_overrides({"search.max_evaluations": 90}), tmp_path)


def test_cli_compare_writes_report_and_plots(small, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(small.with_overrides({"compare.seeds": 1}).to_toml())
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        [
            "compare",
            "--config",
            str(config),
            "--seeds",
            "2",
            "--algorithms",
            "paper,nsga2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in (
        "trials.csv",
        "generations.csv",
        "fronts.csv",
        "report.md",
        "fronts.png",
        cmp.DIFFERENCES,
        "hypervolume.png",
        "config.toml",
    ):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "Mann-Whitney" in report and "A12" in report and "| hypervolume ↑ |" in report
    assert "Does multi-objective search beat" in report
    assert "Each seed trains its own model" in report and "same given model" not in report
    bad = runner.invoke(
        app, ["compare", "--config", str(config), "--algorithms", "paper,cmaes", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 1 and "cmaes" in bad.output


def test_convergence_is_a_step_function_on_a_common_grid_and_nan_before_any_seed(recwarn):
    """Median/IQR of hypervolume at equal evaluations; the magnitude baseline's first
    generation comes late, so early grid points have no value: NaN, without a NumPy warning."""
    generations = pd.DataFrame(
        {
            "algorithm": ["a"] * 4 + ["late"] * 2,
            "seed": [0, 0, 1, 1, 0, 0],
            "evaluations": [10, 50, 10, 30, 40, 50],
            "hypervolume": [0.1, 0.5, 0.3, 0.4, 0.2, 0.6],
        }
    )
    table = cmp.convergence(generations, points=5)  # grid 10, 20, 30, 40, 50
    a = table[table["algorithm"] == "a"].set_index("evaluations")
    assert a.loc[20, "median"] == pytest.approx(0.2)  # seed 0 still at 0.1, seed 1 at 0.3
    assert a.loc[50, "median"] == pytest.approx(0.45)  # 0.5 and 0.4
    late = table[table["algorithm"] == "late"].set_index("evaluations")["median"]
    assert late[[10, 20, 30]].isna().all() and late[40] == pytest.approx(0.2)
    assert not [w for w in recwarn if "All-NaN" in str(w.message)]


def test_budget_defaults_to_population_times_generations(sample_config):
    cfg = tr.with_budget(sample_config.with_overrides({"search.generations": 30}))
    assert cfg.search.max_evaluations == 600 and cfg.search.generations >= 6000
    kept = tr.with_budget(sample_config.with_overrides({"search.max_evaluations": 90}))
    assert kept.search.max_evaluations == 90
    # what compare and bench print first, so that a generations setting compare replaces is not silent
    capped = sample_config.with_overrides({"search.max_evaluations": 90, "search.generations": 3})
    assert tr.budget_text(capped) == (
        "Budget: 90 distinct evaluations a trial (search.max_evaluations, which replaces "
        "search.generations=3 here; set it to shorten the trials)"
    )
    assert "whichever comes first" in tr.budget_text(capped, equal=False)  # bench's loop stops at either
    population = sample_config.search.population
    assert tr.budget_text(sample_config.with_overrides({"search.generations": 30})).startswith(
        f"Budget: {population * 30:,} distinct evaluations a trial (search.population {population} x"
    )


def test_other_genomes_and_layers_are_measured_against_the_union_of_their_fronts(small, tmp_path):
    from evoprune.reporting.metrics import igd, pareto_front

    config = small.with_overrides(
        {
            "search.encoding": "layer_thresholds",
            "search.layers": "all",
            "compare.seeds": 1,
            "compare.algorithms": ["paper", "nsga2"],
        }
    )
    result = cmp.compare(config, tmp_path)
    trials, fronts = result.trials, result.fronts
    assert list(trials["algorithm"]) == ["union", "paper", "nsga2"]  # no exact sweep here
    cmp.write_outputs(config, result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "`union` is the non-dominated union of each seed's trials' fronts" in report
    assert "exact front of the one-threshold genome" not in report
    union = fronts[fronts["algorithm"] == "union"]
    both = pareto_front(fronts[fronts["algorithm"] != "union"])
    assert (
        union[["accuracy", "nonzero"]].to_numpy().tolist()
        == both[["accuracy", "nonzero"]].to_numpy().tolist()
    )
    base = int(trials["baseline_nonzero"].iloc[0])
    for algorithm in ("paper", "nsga2"):
        own = fronts[fronts["algorithm"] == algorithm]
        expected = igd(
            own[["accuracy", "nonzero"]].to_numpy(), union[["accuracy", "nonzero"]].to_numpy(), base
        )
        assert trials.loc[trials["algorithm"] == algorithm, "igd"].iloc[0] == pytest.approx(expected)
    assert (
        trials.loc[trials["algorithm"] == "union", "evaluations"].iloc[0]
        == trials.loc[trials["algorithm"] != "union", "evaluations"].sum()
    )
    assert base > 1500  # the convolutions count too


def test_cli_compare_rejects_operators_that_do_not_fit_before_any_output(small, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(small.with_overrides({"search.encoding": "mask"}).to_toml())
    result = runner.invoke(app, ["compare", "--config", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "Operator 'average' does not apply to binary genomes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_report_tells_that_every_seed_prunes_the_given_model_file(small, prepared, tmp_path):
    model = prepared.trained.path
    config = small.with_overrides({"model.model_file": str(model), "compare.algorithms": ["paper", "nsga2"]})
    out = tmp_path / "cmp"
    result = cmp.run_compare(config, out)
    report = (out / "report.md").read_text()
    assert f"Every seed prunes the same given model ({model})" in report
    assert "trains its own model" not in report and "own model" not in report
    assert set(result.trials["seed"]) == {0, 1} and (out / cmp.DIFFERENCES).is_file()


def test_the_files_own_algorithm_does_not_stop_a_comparison_without_it(small, tmp_path, monkeypatch):
    """population 8 is too small for 'paper' (the default search.algorithm), not for NSGA-II/SPEA2."""
    from evoprune import api

    config = tmp_path / "c.toml"
    config.write_text(small.with_overrides({"search.population": 8}).to_toml())
    seen = []
    monkeypatch.setattr(api, "run_compare", lambda cfg, out, **kw: seen.append(cfg))
    api.compare(config, tmp_path / "out", compare__algorithms=["nsga2", "spea2"])
    assert seen[0].search.population == 8 and seen[0].compare.algorithms == ("nsga2", "spea2")
    cmp.check_config(seen[0])  # what compare() checks first: every compared algorithm's own rules
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.toml").write_text(seen[0].to_toml())
    (tmp_path / "out" / "trials.csv").write_text("key\n")
    check_resumable(seen[0], tmp_path / "out")  # its saved config reads back: a resume is not refused

    monkeypatch.undo()  # a comparison that runs 'paper' is refused, before any output
    result = runner.invoke(
        app,
        ["compare", "--config", str(config), "--algorithms", "paper,nsga2", "--out", str(tmp_path / "o2")],
    )
    assert result.exit_code != 0 and "search.population >= 20 for algorithm 'paper'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o2").exists()
