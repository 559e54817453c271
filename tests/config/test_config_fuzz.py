"""Property-based fuzzing of the config schema and the CLI: one ``Error:`` line or a valid run."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evoprune.cli import main
from evoprune.config import _SECTIONS, POPULATION_MAX, SEED_MAX, Config
from evoprune.errors import ConfigError
from evoprune.experiments.configure import from_dict, load_config

FIELDS = {name: {f.name: type(f.default) for f in dataclasses.fields(cls)} for name, cls in _SECTIONS.items()}
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), text)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), scalars, max_size=2),
)
known_key = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda s: st.tuples(st.just(s), st.sampled_from(sorted(FIELDS[s])))
)
unknown_key = st.tuples(
    st.sampled_from(sorted(FIELDS)), st.from_regex(r"[a-z_]{1,10}", fullmatch=True)
).filter(lambda sk: sk[1] not in FIELDS[sk[0]])
unknown_section = st.tuples(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda s: s not in FIELDS), st.just("key")
)
entries = st.lists(
    st.tuples(st.one_of(known_key, known_key, unknown_key, unknown_section), values), max_size=6
)


def _numeric_fields():
    return [(s, k) for s, keys in FIELDS.items() for k, t in keys.items() if t in (int, float)]


def _invalid_value(section: str, key: str):
    """Values no numeric field accepts: non-finite, far out of range, or of the wrong type."""
    kind = FIELDS[section][key]
    bad = [st.just(math.nan), st.just(math.inf), st.just(-math.inf), text.map(lambda t: "x" + t)]
    if kind is int:
        bad += [st.integers(max_value=-1), st.integers(min_value=2**62 + 1), st.floats(0.1, 0.9)]
    return st.one_of(*bad)


invalid_entry = st.one_of(
    st.sampled_from(_numeric_fields()).flatmap(lambda sk: st.tuples(st.just(sk), _invalid_value(*sk))),
    st.tuples(unknown_key, values),
    st.tuples(unknown_section, values),
)


def _raw(pairs) -> dict:
    raw: dict = {}
    for (section, key), value in pairs:
        raw.setdefault(section, {})[key] = value
    return raw


def _check_invariants(config: Config) -> None:
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, float):
                assert math.isfinite(value), (section, key, value)
    assert 0 <= config.search.seed <= SEED_MAX and 0 <= config.data.split_seed <= SEED_MAX
    assert 4 <= config.search.population <= POPULATION_MAX


@FUZZ
@given(entries)
def test_from_dict_refuses_with_config_error_or_builds_a_valid_config(pairs):
    try:
        config = from_dict(_raw(pairs))
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc) and "Received" in str(exc)
        return
    _check_invariants(config)
    with tempfile.TemporaryDirectory() as tmp:  # what a run writes, it reads back identically
        path = Path(tmp) / "config.toml"
        path.write_text(config.to_toml(), encoding="utf-8")
        assert load_config(path) == config


@FUZZ
@given(entries, invalid_entry)
def test_any_invalid_entry_is_refused_naming_it(pairs, bad):
    (section, key), value = bad
    raw = _raw([*[p for p in pairs if p[0] != (section, key)], bad])
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    assert "\n" not in str(info.value)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # nan, inf and -inf are TOML floats too
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _toml(raw: dict) -> str:
    return "".join(
        f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in keys.items())
        for section, keys in raw.items()
    )


def _cli(args: list[str]) -> tuple[int, str]:
    """Runs the console script's ``main`` in-process; returns the exit code and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["evoprune", *args]), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            return exc.code, err.getvalue()
    return 0, err.getvalue()


def _assert_one_error_line(code: int, stderr: str, out: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert code not in (0, None), stderr
    assert len(errors) == 1 and lines[-1] == errors[0], stderr  # status lines may come before it
    assert "Traceback" not in stderr
    assert not out.exists()  # refused before --out is created


@FUZZ
@given(st.sampled_from(["train", "run"]), entries, invalid_entry)
def test_cli_refuses_bad_config_files_in_one_line(command, pairs, bad):
    raw = _raw([*[p for p in pairs if p[0] != bad[0]], bad])
    with tempfile.TemporaryDirectory() as tmp:
        config, out = Path(tmp) / "c.toml", Path(tmp) / "out"
        config.write_text(_toml(raw), encoding="utf-8")
        args = [command, "--config", str(config)] + (["--out", str(out)] if command == "run" else [])
        _assert_one_error_line(*_cli(args), out)


def _not_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return True
    return False


def _out_of(low: int, high: int):
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))


not_int = text.filter(_not_int)
bad_choice = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True).filter(
    lambda t: t not in ("paper", "nsga2", "spea2", "nsga3", "tournament", "fast", "exact", "mnist")
)
BAD_OPTIONS = {
    "train": st.one_of(
        st.tuples(st.just("--seed"), _out_of(0, SEED_MAX)),
        st.tuples(st.just("--epochs"), _out_of(1, 100_000)),
        st.tuples(st.sampled_from(["--seed", "--epochs"]), not_int),
        st.tuples(st.just("--dataset"), bad_choice),
    ),
    "run": st.one_of(
        st.tuples(st.just("--seed"), _out_of(0, SEED_MAX)),
        st.tuples(st.just("--population"), _out_of(4, POPULATION_MAX)),
        st.tuples(st.just("--generations"), _out_of(0, 10**9)),
        st.tuples(st.sampled_from(["--seed", "--population", "--generations"]), not_int),
        st.tuples(st.sampled_from(["--algorithm", "--evaluator", "--dataset"]), bad_choice),
    ),
}


@FUZZ
@given(st.sampled_from(["train", "run"]).flatmap(lambda c: st.tuples(st.just(c), BAD_OPTIONS[c])))
def test_cli_refuses_bad_options_in_one_line(case):
    command, (name, value) = case
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        args = [command, "--dataset", "mnist-sample", f"{name}={value}"]
        _assert_one_error_line(*_cli(args + (["--out", str(out)] if command == "run" else [])), out)


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    algorithm=st.sampled_from(["paper", "nsga2", "spea2", "tournament"]),
    generations=st.integers(0, 2),
    cxpb=st.floats(0.0, 1.0),
)
def test_valid_configs_run(tmp_path, prepared, sample_config, algorithm, generations, cxpb):
    config = sample_config.with_overrides(
        {"search.algorithm": algorithm, "search.cxpb": cxpb, "search.generations": generations}
    )
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        path, out = Path(tmp) / "c.toml", Path(tmp) / "out"
        path.write_text(config.to_toml(), encoding="utf-8")
        code, stderr = _cli(["run", "--config", str(path), "--out", str(out)])
        assert code == 0, stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["generations"] == generations and summary["algorithm"] == algorithm


@FUZZ
@given(
    st.sampled_from([("data", "data_dir"), ("model", "cache_dir"), ("model", "model_file")]),
    st.text(st.characters(exclude_categories=("Cs",))),
)
def test_any_path_string_is_refused_or_written_back_exactly(field, value):
    section, key = field
    if key == "model_file":
        value += ".keras"  # another suffix is refused (tests/models/test_h5.py)
    try:
        config = from_dict({section: {key: value}})
    except ConfigError as exc:
        assert "\x00" in value and f"{section}.{key}" in str(exc)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(config.to_toml(), encoding="utf-8")
        assert load_config(path) == config
