"""Typer command-line interface: thin commands over :mod:`evoprune.api` (TensorFlow imported lazily)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from evoprune import __version__, api
from evoprune.config import EVALUATORS, Config, parse_value
from evoprune.errors import (
    ConfigError,
    EvopruneError,
    SearchInterrupted,
    Terminated,
    compression_text,
    nearest,
    plural,
    step_text,
)
from evoprune.experiments.curve import level_text
from evoprune.experiments.executors import sigterm_raises

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter quiet

app = typer.Typer(
    help="Prune neural network weights with evolutionary algorithms (DEAP + Keras).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_DEFAULTS = Config()


def _choices(name: str) -> type[Enum]:
    """A ``str`` Enum of a registry's names, so ``--help`` lists them and Click checks them."""
    return Enum(name.title(), {n: n for n in api.choices(name)}, type=str)  # type: ignore[return-value]


Algorithm, Encoding, Executor, Architecture, Crossover, Mutation = (
    _choices(n) for n in ("algorithm", "encoding", "executor", "architecture", "crossover", "mutation")
)
Evaluator = Enum("Evaluator", {n: n for n in EVALUATORS}, type=str)  # type: ignore[misc]


def _listed(choices: type[Enum], what: str, default: str) -> dict:
    """Option settings that list a long set of choices in the help text, where they wrap between
    names (in the narrow metavar column rich breaks names mid-word: ``gm``/``p-global``)."""
    names = ", ".join(c.value for c in choices)
    return {"metavar": f"<{choices.__name__.lower()}>", "help": f"{what}: {names}. \\[default: {default}]"}


class Split(str, Enum):
    train = "train"
    validation = "validation"
    test = "test"


class Format(str, Enum):
    keras = "keras"
    tflite = "tflite"


def _value(choice) -> Optional[str]:
    return None if choice is None else getattr(choice, "value", choice)


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file.")]
DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        help="mnist-sample (bundled) or a tensorflow-datasets image classification name "
        f"(mnist, cifar10, ...). \\[default: {_DEFAULTS.data.dataset}]",
    ),
]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="IDX files or an image folder (train/<class>/, test/<class>/); default $EVOPRUNE_DATA_DIR."
    ),
]
DataFileOpt = Annotated[
    Optional[Path],
    typer.Option(help=".npz file of x_train, y_train, x_test, y_test (optional x_val, y_val)."),
]
SeedOpt = Annotated[
    Optional[int], typer.Option(help=f"Seed for training and search. \\[default: {_DEFAULTS.search.seed}]")
]
ArchitectureOpt = Annotated[
    Optional[Architecture],  # type: ignore[valid-type]
    typer.Option(
        **_listed(Architecture, "Built-in architecture, sized from the data", _DEFAULTS.model.architecture)
    ),
]
ModelFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Prune this Keras classifier (a .keras file; legacy .h5 files are refused) "
        "instead of training a built-in one."
    ),
]
LayersOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Pruned layers: head, dense, all (every Dense, convolution, depthwise, separable and "
        "transposed-convolution kernel), or comma-separated layer names (sep/depthwise for one "
        "kernel of a separable layer). "
        f"\\[default: {_DEFAULTS.search.layers}]",
    ),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Any config key, as in a TOML file: --set gmp.compression=24 --set finetune.epochs=30 "
        "--set 'select.compressions=[12, 24]' (repeatable; a bare word is a string).",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the results: no progress or status.")
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also print a line per step (epoch, generation, point, trial) above the bars."
    ),
]


