"""Typer command-line interface: thin commands over the library (TensorFlow imported lazily)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from evoprune.errors import EvopruneError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter quiet

app = typer.Typer(
    help="Prune neural network weights with evolutionary algorithms (DEAP + Keras).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file.")]
DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        help="mnist-sample (bundled) or a tensorflow-datasets image classification name "
        "(mnist, cifar10, ...)."
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
SeedOpt = Annotated[Optional[int], typer.Option(help="Seed for training and search.")]
ArchitectureOpt = Annotated[
    Optional[str],
    typer.Option(help="Built-in architecture: paper-cnn, lenet-300-100 or lenet-5 (sized from the data)."),
]
ModelFileOpt = Annotated[
    Optional[Path],
    typer.Option(help="Prune this Keras classifier (.keras) instead of training a built-in one."),
]
LayersOpt = Annotated[
    Optional[str], typer.Option(help="Pruned layers: head, dense, all, or comma-separated layer names.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]


def _err(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turns user errors into one line on stderr and exit code 1 (tracebacks with --debug)."""
    from evoprune.search.checkpoint import SearchInterrupted

    try:
        yield
    except SearchInterrupted as exc:
        _err(str(exc))
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
        _err("interrupted")
        raise typer.Exit(code=130) from None


def _import_tensorflow_quietly() -> None:
    from evoprune.models.training import import_tensorflow_quietly

    import_tensorflow_quietly()


def _load(config: Optional[Path], overrides: dict):
    from evoprune.config import load_config

    return load_config(config).with_overrides(overrides)


def _data_overrides(dataset: Optional[str], data_dir: Optional[Path], data_file: Optional[Path]) -> dict:
    """Data options over the config file: ``--data-dir`` clears the file's ``data_file`` and vice versa.

    Both given: both are set, and the config validation names them.
    """
    return {
        "data.dataset": dataset,
        "data.data_dir": str(data_dir) if data_dir else ("" if data_file else None),
        "data.data_file": str(data_file) if data_file else ("" if data_dir else None),
    }


def _model_overrides(
    architecture: Optional[str], model_file: Optional[Path], layers: Optional[str] = None
) -> dict:
    """Config overrides of the model options; ``--layers a,b`` names layers, ``--layers all`` a set."""
    from evoprune.models.target import LAYER_SETS

    names = tuple(n.strip() for n in layers.split(",") if n.strip()) if layers is not None else None
    if names and len(names) == 1 and names[0] in LAYER_SETS:
        names = names[0]
    return {
        "model.architecture": architecture,
        "model.model_file": str(model_file) if model_file else None,
        "search.layers": names,
    }


