"""SIGTERM and SIGINT end the whole process tree of ``bench`` and ``compare``, and a rerun completes.

Real subprocesses in their own session: the test waits for the first trial row (a gate,
not a sleep), signals the command, then checks that no process of its group is left
15 s later and that ``trials.csv`` is consistent; rerun, the grid equals an uninterrupted one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import evoprune
from evoprune.cli import app
from evoprune.experiments import bench

psutil = pytest.importorskip("psutil")
TIMING = ["worker_pid", "search_time_s"]
runner = CliRunner()


@pytest.fixture(scope="module")
def grid(sample_config, prepared):
    """Four short trials (two algorithms x two seeds) on the sample."""
    return sample_config.with_overrides(
        {
            "search.generations": 200,
            "search.max_evaluations": 30,
            "bench.seeds": 2,
            "bench.encodings": ["threshold"],
            "bench.algorithms": ["paper", "nsga2"],
            "bench.variants": ["average+random_reset"],
            "bench.pymoo": False,
            "bench.workers": 2,
        }
    )


@pytest.fixture(scope="module")
def uninterrupted(grid, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    bench.bench(grid, out, executor="serial")
    return pd.read_csv(out / "trials.csv").sort_values("key").reset_index(drop=True).drop(columns=TIMING)


def _rows(path: Path) -> int:
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def _group(pgid: int) -> list:
    """Live (not zombie) processes of a process group."""
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return alive


def _signal_after_first_trial(args: list[str], trials: Path, signum: int, log: Path, rows: int = 1) -> int:
    """Starts ``evoprune ARGS`` in its own session, sends ``signum`` once ``trials`` has ``rows``
    rows and workers run, and returns its exit code once no process of its group is left."""
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "evoprune", *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: everything it starts is found
            # SIGINT as a terminal delivers it: a job started in the background (CI runners,
            # `cmd &`) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 900
        while _rows(trials) < rows:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial row within 900 s"
            time.sleep(0.05)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert tree, "no worker process to stop"
        proc.send_signal(signum)
        code = proc.wait(60)  # the command itself ends within seconds
        gone = time.monotonic() + 15
        while (_group(proc.pid) or [p for p in tree if p.is_running() and p.status() != "zombie"]) and (
            time.monotonic() < gone
        ):
            time.sleep(0.1)
        left = [p.pid for p in _group(proc.pid)] + [
            p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]
        assert not left, f"processes left 15 s after the signal: {left}\n{log.read_text()[-3000:]}"
        return code
    finally:
        for left in _group(proc.pid):
            left.kill()
        if proc.poll() is None:
            proc.kill()


def _same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.sort_values("key").reset_index(drop=True).drop(columns=TIMING)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


# dask's variant (77 s) runs with -m slow; dask's bench itself stays in the default run
# (test_bench_executors), and this test's stop-and-rerun logic is the same for both executors
@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_sigterm_stops_the_bench_and_its_workers_and_a_serial_rerun_completes(
    executor, grid, uninterrupted, tmp_path
):
    if executor == "dask":
        pytest.importorskip("distributed")
    config, out = tmp_path / "bench.toml", tmp_path / "bench"
    config.write_text(grid.to_toml())
    args = ["bench", "--config", str(config), "--out", str(out), "--quiet"]
    code = _signal_after_first_trial(
        [*args, "--executor", executor], out / "trials.csv", signal.SIGTERM, tmp_path / "log.txt"
    )
    assert code == 143, (tmp_path / "log.txt").read_text()[-3000:]
    assert "terminated (SIGTERM)" in (tmp_path / "log.txt").read_text()
    partial = pd.read_csv(out / "trials.csv")  # consistent: whole rows of finished trials
    assert partial["key"].is_unique and 1 <= len(partial) < len(uninterrupted)
    expected = uninterrupted.set_index("key").loc[sorted(partial["key"])].reset_index()
    _same_rows(partial, expected)

    rerun = runner.invoke(app, [*args, "--executor", "serial"])  # resuming does not depend on the executor
    assert rerun.exit_code == 0, rerun.output
    _same_rows(pd.read_csv(out / "trials.csv"), uninterrupted)


def test_a_worker_killed_mid_bench_is_retried_and_the_grid_completes(grid, uninterrupted, tmp_path):
    config, out = tmp_path / "bench.toml", tmp_path / "bench"
    config.write_text(grid.to_toml())
    command = [sys.executable, "-m", "evoprune", "bench", "--config", str(config), "--out", str(out), "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 900
        while _rows(out / "trials.csv") < 1:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.05)
        workers = [
            p for p in psutil.Process(proc.pid).children() if "resource_tracker" not in " ".join(p.cmdline())
        ]
        assert workers, "no pool worker to kill"
        workers[0].kill()  # like the OOM killer: no goodbye
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    _same_rows(pd.read_csv(out / "trials.csv"), uninterrupted)


def test_sigint_stops_a_compare_on_the_local_pool_and_a_serial_rerun_completes(
    sample_config, prepared, tmp_path
):
    cfg = sample_config.with_overrides(
        {
            "search.max_evaluations": 30,
            "compare.seeds": 1,
            "compare.algorithms": ["paper", "nsga2", "spea2"],
            "compare.executor": "local",
            "compare.workers": 2,
        }
    )
    config, out = tmp_path / "compare.toml", tmp_path / "compare"
    config.write_text(cfg.to_toml())
    args = ["compare", "--config", str(config), "--out", str(out), "--quiet"]
    # the exact sweep's row comes first, written by the command itself: wait for a trial's
    code = _signal_after_first_trial(args, out / "trials.csv", signal.SIGINT, tmp_path / "log.txt", rows=2)
    log = (tmp_path / "log.txt").read_text()
    assert code == 130, log[-3000:]
    assert f"trials are saved in {out / 'trials.csv'}: rerun the same command to resume" in log
    partial = pd.read_csv(out / "trials.csv")
    assert partial["algorithm"].is_unique and 2 <= len(partial) < 4

    rerun = runner.invoke(app, [*args, "--executor", "serial"])  # resuming does not depend on the executor
    assert rerun.exit_code == 0, rerun.output
    whole = tmp_path / "whole"  # uninterrupted, in this process (trials do not depend on the executor)
    evoprune.compare(cfg.with_overrides({"compare.executor": "serial"}), whole)

    def table(folder: Path) -> pd.DataFrame:
        trials = pd.read_csv(folder / "trials.csv").drop(columns=["search_time_s"])
        return trials.sort_values(["seed", "algorithm"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(table(out), table(whole))
