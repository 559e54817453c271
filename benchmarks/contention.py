"""The paper's search under CPU contention: idle vs two CPU-bound processes beside it, in one script.

``evoprune run --config configs/paper.toml`` runs as a child process, alternately with
nothing else of ours running and with two busy processes (pure-Python loops) started
beside it, each with this script's CPU affinity (run the script under ``taskset`` to pin
all of them). The table gives each condition's median ``search_time_s`` (summary.json)
and the ratio busy / idle. Three processes sharing the cores the search may use get a
third of them each, so a search that slows by its fair share slows at most 3x; thread
pools sized beyond the usable cores spin against each other and slow it far more.

Run: ``python -m benchmarks.contention --data-dir DIR [--rounds N] [--quick]`` (the first
run trains the paper's model into the cache; it is not timed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import common

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper.toml"
TARGET = 3.0  # busy / idle search time, at most (three processes on the same cores)


def busy_processes(count: int) -> list[subprocess.Popen]:
    """``count`` CPU-bound processes (they inherit this process's affinity)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def search_time(args, out: Path) -> float:
    """One paper run; its ``search_time_s``."""
    cmd = [common.evoprune_executable(), "run", "--config", str(CONFIG), *common.data_cli_args(args)]
    cmd += ["--out", str(out), "--overwrite", "--quiet"]
    if args.quick:
        cmd += ["--generations", "5"]
    common.run_child(cmd, common.child_env(args))
    return float(json.loads((out / "summary.json").read_text())["search_time_s"])


def main(argv=None) -> int:
    def extra(parser) -> None:
        parser.add_argument("--rounds", type=int, default=3, help="runs per condition (default 3)")

    args = common.parse_args(__doc__.splitlines()[0], argv, extra)
    common.print_header("contention", args, import_tf=False)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    rounds = 1 if args.quick else max(1, args.rounds)
    print(f"cores:     {cores} (this script, its runs and its busy processes)")
    print(f"rounds:    {rounds} per condition, alternating, after one untimed run")
    sys.stdout.flush()
    out = Path(common.make_temp_dir("evoprune-contention-")) / "run"
    search_time(args, out)  # trains and caches the model; warms the file cache
    times: dict[str, list[float]] = {"idle": [], "2 busy processes": []}
    for _ in range(rounds):
        times["idle"].append(search_time(args, out))
        busy = busy_processes(2)
        try:
            times["2 busy processes"].append(search_time(args, out))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    idle = common.median(times["idle"])
    rows = [
        [
            name,
            common.fmt_s(common.median(t)),
            ", ".join(f"{x:.3f}" for x in t),
            common.ratio(common.median(t), idle, 2),
        ]
        for name, t in times.items()
    ]
    common.print_table(
        "paper search time (search_time_s)", ["condition", "median", "runs (s)", "vs idle"], rows
    )
    ratio = common.median(times["2 busy processes"]) / idle
    print(f"\nbusy / idle: {ratio:.2f}x (target <= {TARGET:g}x): {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
