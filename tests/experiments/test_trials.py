"""trials: within(pp) at its boundary, and the store that resumes compare and bench by key."""

from __future__ import annotations

import pandas as pd
import pytest

from evoprune.errors import EvopruneError
from evoprune.experiments.trials import TrialStore
from evoprune.reporting.metrics import accuracy_bar, within


def _key(row: dict) -> str:
    return f"{row['algorithm']}/seed{int(row['seed'])}"


def test_within_counts_a_loss_of_exactly_pp_points():
    table = pd.DataFrame({"accuracy": [0.99, 0.98, 0.97], "nonzero": [900, 500, 100]})
    assert accuracy_bar(0.99, 1.0) < 0.98 < accuracy_bar(0.99, 0.99)
    assert within(table, 0.99, 1.0) == 500
    assert within(table, 0.99, 0.99) == 900
    assert within(table, 0.995, 0.1) is None


def test_store_commits_rows_last_and_resumes_only_committed_trials(tmp_path):
    seen = []
    store = TrialStore(
        tmp_path,
        _key,
        ("fronts", "generations"),
        ("algorithm", "seed"),
        progress=lambda *a: seen.append(a),
        total=3,
    )
    front = [{"accuracy": 0.9, "nonzero": 10}, {"accuracy": 0.8, "nonzero": 5}]
    store.add(
        {"algorithm": "paper", "seed": 0, "nonzero_within_1pp": None, "hypervolume": 0.5},
        front,
        [{"algorithm": "paper", "seed": 0, "gen": 0, "hypervolume": 0.5}],
    )
    store.add({"algorithm": "nsga2", "seed": 0, "nonzero_within_1pp": 7, "hypervolume": 0.6}, front[:1], [])
    assert seen == [("paper/seed0", 1, 3), ("nsga2/seed0", 2, 3)]
    assert (tmp_path / "trials.csv").read_text().splitlines()[2] == "nsga2,0,7,0.6"  # counts stay integers
    fronts = pd.read_csv(tmp_path / "fronts.csv")
    assert list(fronts.columns) == ["algorithm", "seed", "accuracy", "nonzero"] and len(fronts) == 3
    # a front written by a trial that died before its trials.csv row is dropped on resume
    pd.concat([fronts, fronts.assign(algorithm="spea2")]).to_csv(tmp_path / "fronts.csv", index=False)
    again = TrialStore(tmp_path, _key, ("fronts", "generations"), ("algorithm", "seed"))
    assert again.done == {"paper/seed0", "nsga2/seed0"}
    assert set(again.tables["fronts"]["algorithm"]) == {"paper", "nsga2"}
    assert len(again.tables["generations"]) == 1


def test_store_refuses_an_unreadable_trials_file(tmp_path):
    (tmp_path / "trials.csv").write_text("seed\n0\n")  # no algorithm column: not this command's trials
    with pytest.raises(EvopruneError, match="Cannot resume"):
        TrialStore(tmp_path, _key)
