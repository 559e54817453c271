"""Peak memory: a full ``evoprune run`` (paper config) vs ``python -c "import tensorflow"``.

Each command runs as a child process; its peak resident set size is ``ru_maxrss`` of that
child alone (``os.wait4``). ``evoprune run`` runs twice in a fresh cache directory (under
``--cache-dir``): first it trains the model (5 epochs) in-process, then it loads it from the
cache, which is the usual case.

Run: ``python -m benchmarks.memory [--data-dir DIR] [--cache-dir DIR] [--quick]``
(``--quick`` runs 2 generations and 1 training epoch).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks import common


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.print_header("memory", args, import_tf=False)
    fresh = tempfile.mkdtemp(prefix="memory-bench-", dir=args.cache_dir)
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)
    env = common.child_env(args)
    env["EVOPRUNE_CACHE_DIR"] = str(Path(fresh) / "models")
    run = [
        common.evoprune_executable(),
        "run",
        *common.data_cli_args(args),
        "--algorithm",
        "paper",
        "--population",
        "20",
        "--generations",
        "2" if args.quick else "30",
        "--seed",
        "0",
    ]
    if args.quick:  # one epoch through a config file: the run command has no --epochs option
        config = Path(fresh) / "quick.toml"
        config.write_text("[model]\nepochs = 1\n", encoding="utf-8")
        run += ["--config", str(config)]
    print(f"command:   {' '.join(run)} --out DIR")
    sys.stdout.flush()

    rows = {}
    for name, cmd in [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ('python -c "import tensorflow"', [sys.executable, "-c", "import tensorflow"]),
        ("evoprune run (trains the model)", run + ["--out", str(Path(fresh) / "run1")]),
        ("evoprune run (cached model)", run + ["--out", str(Path(fresh) / "run2")]),
    ]:
        rows[name] = common.run_child(cmd, env)[:2]
    base = rows['python -c "import tensorflow"'][1]
    common.print_table(
        "Peak resident set size (ru_maxrss of the child process)",
        ["command", "peak RSS", "vs import tensorflow", "wall time"],
        [
            [name, common.fmt_mib(kib), common.ratio(kib, base, 2), common.fmt_s(wall)]
            for name, (wall, kib) in rows.items()
        ],
    )
    summary = Path(fresh) / "run2" / "summary.json"
    if summary.is_file():
        import json

        s = json.loads(summary.read_text(encoding="utf-8"))
        print(
            f"\ncached run: model_cached={s['model_cached']}, {s['evaluations']} evaluations, "
            f"dataset {s['dataset']}, fitness split {s['fitness_split']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
