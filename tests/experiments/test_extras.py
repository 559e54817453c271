"""Optional extras (dask, tflite, peer): a missing one is named in one line, before any work.

The modules are hidden with ``sys.modules[name] = None`` (an import then fails), or with a
meta-path blocker in a subprocess that runs the core commands without them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.errors import MissingExtraError
from evoprune.experiments.executors import check_executor, run_tasks
from evoprune.models.deploy import TFLITE_MAGIC

runner = CliRunner()
EXTRAS = {"dask": ("dask", "distributed"), "tflite": ("ai_edge_litert",), "peer": ("pymoo",)}


@pytest.fixture()
def without(monkeypatch):
    """``without("dask")`` hides the modules of an extra from this process."""

    def hide(extra: str) -> None:
        for module in EXTRAS[extra]:
            monkeypatch.setitem(sys.modules, module, None)

    return hide


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("module", ["dask", "distributed"])
def test_dask_executor_needs_the_dask_extra(without, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=r"^the Dask executor needs the 'dask' extra: pip install "):
        check_executor("dask")
    with pytest.raises(MissingExtraError, match=f"missing module: {module}"):
        run_tasks("executor_tasks:square", [{"key": "t0", "x": 2}], executor="dask")
    check_executor("serial")  # the others need nothing


def test_bench_and_compare_with_dask_name_the_extra_before_any_work(without, sample_config, tmp_path):
    without("dask")
    config = tmp_path / "c.toml"
    config.write_text(sample_config.with_overrides({"compare.executor": "dask"}).to_toml())
    for args in (
        ["bench", "--dataset", "mnist-sample", "--executor", "dask", "--out", str(tmp_path / "b")],
        [
            "bench",
            "--dataset",
            "mnist-sample",
            "--scheduler",
            "tcp://127.0.0.1:1",
            "--out",
            str(tmp_path / "s"),
        ],
        ["compare", "--config", str(config), "--out", str(tmp_path / "c")],
    ):
        line = _one_line(runner.invoke(app, args))
        assert line.startswith(
            "Error: the Dask executor needs the 'dask' extra: pip install 'evoprune[dask]'"
        )
    assert not any(tmp_path.glob("[bsc]"))  # no directory, no trained model


def test_pymoo_peer_needs_the_peer_extra(without, sample_config, tmp_path):
    without("peer")
    line = _one_line(
        runner.invoke(
            app,
            ["run", "--dataset", "mnist-sample", "--algorithm", "pymoo-nsga2", "--out", str(tmp_path / "r")],
        )
    )
    assert line.startswith(
        "Error: the algorithm pymoo-nsga2 needs the 'peer' extra: pip install 'evoprune[peer]'"
    )
    config = tmp_path / "b.toml"
    config.write_text(sample_config.with_overrides({"bench.pymoo": True}).to_toml())
    line = _one_line(runner.invoke(app, ["bench", "--config", str(config), "--out", str(tmp_path / "b")]))
    assert line.startswith("Error: bench.pymoo (pymoo's NSGA2 as a peer) needs the 'peer' extra")
    compared = runner.invoke(
        app,
        [
            "compare",
            "--dataset",
            "mnist-sample",
            "--algorithms",
            "paper,pymoo-nsga2",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert "needs the 'peer' extra" in _one_line(compared)
    assert not any(tmp_path.glob("[rbc]"))


def test_tflite_export_and_evaluation_need_the_tflite_extra(without, finished_run, tmp_path):
    without("tflite")
    _, run = finished_run(generations=2)
    out = tmp_path / "m.tflite"
    line = _one_line(runner.invoke(app, ["export", str(run), "--out", str(out)]))
    assert line.startswith(
        "Error: export --format tflite needs the 'tflite' extra: pip install 'evoprune[tflite]'"
    )
    assert not out.exists() and not (tmp_path / "m.tflite.json").exists()
    fake = tmp_path / "f.tflite"
    fake.write_bytes(b"\x00" * 4 + TFLITE_MAGIC + b"\x00" * 24)
    line = _one_line(runner.invoke(app, ["evaluate", str(fake), "--dataset", "mnist-sample"]))
    assert line.startswith("Error: evaluating a .tflite file needs the 'tflite' extra")
    keras_out = tmp_path / "m.keras"  # the core format needs nothing more
    assert runner.invoke(app, ["export", str(run), "--out", str(keras_out)]).exit_code == 0
    assert keras_out.is_file()


BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {"dask", "distributed", "pymoo", "ai_edge_litert"}


class Blocker(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None


sys.meta_path.insert(0, Blocker())
from evoprune.cli import run_app

print("CODES", [run_app(args) for args in ARGS])
"""


def test_the_core_commands_run_without_any_extra(finished_run, tmp_path):
    """A subprocess that cannot import dask, distributed, pymoo nor ai_edge_litert runs
    ``run`` and ``export --format keras``; the dask executor is refused with one line."""
    config, _ = finished_run(generations=2)
    args = [
        ["run", "--config", str(config), "--out", str(tmp_path / "run")],
        ["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.keras")],
        ["bench", "--config", str(config), "--executor", "dask", "--out", str(tmp_path / "b")],
    ]
    code = BLOCKER.replace("ARGS", repr(args))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert "CODES [0, 0, 1]" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "m.keras").is_file() and (tmp_path / "run" / "summary.json").is_file()
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: the Dask executor needs the 'dask' extra: pip install 'evoprune[dask]' "
        "(missing modules: dask, distributed)"
    ], done.stderr