def _err(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


@contextlib.contextmanager
def user_errors(debug: bool, trials: Optional[Path] = None) -> Iterator[None]:
    """Turns user errors into one line on stderr and exit code 1 (tracebacks with --debug).

    SIGTERM ends a command as Ctrl-C does (worker pools and clusters stopped first), with
    exit code 143. ``trials``: the output directory of a resumable grid (compare, bench),
    which a Ctrl-C names with how to resume.
    """
    try:
        with sigterm_raises():
            yield
    except Terminated:
        _err(
            _stopped(
                "terminated (SIGTERM)", trials, "finished work is saved: run --resume DIR continues a run"
            )
        )
        raise typer.Exit(code=143) from None
    except SearchInterrupted as exc:  # a Ctrl-C the user chose: what was saved, not an error
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=130) from None
    except EvopruneError as exc:
        if debug:
            raise
        _err(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        raise typer.Exit(code=1) from None
    except OSError as exc:  # disk full, read-only or vanished paths: the environment, not a bug
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _err(f"{where}{exc.strerror or exc}")
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        stopped = _stopped("interrupted", trials, "")
        typer.echo(stopped[:1].upper() + stopped[1:], err=True)
        raise typer.Exit(code=130) from None


def _stopped(how: str, trials: Optional[Path], otherwise: str) -> str:
    """What a stopped command left: a grid's ``trials.csv`` and how to resume it, else ``otherwise``."""
    if trials is None:  # run (its search loop names its checkpoint), train, export, evaluate
        return f"{how}; {otherwise}" if otherwise else how
    saved = trials / "trials.csv"
    if not saved.is_file():
        return f"{how} before any trial finished: nothing saved in {trials}"
    return (
        f"{how}; the finished trials are saved in {saved}: rerun the same command to resume "
        "(the trials in progress start over)"
    )


def _data_overrides(
    dataset: Optional[str],
    data_dir: Optional[Path | str],
    data_file: Optional[Path | str],
    names: tuple[str, ...] = ("--dataset ", "--data-dir ", "--data-file "),
) -> dict:
    """Data options over the config file: ``--data-dir`` clears the file's ``data_file`` and vice versa.

    Both given: both are set, and the config validation names them. ``--dataset`` beside
    either is refused (a directory or file replaces the dataset name, which would be ignored);
    alone, it clears the file's directory and data file, as each of those clears the other.
    ``names``: how each of the three was given, as the message writes it before the value.
    """
    if dataset and (data_dir or data_file):
        given = f"{names[1]}{data_dir}" if data_dir else f"{names[2]}{data_file}"
        raise ConfigError(
            "Expected --dataset or a local source (--data-dir, --data-file), not both. "
            f"Received: {names[0]}{dataset} {given}"
        )
    return {
        "data.dataset": dataset,
        "data.data_dir": str(data_dir) if data_dir else ("" if data_file or dataset else None),
        "data.data_file": str(data_file) if data_file else ("" if data_dir or dataset else None),
    }


def _model_overrides(architecture, model_file: Optional[Path], layers: Optional[str] = None) -> dict:
    """Config overrides of the model options; ``--layers a,b`` names layers, ``--layers all`` a set."""
    names: str | tuple[str, ...] | None = (
        tuple(n.strip() for n in layers.split(",") if n.strip()) if layers is not None else None
    )
    if names and len(names) == 1 and names[0] in ("head", "dense", "all"):
        names = names[0]
    return {
        "model.architecture": _value(architecture),
        "model.model_file": str(model_file) if model_file else None,
        "search.layers": names,
    }


def _with_settings(overrides: dict, settings: Optional[list[str]], flags: dict[str, str]) -> dict:
    """``overrides`` plus the ``--set KEY=VALUE`` items (values as in TOML, see :func:`parse_value`).

    Args:
        flags: config key -> the option that sets it, so that a key given both ways is named.

    Raises:
        EvopruneError: an item without ``=``, or a key an option of the command also set.
    """
    out, given = dict(overrides), set()
    for item in settings or []:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or "." not in key:
            raise EvopruneError(
                f"Expected --set SECTION.KEY=VALUE (e.g. gmp.compression=24). Received: --set {item}"
            )
        if key in given:
            raise EvopruneError(f"{key} is given twice by --set. Received: --set {item}")
        if out.get(key) not in (None, "") and key in flags:
            raise EvopruneError(f"{key} is set by both {flags[key]} and --set. Received: --set {item}")
        given.add(key)
        value = parse_value(raw)
        if key == "search.layers" and isinstance(value, str):  # as --layers reads it: fc1,fc2 or a set
            value = _model_overrides(None, None, value)["search.layers"]
        out[key] = value
    data_keys = ("data.dataset", "data.data_dir", "data.data_file")
    if given.intersection(data_keys):  # --set data.* follows the data options' rules
        names = tuple(f"--set {k}=" if k in given else flags.get(k, k) + " " for k in data_keys)
        dataset, data_dir, data_file = (out.get(k) or None for k in data_keys)
        cleared = _data_overrides(dataset, data_dir, data_file, names=names)
        out.update({**cleared, **{k: out[k] for k in given.intersection(data_keys)}})  # --set as written
    return out


# the config keys each command's own options set (named when --set repeats one)
_FLAGS = {
    "data.dataset": "--dataset",
    "data.data_dir": "--data-dir",
    "data.data_file": "--data-file",
    "model.architecture": "--architecture",
    "model.model_file": "--model-file",
    "model.epochs": "--epochs",
    "search.layers": "--layers",
    "search.seed": "--seed",
    "search.algorithm": "--algorithm",
    "search.population": "--population",
    "search.generations": "--generations",
    "search.encoding": "--encoding",
    "search.crossover": "--crossover",
    "search.mutation": "--mutation",
    "search.evaluator": "--evaluator",
    "compare.seeds": "--seeds",
    "compare.algorithms": "--algorithms",
    "compare.executor": "--executor",
    "compare.workers": "--workers",
    "bench.seeds": "--seeds",
    "bench.executor": "--executor",
    "bench.workers": "--workers",
}


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)
    ] = False,
) -> None:
    if version:
        typer.echo(f"evoprune {__version__}")
        raise typer.Exit()


