"""CLI: outputs of a run, one-line errors with non-zero exits, nothing lost, lazy imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from evoprune.cli import app
from evoprune.experiments.configure import load_config

runner = CliRunner()
SUMMARY_KEYS = {
    "algorithm",
    "seed",
    "dataset",
    "fitness_split",
    "baseline",
    "evaluations",
    "search_time_s",
    "wall_time_s",
    "best",
}


@pytest.fixture()
def config_file(tmp_path, sample_config, prepared):
    path = tmp_path / "test.toml"
    path.write_text(sample_config.with_overrides({"search.generations": 3}).to_toml())
    return path


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_commands():
    import re

    result = invoke("--help")
    assert result.exit_code == 0, result.output
    # each command opens its own row of the Commands table, with its help text beside it
    listed = re.findall(r"^\W*(\w+) {2,}\S", result.output.split("Commands", 1)[1], re.M)
    assert listed == ["train", "run", "compare", "bench", "export", "evaluate", "show"], result.output


def _python(*args: str) -> subprocess.CompletedProcess:
    """Runs ``python *args`` with a timeout; its output is shown when it hangs."""
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"python {' '.join(args)} hung:\n{exc.stdout}\n{exc.stderr}")


def test_cli_import_does_not_load_tensorflow():
    code = "import sys, evoprune.cli; print('tensorflow' in sys.modules)"
    out = _python("-c", code)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout + out.stderr


def test_run_writes_the_run_directory(tmp_path, config_file):
    out = tmp_path / "run"
    result = invoke("run", "--config", config_file, "--seed", "0", "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("config.toml", "logbook.csv", "population.csv", "front.csv", "front.png", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert set(summary["baseline"]) >= {"accuracy", "test_accuracy", "nonzero"}
    assert set(summary["best"]) >= {
        "threshold",
        "accuracy",
        "test_accuracy",
        "nonzero",
        "compression",
        "fitness",
    }
    assert summary["dataset"] == "mnist-sample" and summary["fitness_split"] == "validation"
    front = pd.read_csv(out / "front.csv")
    assert {"accuracy", "test_accuracy", "nonzero", "compression"} <= set(front.columns)
    assert front["nonzero"].is_monotonic_increasing and front["accuracy"].is_monotonic_increasing
    logbook = pd.read_csv(out / "logbook.csv")
    assert logbook["gen"].tolist() == [0, 1, 2, 3]
    assert summary["evaluations"] == logbook["nevals"].sum()
    assert load_config(out / "config.toml").search.generations == 3
    assert f"{summary['best']['fitness']:.4f}" in result.output
    times = summary["times_s"]  # every phase of the run, adding up to its wall time
    assert list(times) == ["prepare", "setup", "search", "test", "checkpoint", "other"]
    assert min(times.values()) >= 0 and times["checkpoint"] > 0  # a file written each generation
    assert sum(times.values()) == pytest.approx(summary["wall_time_s"], rel=1e-6)
    assert times["search"] == summary["search_time_s"]
    assert f"search {times['search']:.1f} s, test {times['test']:.1f} s" in result.output


def test_train_prints_accuracy(config_file):
    result = invoke("train", "--config", config_file)
    assert result.exit_code == 0, result.output
    assert "loaded from cache" in result.output and "test accuracy: 0." in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "Cifar-10"], "data.dataset='Cifar-10'"),
        (["--population", "0"], "search.population=0"),
        (["--generations", "-2"], "search.generations=-2"),
        (["--algorithm", "nsga2", "--population", "22"], "multiple of 4"),
        (["--set", "gmp.compression"], "Expected --set SECTION.KEY=VALUE"),
        (["--seed", "1", "--set", "search.seed=2"], "search.seed is set by both --seed and --set"),
        (
            ["--set", "gmp.compression=3", "--set", "gmp.compression=4"],
            "gmp.compression is given twice by --set",
        ),
        (["--set", "search.populaton=8"], "Did you mean 'population'?"),
        (["--set", "search.algorithm=SPEA2"], "Did you mean 'spea2'?"),
        (["--set", "search.population=eight"], "search.population='eight'"),
    ],
)
def test_bad_options_give_one_line(tmp_path, config_file, args, needle):
    result = invoke("run", "--config", config_file, "--out", tmp_path / "o", *args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("Error:")
    assert "Traceback" not in result.output


def test_out_dir_that_is_a_file(tmp_path, config_file):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = invoke("run", "--config", config_file, "--out", target)
    assert result.exit_code == 1 and "not a directory" in result.output
    assert target.read_text() == "keep me"


def test_missing_config_file(tmp_path):
    result = invoke("run", "--config", tmp_path / "nope.toml", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "nope.toml" in result.output


def test_corrupt_data_dir_leaves_earlier_results(tmp_path, config_file):
    out = tmp_path / "run"
    assert invoke("run", "--config", config_file, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "idx"
    bad.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (bad / name).write_bytes(b"\x00\x00\x08\x03\x00\x00")  # truncated header
    result = invoke("run", "--config", config_file, "--data-dir", bad, "--out", out, "--overwrite")
    assert result.exit_code == 1 and "train-images-idx3-ubyte" in result.output
    lines = result.output.strip().splitlines()
    assert [line for line in lines if line.startswith("Error:")] == lines[-1:]
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_debug_shows_the_traceback(tmp_path, config_file):
    from evoprune.errors import ConfigError

    result = invoke(
        "run", "--config", config_file, "--dataset", "Cifar-10", "--out", tmp_path / "o", "--debug"
    )
    # the error itself propagates (a traceback), not the one-line exit of user_errors
    assert isinstance(result.exception, ConfigError), repr(result.exception)
    assert "data.dataset='Cifar-10'" in str(result.exception)
    assert "Error:" not in result.output


def test_finished_run_is_not_overwritten_without_flag(tmp_path, config_file):
    out = tmp_path / "run"
    assert invoke("run", "--config", config_file, "--out", out).exit_code == 0
    before = (out / "summary.json").read_bytes()
    result = invoke("run", "--config", config_file, "--out", out, "--seed", "1")
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "summary.json").read_bytes() == before
    assert invoke("run", "--config", config_file, "--out", out, "--seed", "1", "--overwrite").exit_code == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 1


def test_usage_errors_are_one_line_from_the_console_script(tmp_path):
    out = _python("-m", "evoprune", "run", "--out", str(tmp_path), "--seed", "abc")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "--seed abc" in lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--algorithm", "nsga-2"], "Did you mean 'nsga2'? Received: --algorithm nsga-2"),
        (["--algorithm", "NSGA2"], "Did you mean 'nsga2'? Received: --algorithm NSGA2"),
        (["--encoding", "layer_threshold"], "Did you mean 'layer_thresholds'?"),
        (["--architecture", "lenet5"], "Did you mean 'lenet-5'?"),
        (["--evaluator", "exac"], "is not one of 'fast', 'exact'. Did you mean 'exact'?"),
    ],
)
def test_choices_are_listed_and_near_misses_named(tmp_path, capsys, args, needle):
    from evoprune.cli import run_app

    assert run_app(["run", "--out", str(tmp_path / "o"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_a_mask_genome_runs_from_the_command_line_with_its_operators(tmp_path):
    args = ["run", "--dataset", "mnist-sample", "--encoding", "mask"]
    refused = invoke(*args, "--out", tmp_path / "refused")
    assert refused.exit_code == 1, refused.output
    assert (
        "'average' does not apply to binary genomes (encoding 'mask'). Expected one of: two_point, uniform"
        in refused.output
    )
    options = ["--crossover", "two_point", "--mutation", "flip_bit", "--generations", "1"]
    result = invoke(*args, *options, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    best = next(line for line in result.output.splitlines() if line.startswith("best: "))
    assert "(a mask, 376 hex digits)" in best and len(best) < 200, best  # 1,500 bits, not all printed
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert 'crossover = "two_point"' in saved and 'mutation = "flip_bit"' in saved


def test_help_shows_defaults_and_choices():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "250"})
    text = " ".join(result.output.split())
    for needle in (
        "[default: 20]",
        "[default: 30]",
        "[default: paper]",
        "nsga2, spea2",
        "layer_thresholds",
        "Crossover: average, blend",
        "flip_bit",
        "head, dense, all (every Dense, convolution, depthwise",
        "comma-separated layer names",
        "(required unless --resume)",
    ):
        assert needle in text.replace("│ ", "").replace(" │", ""), needle


def test_help_keeps_choice_names_whole_in_a_narrow_terminal():
    from evoprune import api

    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "100"})
    words = set(result.output.replace(",", " ").replace(".", " ").split())
    for kind in ("algorithm", "encoding", "architecture", "crossover", "mutation"):
        for name in api.choices(kind):
            assert name in words, name  # not broken mid-name (rich once printed gm / p-global)


def test_version():
    from evoprune import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"evoprune {__version__}"


def test_training_shows_epoch_progress_and_verbose_lines_only_when_it_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    args = ["train", "--dataset", "mnist-sample", "--epochs", "2"]
    trained = invoke(*args, "--verbose")
    assert trained.exit_code == 0, trained.output
    epochs = re.findall(r"^training epoch (\d)/2(?: \(.*elapsed.*\))?: loss ", trained.output, re.M)
    assert epochs == ["1", "2"], trained.output  # verbose: a line per epoch (with its time once past 1 s)
    cached = invoke(*args)
    assert cached.exit_code == 0 and "loaded from cache" in cached.output
    assert "training epoch" not in cached.output
    quiet = invoke(*args, "--quiet")
    assert quiet.output.splitlines()[0].startswith("model: "), quiet.output


def test_run_verbose_prints_a_line_per_generation(tmp_path, config_file):
    plain = invoke("run", "--config", config_file, "--out", tmp_path / "a")
    verbose = invoke("run", "--config", config_file, "--out", tmp_path / "b", "--verbose")
    assert plain.exit_code == verbose.exit_code == 0, plain.output + verbose.output
    lines = re.findall(r"^generation (\d+)/3: (.*)$", verbose.output, re.M)
    assert [int(g) for g, _ in lines] == [0, 1, 2, 3]
    assert "best fitness" in lines[0][1]
    assert not [line for line in plain.output.splitlines() if line.startswith("generation 1/3:")]
    assert "Searching: paper" in plain.output and "Searching: paper" in verbose.output


def test_the_search_bar_shows_the_best_fitness_so_far_the_one_the_run_reports(tmp_path, config_file):
    """NSGA-II's population can lose its best-fitness point (crowding); the bar keeps the best seen."""
    out = tmp_path / "r"
    args = ("--algorithm", "nsga2", "--population", "8", "--generations", "6", "--seed", "1", "--verbose")
    result = invoke("run", "--config", config_file, "--out", out, *args)
    assert result.exit_code == 0, result.output
    shown = [float(x) for x in re.findall(r"^generation \d+/6: best fitness ([\d.]+)", result.output, re.M)]
    assert len(shown) == 7 and shown == sorted(shown)
    best = json.loads((out / "summary.json").read_text())["best"]["fitness"]
    assert shown[-1] == round(best, 4)


