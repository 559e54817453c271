"""The run directory's lifecycle in the library: open, resume, overwrite, finish."""

from __future__ import annotations

import pytest

from evoprune.config import Config
from evoprune.errors import EvopruneError
from evoprune.experiments import rundir
from evoprune.experiments.configure import load_config

SMALL = {"search.generations": 1}


def test_run_config_needs_a_directory():
    with pytest.raises(EvopruneError, match="Expected --out DIR"):
        rundir.run_config(None, None, None, {})


def test_run_config_fresh_applies_overrides(tmp_path):
    out, cfg = rundir.run_config(tmp_path / "run", None, None, {"search.seed": 4})
    assert out == tmp_path / "run" and cfg.search.seed == 4
    assert not out.exists()  # nothing created yet


def test_run_config_resume_refusals(tmp_path):
    other = tmp_path / "other"
    with pytest.raises(EvopruneError, match="different directories"):
        rundir.run_config(other, tmp_path, None, {})
    with pytest.raises(EvopruneError, match="no config.toml"):
        rundir.run_config(None, tmp_path, None, {})
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(EvopruneError, match="already complete"):
        rundir.run_config(None, tmp_path, None, {})


def test_run_config_resume_refuses_a_different_config(tmp_path):
    (tmp_path / "config.toml").write_text(Config().with_overrides({"search.seed": 1}).to_toml())
    given = tmp_path / "given.toml"
    given.write_text(Config().with_overrides({"search.seed": 2}).to_toml())
    with pytest.raises(EvopruneError, match=r"config given differs.*search.seed=1 there, 2 here"):
        rundir.run_config(None, tmp_path, given, {})


def test_open_run_fresh_writes_config_and_marks_unfinished(tmp_path):
    cfg = Config().with_overrides(SMALL)
    out = tmp_path / "run"
    run = rundir.RunDir(out)
    run.check(resume=False, overwrite=False)
    assert not out.exists()
    with run.open(cfg, resume=False, overwrite=False) as opened:
        assert opened.path == out and load_config(out / "config.toml") == cfg
        with pytest.raises(EvopruneError, match="Another evoprune run"):
            run.check_unlocked()  # the lock is held while the run is open
    run.check_unlocked()


def test_finished_run_needs_overwrite(tmp_path):
    cfg = Config().with_overrides(SMALL)
    (tmp_path / "summary.json").write_text("{}")
    run = rundir.RunDir(tmp_path)
    for check in (
        lambda: run.check(False, False),
        lambda: run.open(cfg, False, False).__enter__(),
    ):
        with pytest.raises(EvopruneError, match="finished run"):
            check()
    with run.open(cfg, resume=False, overwrite=True):
        assert not (tmp_path / "summary.json").exists()  # unfinished from now on


def test_open_run_resume_keeps_the_saved_config(tmp_path):
    (tmp_path / "config.toml").write_text("saved")
    with rundir.RunDir(tmp_path).open(Config(), resume=True, overwrite=False):
        assert (tmp_path / "config.toml").read_text() == "saved"


def test_open_trials_dir_writes_config_and_refuses_other_settings(tmp_path):
    cfg = Config().with_overrides({"compare.seeds": 2})
    rundir.open_trials_dir(tmp_path, cfg, free=("compare",))
    assert load_config(tmp_path / "config.toml") == cfg
    (tmp_path / "trials.csv").write_text("trial\n")
    rundir.open_trials_dir(tmp_path, cfg.with_overrides({"compare.seeds": 5}), free=("compare",))
    with pytest.raises(EvopruneError, match="search.seed=0 there, 3 here"):
        rundir.open_trials_dir(tmp_path, cfg.with_overrides({"search.seed": 3}), free=("compare",))
