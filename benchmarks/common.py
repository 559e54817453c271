"""Helpers shared by the benchmarks: arguments, data/cache resolution, timing and tables.

Every benchmark accepts the same three options:

* ``--data-dir DIR``: MNIST IDX files; default ``$EVOPRUNE_DATA_DIR``, else the bundled
  ``mnist-sample`` dataset shipped inside the package;
* ``--cache-dir DIR``: where trained models are cached; default ``$EVOPRUNE_CACHE_DIR``,
  else a temporary directory removed at exit;
* ``--quick``: a shorter smoke run.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any TensorFlow import


def parse_args(
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parses the common options (plus any ``extra`` ones) and resolves the cache directory."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("EVOPRUNE_DATA_DIR", ""),
        help="MNIST IDX directory (default: $EVOPRUNE_DATA_DIR, else the bundled mnist-sample dataset)",
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("EVOPRUNE_CACHE_DIR", ""),
        help="model cache directory (default: $EVOPRUNE_CACHE_DIR, else a temporary "
        "directory removed at exit)",
    )
    parser.add_argument("--quick", action="store_true", help="shorter smoke run")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.data_dir and not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir is not a directory: {args.data_dir}")
    args.cache_dir = args.cache_dir or make_temp_dir("evoprune-bench-cache-")
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
    return args


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up lines silenced (evoprune's own helper)."""
    sys.stderr.flush()
    from evoprune.models.training import import_tensorflow_quietly as quiet_import

    quiet_import()


def make_temp_dir(prefix: str) -> str:
    """A temporary directory that is removed when the process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def data_label(args: argparse.Namespace) -> str:
    return args.data_dir or "mnist-sample (bundled)"


def data_config(args: argparse.Namespace, **overrides):
    """A ``DataConfig`` for ``--data-dir`` (or the bundled sample when it is empty)."""
    from evoprune.config import DataConfig

    dataset = "mnist" if args.data_dir else "mnist-sample"
    return DataConfig(dataset=dataset, data_dir=args.data_dir, **overrides)


def data_cli_args(args: argparse.Namespace) -> list[str]:
    """The ``evoprune`` CLI options selecting the same data as ``data_config``."""
    return ["--data-dir", args.data_dir] if args.data_dir else ["--dataset", "mnist-sample"]


def evoprune_executable() -> str:
    """The ``evoprune`` console script installed beside this interpreter (not a shell shim)."""
    beside = Path(sys.executable).parent / "evoprune"
    if beside.is_file():
        return str(beside)
    found = shutil.which("evoprune")
    if not found:
        raise SystemExit("evoprune console script not found; install the project (pip install -e .)")
    return found


def child_env(args: argparse.Namespace | None = None) -> dict[str, str]:
    """Environment for child processes: quiet TensorFlow, and the benchmark's cache dir."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if args is not None:
        env["EVOPRUNE_CACHE_DIR"] = args.cache_dir
    return env


def timed(fn: Callable, *a, **kw) -> tuple[object, float]:
    """Calls ``fn`` once; returns its result and the elapsed wall time in seconds."""
    start = time.perf_counter()
    result = fn(*a, **kw)
    return result, time.perf_counter() - start


def repeat_time(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn``."""
    return [timed(fn)[1] for _ in range(repeats)]


def run_child(
    cmd: Sequence[str], env: dict[str, str] | None = None, check: bool = True
) -> tuple[float, int, int]:
    """Runs a child process with output discarded.

    Returns:
        wall seconds, peak resident set size in KiB (``ru_maxrss`` of that child alone,
        via ``os.wait4``) and the exit code.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr:
        proc.stderr.close()
    if check and proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    return elapsed, int(usage.ru_maxrss), proc.returncode


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(numerator: float, denominator: float, digits: int = 1) -> str:
    """``numerator / denominator`` as ``12.3x`` (``n/a`` for a zero denominator)."""
    return f"{numerator / denominator:,.{digits}f}x" if denominator else "n/a"


def fmt_s(seconds: float) -> str:
    """Seconds with a unit that keeps 3-4 significant digits (s, ms or us)."""
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} us"


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Prints a plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def print_header(name: str, args: argparse.Namespace, import_tf: bool = True) -> None:
    """Prints the benchmark, machine and data; then imports TensorFlow quietly (``import_tf``)."""
    print(f"benchmark: {name}{' (--quick)' if args.quick else ''}")
    print(f"machine:   {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"data:      {data_label(args)}")
    print(f"cache:     {args.cache_dir}")
    sys.stdout.flush()
    if import_tf:
        import_tensorflow_quietly()


def library_versions() -> str:
    import keras
    import numpy
    import tensorflow as tf

    return f"TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {numpy.__version__}"