def test_dataset_beside_a_local_source_is_refused_in_one_line(tmp_path):
    result = invoke("run", "--dataset", "mnist-sample", "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: Expected --dataset or a local source (--data-dir, --data-file), not both. "
        f"Received: --dataset mnist-sample --data-dir {tmp_path}"
    )
    assert not (tmp_path / "o").exists()


def test_dataset_on_the_command_line_replaces_the_config_files_local_source(tmp_path):
    from evoprune import load_config
    from evoprune.cli import _data_overrides

    config = tmp_path / "c.toml"
    config.write_text('[data]\ndata_dir = "/nowhere/mnist"\n')
    data = load_config(config, _data_overrides("mnist-sample", None, None)).data
    assert (data.dataset, data.data_dir, data.data_file) == ("mnist-sample", "", "")
    kept = load_config(config, _data_overrides(None, None, None)).data  # no option: the file's
    assert kept.data_dir == "/nowhere/mnist"


def test_set_data_keys_follow_the_data_options_rules(tmp_path):
    from evoprune import load_config
    from evoprune.cli import _FLAGS, _data_overrides, _with_settings

    result = invoke(
        "run", "--set", f"data.data_dir={tmp_path}", "--dataset", "mnist-sample", "--out", tmp_path / "o"
    )
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: Expected --dataset or a local source (--data-dir, --data-file), not both. "
        f"Received: --dataset mnist-sample --set data.data_dir={tmp_path}"
    )
    assert not (tmp_path / "o").exists()
    config = tmp_path / "c.toml"
    config.write_text('[data]\ndata_dir = "/nowhere/mnist"\n')
    overrides = _with_settings(_data_overrides(None, None, None), ["data.dataset=mnist-sample"], _FLAGS)
    data = load_config(config, overrides).data  # as --dataset alone: the file's directory is cleared
    assert (data.dataset, data.data_dir, data.data_file) == ("mnist-sample", "", "")
    cleared = _with_settings(_data_overrides(None, None, None), ['data.data_dir=""'], _FLAGS)
    assert load_config(config, cleared).data.data_dir == ""  # an explicit "" clears the file's value


