"""Do two comparisons agree? Every column of two ``trials.csv`` files, timings aside, row by row.

Rows are matched by ``algorithm`` and ``seed`` (``compare``) or ``key`` (``bench``); columns
only one file has are listed, not compared. Exit status 0 when every shared column is equal
(NaN equal to NaN), 1 otherwise, with the first rows that differ.

Run: ``python -m benchmarks.same_trials A/trials.csv B/trials.csv``
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

TIMINGS = ("search_time_s", "worker_pid")


def differences(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Shared columns that differ, and the rows where they do (both files' values)."""
    key = ["key"] if "key" in a else ["algorithm", "seed"]
    a, b = a.set_index(key).sort_index(), b.set_index(key).sort_index()
    if not a.index.equals(b.index):
        raise SystemExit(f"the files hold different trials: {sorted(set(a.index) ^ set(b.index))[:5]}")
    shared = [c for c in a.columns if c in b.columns and c not in TIMINGS]
    differ = [c for c in shared if not (a[c].isna() & b[c].isna() | (a[c] == b[c])).all()]
    rows = a.index[((a[differ] != b[differ]) & ~(a[differ].isna() & b[differ].isna())).any(axis=1)]
    return differ, pd.concat({"a": a.loc[rows, differ], "b": b.loc[rows, differ]}, axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(argv)
    a, b = pd.read_csv(args.a), pd.read_csv(args.b)
    only = sorted(set(a.columns) ^ set(b.columns))
    differ, rows = differences(a, b)
    print(f"{len(a)} trials; columns in one file only: {only or 'none'}")
    if not differ:
        print("every shared column is equal (timings aside)")
        return 0
    print(f"differing columns: {differ}\n{rows.head(10).to_string()}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
