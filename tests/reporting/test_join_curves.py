"""benchmarks/join_curves.py: a method's runs paired with a published comparison's curves."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from benchmarks import join_curves

COLUMNS = ["compression", "nonzero", "accuracy", "test_accuracy", "drop_pp", "test_drop_pp", "per_layer"]


def _run(path, seed: int, test_drops: list[float]):
    """A gmp-pbt run directory of two levels, the test drops given."""
    path.mkdir(parents=True)
    base = {"accuracy": 0.98, "test_accuracy": 0.98, "nonzero": 1000}
    rows = [
        [level, 1000 // level, 0.98, 0.98 - d / 100, 0.0, d, "{}"] for level, d in zip((10, 20), test_drops)
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path / "curve.csv", index=False)
    (path / "summary.json").write_text(json.dumps({"algorithm": "gmp-pbt", "seed": seed, "baseline": base}))
    return path


def test_runs_of_a_variant_pair_with_the_published_trials_of_its_method(tmp_path):
    published = []
    for seed in range(3):
        for name, drops in (("gmp-pbt", (0.1, 0.3)), ("gmp-global", (0.2, 0.4))):
            for level, d in zip((10, 20), drops):
                published.append([name, seed, level, 1000 // level, 0.98, 0.98 - d / 100, 0.0, d, "{}"])
    curves = tmp_path / "curves.csv"
    pd.DataFrame(published, columns=["algorithm", "seed", *COLUMNS]).to_csv(curves, index=False)
    runs = [_run(tmp_path / f"seed{s}", s, [0.0 + s / 100, 0.1]) for s in range(3)]

    with pytest.raises(SystemExit, match="one level in two inputs: gmp-pbt, seed 0, 10x"):
        join_curves.join([curves], runs)  # the runs' own name is taken by the published gmp-pbt

    out = tmp_path / "joined"
    join_curves.main(
        ["--out", str(out), "--subject", "gmp-pbt-loss", "--name", "gmp-pbt-loss", "--curves", str(curves)]
        + ["--runs", *map(str, runs)]
    )
    joined = pd.read_csv(out / "curves.csv")
    assert list(dict.fromkeys(joined["algorithm"])) == ["gmp-pbt", "gmp-global", "gmp-pbt-loss"]
    assert len(joined) == 3 * 3 * 2
    report = (out / "report.md").read_text()
    # the variant loses 0.18-0.20 point less than GMP global at 10x, 0.2 less than gmp-pbt at 20x
    assert "| 10x | gmp-global | 3 | -0.19 | 3 |" in report
    assert "| 20x | gmp-pbt | 3 | -0.20 | 3 |" in report
    assert (out / "curve.png").stat().st_size > 0