def test_quiet_and_verbose_together_is_one_line(tmp_path):
    result = invoke("run", "--out", tmp_path / "o", "--quiet", "--verbose")
    assert result.exit_code == 1 and result.output.strip().startswith("Error: Expected at most one of")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_status_lines_are_printed_above_a_live_bar_not_stuck_to_it(monkeypatch, capsys):
    from evoprune.cli import _bars

    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: rich draws the live bar
    monkeypatch.setenv("COLUMNS", "100")
    with _bars(quiet=False) as (progress, status):
        progress("finetune", 1, 7, "1,370 weights")
        status("Fine-tuned point 2 of at most 7")
        progress("finetune", 2, 7, "275 weights")
    err = capsys.readouterr().err
    # the bar's line is erased first, the status line ends with its own newline, the bar is redrawn
    assert "\r\x1b[2KFine-tuned point 2 of at most 7\n" in err, repr(err)
    assert "fine-tuning point" in err and "2/7" in err


def test_a_log_file_gets_progress_lines_with_eta_at_start_every_30_s_and_at_the_end(capsys):
    from evoprune.cli import _ProgressLines

    now = [0.0]
    lines = _ProgressLines(verbose=False, clock=lambda: now[0])
    for epoch in range(1, 31):  # one 30-epoch retraining, 2 s an epoch
        now[0] += 2.0
        lines.progress("retrain", epoch, 30, "24x")
    now[0] += 2.0
    lines.progress("retrain", 1, 30, "30x")  # the next level's retraining starts over
    lines.progress("search", 0, 0)  # a total of 0 is not known: the count alone
    for level in ("a", "b"):  # levels of one epoch each repeat 1/1: each is a new phase
        now[0] += 40.0
        lines.progress("round", 1, 1, level)
    lines.progress("trials", 185, 200, "resumed")  # a resumed grid: the ETA counts steps from 185
    for trial in range(186, 201):
        now[0] += 3.0
        lines.progress("trials", trial, 200)
    now[0] += 3.0
    lines.progress("trials", 201, 200)  # past its total: no second end line
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "retraining epoch 1/30: 24x",
        "retraining epoch 16/30 (0:00:30 elapsed, eta 0:00:28): 24x",
        "retraining epoch 30/30 (0:00:58 elapsed): 24x",
        "retraining epoch 1/30: 30x",
        "generation 0",
        "round 1/1: a",
        "round 1/1: b",
        "trial 185/200: resumed",
        "trial 195/200 (0:00:30 elapsed, eta 0:00:15)",
        "trial 200/200 (0:00:45 elapsed)",
    ]


