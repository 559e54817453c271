"""Command-line start-up: ``evoprune --help`` vs a bare interpreter, with ``import tensorflow`` for context.

Each command runs as a child process (output discarded) several times, alternating
commands round by round; the table shows the median and min wall times and the ratio of
medians to ``python -c pass``. The ``evoprune`` console script is the one installed beside
this interpreter (not a version-manager shim), so both sides start the same Python.

Run: ``python -m benchmarks.startup [--data-dir DIR] [--cache-dir DIR] [--quick]``
(data and cache are not used; ``--rounds N`` sets the timed runs, default 5;
``--quick`` runs 2).
"""

from __future__ import annotations

import sys

from benchmarks import common


def main(argv=None) -> int:
    def extra(parser) -> None:
        parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command (default 5)")

    args = common.parse_args(__doc__.splitlines()[0], argv, extra)
    common.print_header("startup", args, import_tf=False)
    rounds = 2 if args.quick else max(1, args.rounds)
    evoprune = common.evoprune_executable()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "evoprune --help": [evoprune, "--help"],
        "python -m evoprune --help": [sys.executable, "-m", "evoprune", "--help"],
        'python -c "import evoprune.cli"': [sys.executable, "-c", "import evoprune.cli"],
        'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
    }
    print(f"evoprune:  {evoprune}")
    print(f"rounds:    {rounds} (+1 discarded warm-up round)")
    sys.stdout.flush()
    env = common.child_env()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_index in range(rounds + 1):
        for name, cmd in commands.items():
            elapsed = common.run_child(cmd, env)[0]
            if round_index:  # round 0 warms the file-system cache
                times[name].append(elapsed)
    base = common.median(times["python -c pass"])
    rows = [
        [name, common.fmt_s(common.median(t)), common.fmt_s(min(t)), common.ratio(common.median(t), base)]
        for name, t in times.items()
    ]
    common.print_table(
        "Start-up wall time (child process)", ["command", "median", "min", "vs python -c pass"], rows
    )
    tf_imported = _cli_imports_tensorflow()
    print(f"\nimporting evoprune.cli imports tensorflow: {'YES' if tf_imported else 'NO'}")
    return 0


def _cli_imports_tensorflow() -> bool:
    """Whether importing the CLI module pulls TensorFlow in (checked in a child process)."""
    import subprocess

    code = "import sys, evoprune.cli; sys.exit(0 if 'tensorflow' in sys.modules else 3)"
    return (
        subprocess.run([sys.executable, "-c", code], env=common.child_env(), capture_output=True).returncode
        == 0
    )


if __name__ == "__main__":
    sys.exit(main())