@app.command()
def train(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seed: SeedOpt = None,
    epochs: Annotated[
        Optional[int], typer.Option(help=f"Training epochs. \\[default: {_DEFAULTS.model.epochs}]")
    ] = None,
    architecture: ArchitectureOpt = None,
    model_file: ModelFileOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    settings: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train a built-in architecture (or load it from the cache, or a --model-file) and print its accuracy."""
    with user_errors(debug):
        overrides = {
            **_data_overrides(dataset, data_dir, data_file),
            "search.seed": seed,
            "model.epochs": epochs,
            **_model_overrides(architecture, model_file),
        }
        overrides = _with_settings(overrides, settings, _FLAGS)
        with _bars(quiet, verbose) as (progress, status):
            trained = api.train(config, overrides=overrides, status=status, progress=progress)
        how = (
            "the given model file"
            if trained.model_file
            else "loaded from cache"
            if trained.cached
            else f"trained in {trained.train_time_s:.1f} s"
        )
        typer.echo(f"model: {trained.path} ({how})")
        for split, value in trained.accuracy.items():
            typer.echo(f"{split} accuracy: {value:.4f}")


@app.command()
def run(
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Run directory to write (required unless --resume)."),
    ] = None,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seed: SeedOpt = None,
    algorithm: Annotated[
        Optional[Algorithm],  # type: ignore[valid-type]
        typer.Option(**_listed(Algorithm, "Pruning method", _DEFAULTS.search.algorithm)),
    ] = None,
    population: Annotated[
        Optional[int], typer.Option(help=f"Population size. \\[default: {_DEFAULTS.search.population}]")
    ] = None,
    generations: Annotated[
        Optional[int], typer.Option(help=f"Generations. \\[default: {_DEFAULTS.search.generations}]")
    ] = None,
    encoding: Annotated[
        Optional[Encoding],  # type: ignore[valid-type]
        typer.Option(**_listed(Encoding, "Genome", _DEFAULTS.search.encoding)),
    ] = None,
    crossover: Annotated[
        Optional[Crossover],  # type: ignore[valid-type]
        typer.Option(**_listed(Crossover, "Crossover", _DEFAULTS.search.crossover)),
    ] = None,
    mutation: Annotated[
        Optional[Mutation],  # type: ignore[valid-type]
        typer.Option(**_listed(Mutation, "Mutation", _DEFAULTS.search.mutation)),
    ] = None,
    evaluator: Annotated[
        Optional[Evaluator],  # type: ignore[valid-type]
        typer.Option(help=f"Scorer of a genome. \\[default: {_DEFAULTS.search.evaluator}]"),
    ] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue the interrupted run in this directory.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished or interrupted run in --out.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    settings: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run one pruning method (an evolutionary search or a baseline) and write a run directory."""
    with user_errors(debug):
        overrides = {
            **_data_overrides(dataset, data_dir, data_file),
            "search.seed": seed,
            "search.algorithm": _value(algorithm),
            "search.population": population,
            "search.generations": generations,
            "search.encoding": _value(encoding),
            "search.crossover": _value(crossover),
            "search.mutation": _value(mutation),
            "search.evaluator": _value(evaluator),
            **_model_overrides(architecture, model_file, layers),
        }
        overrides = _with_settings(overrides, settings, _FLAGS)
        if resume is None and out is None:
            raise EvopruneError("Missing option. Expected --out DIR (or --resume DIR).")
        if resume is not None and out is not None and Path(out).resolve() != Path(resume).resolve():
            raise EvopruneError(
                f"--out and --resume name different directories. Received: --out {out}, --resume {resume}"
            )
        where = resume if resume is not None else out
        assert where is not None  # one of them is given (checked above)
        with _bars(quiet, verbose) as (progress, status):
            result = api.prune(
                config=config,
                overrides=overrides,
                out=where,
                resume=resume is not None,
                overwrite=overwrite,
                progress=progress,
                status=status,
            )
        for line in describe(result.summary, result.config.data.fitness_split, Path(where)):
            typer.echo(line)


def _short_genome(genome: str, genes: int = 6) -> str:
    """A genome's first ``genes`` genes, then how many more (never cut inside a number); a mask
    (one hex string, a bit per weight) its first 16 hex digits, then how many there are."""
    values = genome.split()
    if len(values) == 1 and len(genome) > 24:
        return f"{genome[:16]}... (a mask, {len(genome)} hex digits)"
    more = f" ... ({len(values)} genes)" if len(values) > genes else ""
    return " ".join(values[:genes]) + more


def describe(summary: dict, fitness_split: str, out: Path) -> list[str]:
    """Lines a finished run prints: its best point, its selected model, evaluations, time and ``out``."""
    best, base = summary["best"], summary["baseline"]
    genome = (
        f"threshold {best['threshold']:.4g}"
        if "threshold" in best
        else f"genome {_short_genome(str(best.get('genome', '')))}"
    )
    chosen, tolerance = summary.get("selected"), summary["select"]["tolerance_pp"]
    within = plural(tolerance, "point")
    rule = f"smallest within {within} on {fitness_split}"
    if chosen and "within_tolerance" in chosen:  # a method that makes one model at its target
        rule = f"the target model, {'' if chosen['within_tolerance'] else 'not '}within {within}"
    selected = (
        f"nonzero {chosen['nonzero']} ({compression_text(chosen['compression'])}), "
        f"accuracy {chosen['accuracy']:.4f}, "
        f"test {chosen['test_accuracy']:.4f} (drop {chosen['test_drop_pp']:.2f} points)"
        if chosen
        else "none"
    )
    times = summary.get("times_s") or {}
    split = (
        ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) or f"search {summary['search_time_s']:.2f} s"
    )
    return [
        f"best: {genome}, nonzero {best['nonzero']}/{base['nonzero']} "
        f"({compression_text(best['compression'])}), "
        f"accuracy {best['accuracy']:.4f} (baseline {base['accuracy']:.4f}), test "
        f"{best['test_accuracy']:.4f}, fitness {best['fitness']:.4f}",
        f"selected ({rule}): {selected}",
        f"{plural(summary['evaluations'], 'evaluation')}, {split}, {summary['wall_time_s']:.1f} s in all; "
        f"results in {out}",
    ]