def _status(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def train(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seed: SeedOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs.")] = None,
    architecture: ArchitectureOpt = None,
    model_file: ModelFileOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train a built-in architecture (or load it from the cache, or a --model-file) and print its accuracy."""
    with user_errors(debug):
        cfg = _load(
            config,
            {
                **_data_overrides(dataset, data_dir, data_file),
                "search.seed": seed,
                "model.epochs": epochs,
                **_model_overrides(architecture, model_file),
            },
        )
        _import_tensorflow_quietly()
        from evoprune.experiments.run import prepare
        from evoprune.models.training import accuracy

        prepared = prepare(cfg, _status)
        trained, ds = prepared.trained, prepared.dataset
        how = (
            "the given model file"
            if cfg.model.model_file
            else "loaded from cache"
            if trained.cached
            else f"trained in {trained.train_time_s:.1f} s"
        )
        typer.echo(f"model: {trained.path} ({how})")
        for split in ("validation", "test"):
            if len(ds.split(split)[1]):
                typer.echo(f"{split} accuracy: {accuracy(trained.model, ds.split(split)):.4f}")


@app.command()
def run(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to write.")] = None,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seed: SeedOpt = None,
    algorithm: Annotated[
        Optional[str],
        typer.Option(help="paper, nsga2, spea2, nsga3, tournament or magnitude (the baseline)."),
    ] = None,
    population: Annotated[Optional[int], typer.Option(help="Population size.")] = None,
    generations: Annotated[Optional[int], typer.Option(help="Generations.")] = None,
    evaluator: Annotated[Optional[str], typer.Option(help="fast or exact.")] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue the interrupted run in this directory.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished run in --out.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run one evolutionary pruning search and write a run directory (checkpointed)."""
    start = time.perf_counter()
    with user_errors(debug):
        overrides = {
            **_data_overrides(dataset, data_dir, data_file),
            "search.seed": seed,
            "search.algorithm": algorithm,
            "search.population": population,
            "search.generations": generations,
            "search.evaluator": evaluator,
            **_model_overrides(architecture, model_file, layers),
        }
        from evoprune.experiments import rundir

        out, cfg = rundir.run_config(out, resume, config, overrides)
        rundir.check_run_dir(out, resume is not None, overwrite)  # creates nothing yet
        _import_tensorflow_quietly()
        from evoprune.experiments.run import prepare, run_search
        from evoprune.search.checkpoint import GracefulInterrupt

        prepared = prepare(cfg, _status)  # bad data or model fail here, before any write
        with (
            rundir.open_run(out, cfg, resume is not None, overwrite),
            GracefulInterrupt(f"evoprune run --resume {out}") as interrupt,
            _progress(cfg.search.generations, cfg.search.algorithm) as observer,
        ):
            result = run_search(
                cfg,
                observers=[observer, interrupt.check],
                prepared=prepared,
                status=_status,
                checkpoint_dir=out,
                resume=resume is not None,
            )
            rundir.finish_run(result, out, time.perf_counter() - start)
        from evoprune.reporting.results import describe

        for line in describe(result.summary, cfg.data.fitness_split, out):
            typer.echo(line)


@app.command()
def compare(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the comparison.")],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    seeds: Annotated[Optional[int], typer.Option(help="Number of seeds (0..N-1).")] = None,
    algorithms: Annotated[
        Optional[str], typer.Option(help="Comma-separated, e.g. paper,nsga2,spea2,nsga3.")
    ] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compare algorithms across seeds at equal budgets; resumes an interrupted comparison."""
    with user_errors(debug):
        names = tuple(a.strip() for a in algorithms.split(",") if a.strip()) if algorithms else None
        cfg = _load(
            config,
            {
                **_data_overrides(dataset, data_dir, data_file),
                "compare.seeds": seeds,
                "compare.algorithms": names,
                **_model_overrides(architecture, model_file, layers),
            },
        )
        from evoprune.experiments import compare as cmp

        with _bar("trials", cmp.total_trials(cfg)) as bar:
            result = cmp.run_compare(cfg, out, progress=bar)
        typer.echo(
            cmp.median_table(result.trials)[
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
    executor: Annotated[Optional[str], typer.Option(help="local, dask or serial.")] = None,
    scheduler: Annotated[
        Optional[str], typer.Option(help="Dask scheduler address to join (default: a LocalCluster).")
    ] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes.")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per grid cell.")] = None,
    model_file: ModelFileOpt = None,
    architecture: ArchitectureOpt = None,
    layers: LayersOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Benchmark genomes x algorithms x operator variants at equal budgets (resumable)."""
    with user_errors(debug):
        cfg = _load(
            config,
            {
                **_data_overrides(dataset, data_dir, data_file),
                "bench.seeds": seeds,
                "bench.executor": "dask" if scheduler and not executor else executor,
                "bench.workers": workers,
                **_model_overrides(architecture, model_file, layers),
            },
        )
        from evoprune.experiments.bench import run_bench

        with _bar("trials", 1) as bar:
            table = run_bench(cfg, out, scheduler=scheduler, progress=bar)
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
        Optional[str], typer.Option("--format", help="keras or tflite (default: from the --out suffix).")
    ] = None,
    shrink: Annotated[
        bool, typer.Option(help="Remove units and filters whose weights are all pruned.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Export a run's pruned (and fine-tuned, if refined) model, with a FILE.json sidecar."""
    with user_errors(debug):
        _import_tensorflow_quietly()
        from evoprune.models.export import export_model

        r = export_model(run_dir, out, rank, fmt, shrink)
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
    model: Annotated[Path, typer.Argument(help="A .keras or .tflite model file.")],
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data_file: DataFileOpt = None,
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
    debug: DebugOpt = False,
) -> None:
    """Print the accuracy of a .keras or .tflite file on a data split (writes nothing)."""
    with user_errors(debug):
        cfg = _load(config, _data_overrides(dataset, data_dir, data_file))
        from evoprune.data.dataset import load_dataset
        from evoprune.models.deploy import kind_of

        kind = kind_of(model)  # a non-model file fails before the data loads
        data = load_dataset(cfg.data).split(split)
        _import_tensorflow_quietly()
        from evoprune.models.deploy import file_accuracy

        typer.echo(
            f"{split} accuracy: {file_accuracy(model, data):.4f} "
            f"({len(data[1]):,} images, {kind} file {model})"
        )


@contextlib.contextmanager
def _bar(label: str, total: int):
    """A rich progress bar; yields ``update(description, completed)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("", total=total)

        def update(description: str, completed: int, new_total: int | None = None) -> None:
            progress.update(
                task, description=description, completed=completed, total=new_total or progress.tasks[0].total
            )

        yield update


@contextlib.contextmanager
def _progress(generations: int, algorithm: str):
    """A rich progress bar over generations, as a loop observer (none for the magnitude
    baseline: it has rounds, reported as status lines, not generations)."""
    from evoprune.refine.magnitude import MAGNITUDE

    if algorithm == MAGNITUDE:
        yield lambda state: None
        return
    with _bar("generation", generations) as update:

        def observer(state) -> None:
            row = state.logbook[-1]
            update(f"best fitness {row['fitness_max']:.4f}, evals {row['evaluations']}", state.generation)

        yield observer


def main() -> None:
    """Console-script entry point: usage errors, too, are one ``Error:`` line (exit 2)."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        _err("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # Click's usage errors, as vendored by Typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())
        else:
            _err(_usage_message(exc, sys.argv[1:]))
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _usage_message(exc, argv: list[str]) -> str:
    """Click's message on one line, with the value given on the command line when known."""
    message = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    for name in getattr(param, "opts", []) or []:
        for i, token in enumerate(argv):
            if token == name and i + 1 < len(argv):
                return f"{message} Received: {name} {_printable(argv[i + 1])}"
            if token.startswith(name + "="):
                return f"{message} Received: {_printable(token)}"
    return message


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so that a message stays one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
