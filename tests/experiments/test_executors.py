"""Executors: serial, spawn pool and Dask give the same results and survive dead workers."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from evoprune.errors import ConfigError, EvopruneError
from evoprune.experiments.executors import CONNECT_TIMEOUT_S, TrialError, resolve, run_tasks

TESTS_DIR = str(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module", autouse=True)
def tasks_importable():
    """Spawned pool workers and Dask worker processes can import ``executor_tasks``."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, saved) if p)
    yield
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture()
def cluster(tasks_importable):
    """A running local Dask cluster (2 workers, 1 thread each) that one test joins.

    One per test: a worker killed or a trial left running by one test cannot leak into the next.
    """
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as running:
        yield running


def specs(n: int, **extra) -> list[dict]:
    """``n`` specs with keys t0..t{n-1} and x = 0..n-1."""
    return [{"key": f"t{i}", "x": i, **extra} for i in range(n)]


def record() -> tuple[list[tuple[dict, dict]], object]:
    """A list and an ``on_result`` callback that appends ``(spec, result)`` to it."""
    calls: list[tuple[dict, dict]] = []
    return calls, lambda spec, result: calls.append((spec, result))


def assert_exactly_once(calls, results, keys):
    """Every key's result arrived once via on_result, with the right value."""
    assert sorted(spec["key"] for spec, _ in calls) == sorted(keys)
    assert [r["key"] for r in results] == list(keys)
    for spec, result in calls:
        assert result["key"] == spec["key"] and result["value"] == spec["x"] ** 2


@pytest.mark.parametrize("executor", ["serial", "local", "dask"])
def test_executors_agree_and_skip_done(executor):
    calls, on_result = record()
    results = run_tasks(
        "executor_tasks:square",
        specs(5),
        executor=executor,
        workers=2,
        done_keys={"t1", "t3"},
        on_result=on_result,
    )
    assert [(r["key"], r["value"]) for r in results] == [("t0", 0), ("t2", 4), ("t4", 16)]
    assert_exactly_once(calls, results, ["t0", "t2", "t4"])
    pids = {r["pid"] for r in results}
    assert (pids == {os.getpid()}) == (executor == "serial")


def test_nothing_to_do_starts_nothing():
    assert run_tasks("executor_tasks:square", specs(2), executor="dask", done_keys={"t0", "t1"}) == []


def test_local_pool_survives_a_dead_worker(tmp_path):
    marker = tmp_path / "died"
    todo = specs(4, sleep=0.5)
    todo[1] = {"key": "t1", "x": 1, "marker": str(marker)}
    calls, on_result = record()
    results = run_tasks("executor_tasks:die_once", todo, executor="local", workers=2, on_result=on_result)
    assert marker.exists()
    assert_exactly_once(calls, results, ["t0", "t1", "t2", "t3"])
    assert results[1]["pid"] != int(marker.read_text())


def test_local_pool_gives_up_after_retries():
    with pytest.raises(TrialError, match=r"'t0' lost its worker process 2 times"):
        run_tasks("executor_tasks:always_die", specs(1), executor="local", workers=1, retries=1)


def test_dask_local_cluster_survives_a_dead_worker(tmp_path):
    marker = tmp_path / "died"
    todo = specs(4, sleep=1.0)
    todo[0] = {"key": "t0", "x": 0, "marker": str(marker), "sleep": 0.2}
    calls, on_result = record()
    results = run_tasks("executor_tasks:die_once", todo, executor="dask", workers=2, on_result=on_result)
    assert marker.exists()
    assert_exactly_once(calls, results, ["t0", "t1", "t2", "t3"])
    assert results[0]["pid"] != int(marker.read_text())


def test_join_existing_cluster(cluster):
    calls, on_result = record()
    results = run_tasks(
        "executor_tasks:square",
        specs(4),
        executor="dask",
        scheduler=cluster.scheduler_address,
        on_result=on_result,
    )
    assert_exactly_once(calls, results, ["t0", "t1", "t2", "t3"])
    assert cluster.status.name == "running"  # the joined cluster is left running
    assert len(cluster.workers) == 2


def _wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)
    return found


def test_dask_worker_killed_from_outside(cluster, tmp_path):
    from distributed import Client

    gate = tmp_path / "gate"
    calls, on_result = record()
    outcome: dict = {}

    def bench():
        try:
            outcome["results"] = run_tasks(
                "executor_tasks:gated_square",
                specs(4, gate=str(gate), dir=str(tmp_path)),
                executor="dask",
                scheduler=cluster.scheduler_address,
                on_result=on_result,
            )
        except BaseException as exc:  # re-raised in the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=bench)
    thread.start()
    try:
        # the trial is blocked on the gate, so the kill always lands in the middle of it
        started = _wait_for(
            lambda: [p.read_text() for p in sorted(tmp_path.glob("started-*")) if p.read_text()],
            "trial start",
        )
        pid = int(started[0])
        os.kill(pid, signal.SIGKILL)  # like the OOM killer: no goodbye to the scheduler
    finally:
        gate.touch()
        thread.join(180)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert_exactly_once(calls, outcome["results"], ["t0", "t1", "t2", "t3"])
    assert pid not in {r["pid"] for r in outcome["results"]}  # its trial ran elsewhere
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


@pytest.mark.parametrize("executor", ["serial", "local", "dask"])
def test_task_error_names_the_key_and_cancels_the_rest(executor, request, tmp_path):
    gate = tmp_path / "gate"  # never opened while run_tasks runs: the slow trial cannot finish
    todo = [
        {"key": "slow", "x": 1, "gate": str(gate), "dir": str(tmp_path), "max_wait": 300},
        {"key": "broken", "x": 2, "bad": True},
    ]
    if executor == "serial":
        todo.reverse()
    scheduler = request.getfixturevalue("cluster").scheduler_address if executor == "dask" else None
    try:
        with pytest.raises(TrialError, match=r"'broken' failed: ValueError: bad spec x=2"):
            run_tasks("executor_tasks:fail_on_bad", todo, executor=executor, workers=2, scheduler=scheduler)
        # did not wait for the slow trial (it only finishes once the gate opens)
        assert not (tmp_path / "finished-slow").exists()
        if executor == "serial":
            assert not (tmp_path / "started-slow").exists()  # never started after the failure
    finally:
        gate.touch()


def test_bad_executor_and_workers():
    with pytest.raises(
        ConfigError,
        match=r"Expected one of: dask, local, serial\. "
        r"Received: 'threads'",
    ):
        run_tasks("executor_tasks:square", specs(1), executor="threads")
    with pytest.raises(ConfigError, match=r"workers=0"):
        run_tasks("executor_tasks:square", specs(1), workers=0)
    with pytest.raises(ConfigError, match=r"unique string 'key'"):
        run_tasks("executor_tasks:square", specs(1) + specs(1), executor="serial")
    with pytest.raises(ConfigError, match=r"no_such_task"):
        resolve("executor_tasks:no_such_task")


def test_unreachable_scheduler():
    start = time.monotonic()
    with pytest.raises(EvopruneError, match=r"tcp://127\.0\.0\.1:1"):
        run_tasks("executor_tasks:square", specs(1), executor="dask", scheduler="tcp://127.0.0.1:1")
    # it gives up after its connect timeout instead of hanging (generous: a loaded machine)
    assert time.monotonic() - start < CONNECT_TIMEOUT_S * 6