@app.command()
def compare(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the comparison.")],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seeds: Annotated[
        Optional[int],
        typer.Option(help=f"Number of seeds (0..N-1). \\[default: {_DEFAULTS.compare.seeds}]"),
    ] = None,
    algorithms: Annotated[
        Optional[str],
        typer.Option(help=f"Comma-separated. \\[default: {','.join(_DEFAULTS.compare.algorithms)}]"),
    ] = None,
    executor: Annotated[
        Optional[Executor],  # type: ignore[valid-type]
        typer.Option(help=f"Where a seed's trials run. \\[default: {_DEFAULTS.compare.executor}]"),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option(help=f"Worker processes. \\[default: {_DEFAULTS.compare.workers}]")
    ] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    settings: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compare algorithms across seeds at equal budgets; resumes an interrupted comparison."""
    with user_errors(debug, trials=out):
        names = tuple(a.strip() for a in algorithms.split(",") if a.strip()) if algorithms else None
        overrides = {
            **_data_overrides(dataset, data_dir, data_file),
            "compare.seeds": seeds,
            "compare.algorithms": names,
            "compare.executor": _value(executor),
            "compare.workers": workers,
            **_model_overrides(architecture, model_file, layers),
        }
        overrides = _with_settings(overrides, settings, _FLAGS)
        cfg = api.load_config(config, overrides, check_method=False)  # bad settings fail before any output
        with _trial_bar(quiet, verbose) as (bar, status):
            result = api.compare(cfg, out, progress=bar, status=status)
        typer.echo(
            result.medians()[
                ["hypervolume", "best_fitness", "best_test_accuracy", "nonzero_within_1pp"]
            ].to_string()
        )
        typer.echo(f"report: {out / 'report.md'}")


@app.command()
def bench(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the benchmark.")],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    executor: Annotated[
        Optional[Executor],  # type: ignore[valid-type]
        typer.Option(help=f"Where trials run. \\[default: {_DEFAULTS.bench.executor}]"),
    ] = None,
    scheduler: Annotated[
        Optional[str], typer.Option(help="Dask scheduler address to join (default: a LocalCluster).")
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option(help=f"Worker processes. \\[default: {_DEFAULTS.bench.workers}]")
    ] = None,
    seeds: Annotated[
        Optional[int], typer.Option(help=f"Seeds per grid cell. \\[default: {_DEFAULTS.bench.seeds}]")
    ] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    settings: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Benchmark genomes x algorithms x operator variants at equal budgets (resumable)."""
    with user_errors(debug, trials=out):
        chosen = _value(executor)
        overrides = {
            **_data_overrides(dataset, data_dir, data_file),
            "bench.seeds": seeds,
            "bench.executor": "dask" if scheduler and not chosen else chosen,
            "bench.workers": workers,
            **_model_overrides(architecture, model_file, layers),
        }
        overrides = _with_settings(overrides, settings, _FLAGS)
        cfg = api.load_config(config, overrides, check_method=False)  # bad settings fail before any output
        with _trial_bar(quiet, verbose) as (bar, status):
            table = api.bench(cfg, out, scheduler=scheduler, progress=bar, status=status)
        typer.echo(
            table[
                [
                    "cell",
                    "seeds",
                    "hv_median",
                    "a12_vs_paper",
                    "refined_nonzero_within_1pp",
                    "refined_test_drop_pp",
                ]
            ].to_string(index=False)
        )
        typer.echo(f"report: {out / 'report.md'}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .keras or .tflite file.")],
    rank: Annotated[
        Optional[int], typer.Option(help="Front point by rank (0 = best); default: the run's selected point.")
    ] = None,
    fmt: Annotated[
        Optional[Format],
        typer.Option(
            "--format",
            help="Artifact format; it must agree with the --out suffix. \\[default: from the --out suffix]",
        ),
    ] = None,
    shrink: Annotated[
        bool, typer.Option(help="Remove units and filters whose weights are all pruned.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Export a run's pruned (and fine-tuned, if refined) model, with a FILE.json sidecar."""
    with user_errors(debug):
        r = api.export(run_dir, out, format=_value(fmt), rank=rank, shrink=shrink)
        s = r.sidecar
        typer.echo(
            f"exported {r.path} ({r.format}{', shrunk' if r.shrunk else ''}): "
            f"{r.source} point {r.eval_index}{' (fine-tuned)' if r.refined else ''}"
        )
        typer.echo(
            f"nonzero pruned weights: {s['nonzero']} of {r.base_nonzero} "
            f"({r.base_nonzero / max(s['nonzero'], 1):.2f}x fewer); "
            f"stored parameters {s['stored_parameters']:,}"
        )
        typer.echo(
            f"size: {s['bytes']:,} bytes (unpruned {s['unpruned_bytes']:,}); gzip size: "
            f"{s['gzip_bytes']:,} bytes (unpruned {s['unpruned_gzip_bytes']:,} bytes)"
        )
        run_test = "n/a" if s["run_test_accuracy"] is None else f"{s['run_test_accuracy']:.4f}"
        typer.echo(
            f"test accuracy of the file: {s['test_accuracy']:.4f} (run reported {run_test}); "
            f"latency {s['latency_ms']:.3f} ms (unpruned {s['unpruned_latency_ms']:.3f} ms)"
        )
        typer.echo(f"sidecar: {r.sidecar_path}")


@app.command()
def evaluate(
    model: Annotated[
        Path, typer.Argument(help="A .keras or .tflite model file (legacy .h5 files are refused).")
    ],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    split: Annotated[Split, typer.Option(help="Data split.")] = Split.test,
    debug: DebugOpt = False,
) -> None:
    """Print the accuracy of a .keras or .tflite file on a data split (writes nothing)."""
    with user_errors(debug):
        kind = api.model_kind(model)  # a non-model file fails before the data loads
        cfg = api.load_config(config, _data_overrides(dataset, data_dir, data_file))
        data = api.load_data(config=cfg).split(split.value)
        value = api.evaluate(model, data)
        typer.echo(
            f"{split.value} accuracy: {value:.4f} ({plural(len(data[1]), 'image')}, {kind} file {model})"
        )


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    debug: DebugOpt = False,
) -> None:
    """Print a finished run's results again: method, curve levels, best point, selected model, times."""
    with user_errors(debug):
        s = api.load_summary(run_dir)
        front = f"; {plural(s['front_size'], 'front point')}" if "front_size" in s else ""
        typer.echo(f"{s['algorithm']} on {s['dataset']}, seed {s['seed']}{front}")
        for level in s.get("curve") or []:
            typer.echo(level_text(level))
        for line in describe(s, s.get("fitness_split", "validation"), run_dir):
            typer.echo(line)


PHASES = {
    "train": "training epoch",
    "search": "generation",
    "finetune": "fine-tuning point",
    "round": "round",
    "level": "level",
    "curve": "curve level",
    "retrain": "retraining epoch",
    "population": "member-round",
    "score": "test scoring",
    "trials": "trial",
}


def _quiet(*args) -> None:
    """A progress or status callback of ``--quiet``: prints nothing."""


@contextlib.contextmanager
def _bars(quiet: bool, verbose: bool = False):
    """One rich progress bar per phase, each with an ETA, and status lines printed above them.

    Yields ``(progress, status)``: ``progress(phase, done, total, note)`` and ``status(line)``.
    Status lines go through the bars' console, so they never stick to a live bar; with
    ``verbose`` every progress step with a note is printed as a line too. When stderr is
    not a terminal (a log file, a pipe) there are no bars: each phase prints a line with
    its ETA when it starts, every :data:`LOG_EVERY_S` seconds and when it reaches its total (see
    :class:`_ProgressLines`). ``quiet``: both print nothing.
    """
    if quiet and verbose:
        raise EvopruneError("Expected at most one of --quiet and --verbose. Received: both")
    if quiet:
        yield _quiet, _quiet
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        lines = _ProgressLines(verbose)
        yield lines.progress, lines.status
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    columns = (
        TextColumn("{task.fields[label]}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
    )
    tasks: dict[str, TaskID] = {}
    bars = Progress(*columns, console=console)  # started at the first step

    def status(message: str) -> None:
        bars.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def progress(phase: str, done: int, total: int, note: str = "") -> None:
        label = PHASES.get(phase, phase)
        if not tasks:
            bars.start()
        if phase not in tasks:
            tasks[phase] = bars.add_task(note, total=total or None, label=label)
        bars.update(tasks[phase], completed=done, total=total or None, description=note)
        if verbose and note:
            status(_step_line(label, done, total, note))

    try:
        yield progress, status
    finally:
        if tasks:
            bars.stop()


LOG_EVERY_S = 30.0
"""Seconds between a phase's progress lines when stderr is not a terminal."""


def _step_line(label: str, done: int, total: int, note: str = "", eta: str = "") -> str:
    """``generation 3/20 (eta 0:01:05): note``; a total of 0 (unknown) shows the count alone."""
    return f"{label} {step_text(done, total)}{f' ({eta})' if eta else ''}{': ' + note if note else ''}"


class _ProgressLines:
    """Progress for a log file or a pipe: plain lines with elapsed time and ETA, no bars.

    A phase prints a line at its first step, then at most one every :data:`LOG_EVERY_S`
    seconds, and once when it reaches its total. A phase whose count goes back (the next
    level's retraining), or repeats a finished count (levels of one epoch each), starts over.
    The ETA is the time per step since the phase started, steps counted from where it
    started (a resumed search from its checkpoint's generation). ``verbose``: a line at
    every step with a note.
    """

    def __init__(self, verbose: bool, clock=time.monotonic):
        self.verbose, self.clock = verbose, clock
        self.phases: dict[str, dict] = {}  # phase -> start time, first and last count, printed

    def status(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def progress(self, phase: str, done: int, total: int, note: str = "") -> None:
        now = self.clock()
        seen = self.phases.get(phase)
        if seen is None or done < seen["last"] or (done == seen["last"] and seen["ended"]):
            seen = self.phases[phase] = {"start": now, "first": done, "last": done, "at": now, "ended": False}
            due = True
        else:
            due = now - seen["at"] >= LOG_EVERY_S
        seen["last"] = done
        ending = bool(total) and done >= total and not seen["ended"]
        seen["ended"] = seen["ended"] or ending
        if not (due or ending or (self.verbose and note)):
            return
        seen["at"] = now
        elapsed, steps = now - seen["start"], done - seen["first"]
        times = [f"{_clock_text(elapsed)} elapsed"] if elapsed >= 1 else []
        if total and done < total and steps > 0 and elapsed >= 1:
            times.append(f"eta {_clock_text(elapsed / steps * (total - done))}")
        self.status(_step_line(PHASES.get(phase, phase), done, total, note, ", ".join(times)))


def _clock_text(seconds: float) -> str:
    """``0:01:05`` (hours:minutes:seconds, as rich's bars show time)."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@contextlib.contextmanager
def _trial_bar(quiet: bool, verbose: bool = False):
    """A progress bar over trials and status lines above it.

    Yields ``(update, status)``: ``update(trial, completed, total=None)`` after each trial
    saved (printed as a line with ``verbose``) and ``status(line)``.
    """
    with _bars(quiet, verbose) as (progress, status):

        def update(description: str, completed: int, total: int | None = None) -> None:
            progress("trials", completed, total or 0, description)

        yield update, status


def run_app(argv: list[str]) -> int:
    """Runs the CLI on ``argv``; usage errors, too, are one ``Error:`` line. Returns the exit code."""
    try:
        code = app(args=argv, prog_name="evoprune", standalone_mode=False)
    except typer.Abort:
        _err("aborted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.TyperException as exc:  # Click's usage errors, as vendored by Typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())
        else:
            _err(_usage_message(exc, argv))
        return int(getattr(exc, "exit_code", 2))
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console-script entry point (see :func:`run_app`)."""
    sys.exit(run_app(sys.argv[1:]))


def _usage_message(exc, argv: list[str]) -> str:
    """Click's message on one line, with the value given on the command line when known.

    A value that is not one of an option's choices gets the nearest choice as "did you mean".
    """
    message = " ".join(exc.format_message().split()).replace("Value error, ", "")
    message = message if message.endswith((".", "?", "!")) else message + "."
    param = getattr(exc, "param", None)
    for name in getattr(param, "opts", []) or []:
        for i, token in enumerate(argv):
            given = argv[i + 1] if token == name and i + 1 < len(argv) else None
            if given is None and token.startswith(name + "="):
                given = token.split("=", 1)[1]
            if given is not None:
                return f"{message}{_did_you_mean(message, given)} Received: {name} {_printable(given)}"
    return message


def _did_you_mean(message: str, given: str) -> str:
    """`` Did you mean 'x'?`` for a near-miss of the choices a message lists (nothing otherwise)."""
    import re

    listed = message.partition("is not one of")[2]
    near = nearest(given, re.findall(r"'([^']*)'", listed))
    return f" Did you mean {near!r}?" if near else ""


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so that a message stays one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


if __name__ == "__main__":  # pragma: no cover
    main()  # exits with run_app's code