def test_a_piped_run_prints_progress_lines_and_show_prints_its_results_again(tmp_path):
    out = tmp_path / "r"
    ran = runner.invoke(  # CliRunner's stderr is not a terminal, as a log file is not
        app, ["run", "--dataset", "mnist-sample", "--generations", "2", "--out", str(out)]
    )
    assert ran.exit_code == 0, ran.output
    searched = [line for line in ran.output.splitlines() if line.startswith("generation")]
    assert searched[0].startswith("generation 0/2: best fitness")
    assert searched[-1].startswith("generation 2/2")
    assert "━" not in ran.output  # no bar drawn once the run is over
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    front = len(pd.read_csv(out / "front.csv"))
    assert lines[0] == f"paper on mnist-sample, seed 0; {front} front points"
    assert lines[1:] == ran.output.splitlines()[-3:]  # best, selected, evaluations and times
    missing = runner.invoke(app, ["show", str(tmp_path / "none")])
    assert missing.exit_code == 1 and missing.output.startswith("Error: Not a finished run directory")


def test_compare_takes_the_executor_and_workers_from_the_command_line(monkeypatch, tmp_path):
    from evoprune import api

    seen = {}

    def fake_compare(cfg, out, **kwargs):
        seen["executor"], seen["workers"] = cfg.compare.executor, cfg.compare.workers
        raise SystemExit(0)

    monkeypatch.setattr(api, "compare", fake_compare)
    result = runner.invoke(
        app,
        [
            "compare",
            "--dataset",
            "mnist-sample",
            "--out",
            str(tmp_path),
            "--executor",
            "local",
            "--workers",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == {"executor": "local", "workers": 3}
    wrong = runner.invoke(app, ["compare", "--out", str(tmp_path), "--executor", "dusk"])
    assert wrong.exit_code != 0 and "dask" in wrong.output


def test_a_missing_model_file_is_named_before_any_data_is_loaded(tmp_path):
    missing = tmp_path / "missing.keras"
    result = runner.invoke(
        app,
        [
            "run",
            "--model-file",
            str(missing),
            "--data-dir",
            str(tmp_path / "no-data"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: Model file not found. Received: {missing}"  # not the data dir


@pytest.mark.parametrize(
    "source, needle",
    [
        (
            ["--data-file", "{tmp}/missing.npz"],
            "missing.npz: cannot read data file. Expected an existing .npz file",
        ),
        (["--data-dir", "{tmp}"], "missing MNIST file. Expected 'train-images-idx3-ubyte'"),
    ],
)
@pytest.mark.parametrize("command", ["run", "train"])
def test_missing_data_is_named_before_tensorflow_loads(tmp_path, source, needle, command):
    out = ["--out", "{tmp}/r"] if command == "run" else []
    args = [a.format(tmp=tmp_path) for a in [command, *source, *out]]
    code = (
        "import sys; from evoprune.cli import run_app; "
        f"code = run_app({args!r}); print(code, 'tensorflow' in sys.modules)"
    )
    out = _python("-c", code)
    assert out.stdout.strip() == "1 False", out.stdout + out.stderr  # failed, TensorFlow never imported
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "r").exists()


def test_a_near_miss_among_listed_choices_gets_did_you_mean(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text("[search]\npopluation = 4\n")
    result = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "Did you mean 'population'? Received: search.popluation" in line
    far = tmp_path / "far.toml"
    far.write_text("[search]\nzzz = 4\n")
    result = runner.invoke(app, ["run", "--config", str(far), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "Did you mean" not in result.output


def test_any_config_key_is_set_from_the_command_line(tmp_path, config_file, monkeypatch):
    monkeypatch.setenv("EVOPRUNE_CACHE_DIR", str(tmp_path / "cache"))  # the run trains its model
    settings = ["gmp.compression=3", "gmp.allocation=global", "finetune.scope=model", "finetune.epochs=1"]
    args = ["run", "--config", config_file, "--algorithm", "gmp", "--out", tmp_path / "run"]
    result = invoke(
        *args, *[a for item in settings for a in ("--set", item)], "--set", "select.compressions=[3, 6]"
    )
    assert result.exit_code == 0, result.output
    saved = load_config(tmp_path / "run" / "config.toml")
    gmp = saved.section("gmp")
    assert (gmp.compression, gmp.allocation) == (3.0, "global")  # a number, and a bare word as a string
    assert (saved.finetune.scope, saved.finetune.epochs, saved.select.compressions) == (
        "model",
        1,
        (3.0, 6.0),
    )
    curve = pd.read_csv(tmp_path / "run" / "curve.csv")
    assert curve["compression"].tolist() == [3.0, 6.0]
    # training the model is its own phase, not part of prepare (a cached model has none:
    # test_run_writes_the_run_directory)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    times = summary["times_s"]
    assert list(times)[:3] == ["prepare", "train", "setup"] and times["train"] == summary["train_time_s"] > 0
    assert sum(times.values()) == pytest.approx(summary["wall_time_s"], rel=1e-6)
    assert f"train {summary['train_time_s']:.1f} s" in result.output


def test_set_reads_layers_as_the_layers_option_does():
    from evoprune.cli import _FLAGS, _with_settings

    assert _with_settings({}, ["search.layers=[fc1, fc2]"], _FLAGS)["search.layers"] == ["fc1", "fc2"]
    assert _with_settings({}, ["search.layers=fc1,fc2"], _FLAGS)["search.layers"] == ("fc1", "fc2")
    assert _with_settings({}, ["search.layers=all"], _FLAGS)["search.layers"] == "all"
