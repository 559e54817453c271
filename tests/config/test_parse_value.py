"""``parse_value``: a ``--set`` value read as in a TOML file, bare words as strings."""

from __future__ import annotations

import pytest

from evoprune.config import parse_value


@pytest.mark.parametrize(
    "text, value",
    [
        ("24", 24),
        (" 0.5 ", 0.5),
        ("true", True),
        ("[12, 24.5]", [12, 24.5]),
        ('"global"', "global"),
        ("global", "global"),
        ("fc1,fc2", "fc1,fc2"),
        ("[nsga2, spea2]", ["nsga2", "spea2"]),
        ('[nsga2, "spea2", 3]', ["nsga2", "spea2", 3]),
        ("[]", []),
        ("{fc1 = 0.1, fc2 = 0.5}", {"fc1": 0.1, "fc2": 0.5}),
        ("2024-01-01", "2024-01-01"),  # no key takes a date
        ("", ""),
    ],
)
def test_values_read_as_toml_writes_them(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)
