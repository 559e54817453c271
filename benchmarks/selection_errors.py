"""How often 'within tolerance on validation' is wrong: the point estimate against the confidence bound.

Reads a comparison's ``curves.csv`` (``evoprune compare`` with ``select.compressions`` and
``select.confidence`` set, so each curve model has its ``loss_bound_pp``) and, for every
model, compares three verdicts at ``--tolerance`` points:

- the point estimate on validation (``drop_pp <= tolerance``), evoprune's rule without
  ``select.confidence``;
- the paired confidence bound (``loss_bound_pp <= tolerance``), the rule with it;
- the test split (``test_drop_pp <= tolerance``), an independent judge (itself noisy: 0.1
  point is 10 of 10,000 test images).

A false accept is a model accepted on validation that the test split rejects.

Run: ``python -m benchmarks.selection_errors OUT/curves.csv [--tolerance 0.1]``
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def rates(curves: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Accept and error counts of both validation rules against the test split's verdict."""
    truth = curves["test_drop_pp"] <= tolerance
    rows = []
    for name, accepted in (
        ("point estimate", curves["drop_pp"] <= tolerance),
        ("confidence bound", curves["loss_bound_pp"] <= tolerance),
    ):
        rows.append(
            {
                "rule": name,
                "models": len(curves),
                "accepted": int(accepted.sum()),
                "false accepts": int((accepted & ~truth).sum()),
                "false-accept rate": float((accepted & ~truth).sum() / max(accepted.sum(), 1)),
                "false rejects": int((~accepted & truth).sum()),
                "test accepts": int(truth.sum()),
            }
        )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", help="a comparison's curves.csv")
    parser.add_argument("--tolerance", type=float, default=0.1)
    args = parser.parse_args(argv)
    curves = pd.read_csv(args.curves)
    if "loss_bound_pp" not in curves:
        parser.error("curves.csv has no loss_bound_pp column: run compare with select.confidence set")
    print(rates(curves, args.tolerance).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
