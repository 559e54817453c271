"""Run configuration: a TOML file loaded once into a frozen, validated object."""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from evoprune.config.checks import (
    COUNT_MAX,
    EVALUATORS,
    FITNESS_SPLITS,
    POPULATION_MAX,  # noqa: F401
    REFINES,
    SAMPLE_DATASET,
    SEED_MAX,
    TFDS_NAME,
    check_choice,
    check_path,
    check_range,
)
from evoprune.config.sections import (
    BenchConfig,
    CompareConfig,
    DataConfig,
    FinetuneConfig,  # noqa: F401
    MetricsConfig,
    ModelConfig,
    SearchConfig,
    SelectConfig,
)
from evoprune.errors import ConfigError

__all__ = [
    "Config",
    "from_dict",
    "load_config",
    "parse_value",
    "check_choice",
    "check_path",
    "check_range",
    "BenchConfig",
    "CompareConfig",
    "DataConfig",
    "FinetuneConfig",
    "MetricsConfig",
    "ModelConfig",
    "SearchConfig",
    "SelectConfig",
    "COUNT_MAX",
    "EVALUATORS",
    "FITNESS_SPLITS",
    "POPULATION_MAX",
    "REFINES",
    "SAMPLE_DATASET",
    "SEED_MAX",
    "TFDS_NAME",
]


@dataclass(frozen=True)
class Config:
    """A whole run: data, model, search, metrics, compare, fine-tuning, bench and select sections.

    ``extra`` holds the tables of sections declared outside this schema (a method's own
    table, such as ``[gmp]``), as ``(name, section)`` pairs sorted by name. They are read
    by :func:`from_dict` when their classes are passed as ``sections``; the schema itself
    names no method.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    extra: tuple = ()

    def validate(self) -> Config:
        for name in _SECTIONS:
            getattr(self, name).validate()
        for _, section in self.extra:
            section.validate()
        if (
            self.finetune.refine != "none"
            and self.finetune.scope == "head"
            and self.search.evaluator != "fast"
        ):
            raise ConfigError(
                "Head fine-tuning scores heads on the fast evaluator's cached features. "
                "Expected search.evaluator='fast' with finetune.scope='head'. "
                f"Received: search.evaluator={self.search.evaluator!r}"
            )
        if self.finetune.refine != "none" and self.finetune.scope == "head" and self.search.layers != "head":
            raise ConfigError(
                "Head fine-tuning runs on the cached features of the head. Expected "
                "search.layers='head', or finetune.scope='model' for other layers. "
                f"Received: search.layers={self.search.layers!r}"
            )
        return self

    def section(self, name: str, default: Any = None) -> Any:
        """The section called ``name``: a core one, an extra one, else ``default``."""
        if name in _SECTIONS:
            return getattr(self, name)
        return next((section for key, section in self.extra if key == name), default)

    def with_section(self, name: str, section: Any) -> Config:
        """A validated copy holding ``section`` as the extra table ``name`` (replacing one)."""
        extra = tuple(sorted([(key, value) for key, value in self.extra if key != name] + [(name, section)]))
        return dataclasses.replace(self, extra=extra).validate()

    def schemas(self) -> dict[str, type]:
        """The classes of the extra sections this config holds."""
        return {name: type(section) for name, section in self.extra}

    def with_overrides(self, overrides: dict[str, Any], sections: Mapping[str, type] | None = None) -> Config:
        """Returns a validated copy with ``{"section.key": value}`` overrides applied.

        ``None`` values are ignored, so CLI options that were not given change nothing.
        ``sections``: classes of extra sections the overrides may name (those this config
        already holds are known).
        """
        raw = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = dotted.split(".", 1)
            raw.setdefault(section, {})[key] = value
        return from_dict(raw, {**self.schemas(), **(sections or {})})

    def to_dict(self) -> dict[str, dict[str, Any]]:
        core = {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}
        return {**core, **{name: dataclasses.asdict(section) for name, section in self.extra}}

    def defaults_dict(self) -> dict[str, dict[str, Any]]:
        """:meth:`to_dict` of the same sections at their defaults."""
        core = {name: dataclasses.asdict(type(getattr(self, name))()) for name in _SECTIONS}
        return {**core, **{name: dataclasses.asdict(type(section)()) for name, section in self.extra}}

    def to_toml(self) -> str:
        """Serializes the resolved config as TOML (read back by :func:`load_config`)."""
        lines: list[str] = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
            lines.append("")
        return "\n".join(lines)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "search": SearchConfig,
    "metrics": MetricsConfig,
    "compare": CompareConfig,
    "finetune": FinetuneConfig,
    "bench": BenchConfig,
    "select": SelectConfig,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted unless bare
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    # JSON's escapes are TOML's (control characters as \\uXXXX); TOML also escapes DEL
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_value(key)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(section: str, key: str, value: Any, expected: type | tuple[type, ...], items: type = str) -> Any:
    """``value`` as the field's kind; ``items``: the kind of a list's entries (str or float)."""
    name = f"{section}.{key}"
    if isinstance(expected, tuple):  # the first type that takes the value
        expected = next(
            (t for t in expected if isinstance(value, (list, tuple) if t is tuple else t)), expected[0]
        )
    if expected is dict and isinstance(value, dict):
        if not all(isinstance(k, str) and _number(v) for k, v in value.items()):
            raise ConfigError(f"Expected {name} to be a table of numbers. Received: {name}={value!r}")
        return {k: float(v) for k, v in value.items()}
    if expected is tuple and items is float and isinstance(value, (list, tuple)):
        if not all(_number(v) for v in value):
            raise ConfigError(f"Expected {name} to be a list of numbers. Received: {name}={value!r}")
        return tuple(float(v) for v in value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**53:
            raise ConfigError(f"Expected {name} to be a float of sensible size. Received: {name}={value!r}")
        return float(value)
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if expected is tuple and isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"Expected {name} to be a list of strings. Received: {name}={value!r}")
        return tuple(value)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        listed = f"a list of {'numbers' if items is float else 'strings'}"
        kind = listed if expected is tuple else expected.__name__
        example = " such as [12, 24]" if expected is tuple and items is float else ""
        raise ConfigError(
            f"Expected {name} to be {kind}{example}. Received: {name}={value!r} ({type(value).__name__})"
        )
    return value


def from_dict(raw: dict[str, Any], sections: Mapping[str, type] | None = None) -> Config:
    """Builds a validated :class:`Config`; unknown sections or keys are errors.

    Args:
        raw: ``{section: {key: value}}``, as read from TOML.
        sections: classes of the extra sections allowed besides the core ones (a method's
            own table); each is a frozen dataclass with a ``validate()`` method.
    """
    allowed = {**(sections or {}), **_SECTIONS}
    core: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in allowed:
            raise ConfigError(
                f"Unknown config section. Expected one of: {', '.join(allowed)}. Received: [{section}]"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"Expected [{section}] to be a table. Received: {section}={values!r}")
        cls = allowed[section]
        types = {f.name: f.metadata.get("types", type(f.default)) for f in fields(cls)}
        items = {f.name: f.metadata.get("items", str) for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in types:
                raise ConfigError(
                    f"Unknown key in [{section}]. Expected one of: {', '.join(types)}. "
                    f"Received: {section}.{key}"
                )
            kwargs[key] = _coerce(section, key, value, types[key], items[key])
        (core if section in _SECTIONS else extra)[section] = cls(**kwargs)
    return Config(**core, extra=tuple(sorted(extra.items()))).validate()


def parse_value(text: str) -> Any:
    """A value written as in a TOML file (``24``, ``0.5``, ``true``, ``[12, 24]``, ``"global"``);
    a bare word that TOML does not read (``global``, ``fc1``) is that string, and so is
    each item of a list of them (``[nsga2, spea2]``). No key takes a date: ``2024-01-01`` stays
    text."""
    text = text.strip()
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if text.startswith("[") and text.endswith("]"):
            inner = text[1:-1].strip()
            return [parse_value(item) for item in inner.split(",") if item.strip()] if inner else []
        return text
    return text if isinstance(value, (datetime.date, datetime.time)) else value


def load_config(path: Path | str | None, sections: Mapping[str, type] | None = None) -> Config:
    """Loads and validates a TOML config against the schema; ``None`` gives the defaults.

    This checks the schema only (kinds, ranges, combinations). Names that registries
    define (algorithms, genomes, operators, architectures) are checked where a run is
    assembled: :func:`evoprune.load_config` does both.

    Args:
        sections: classes of extra sections allowed in the file (see :func:`from_dict`).

    Raises:
        ConfigError: the file is missing, not TOML, or holds a bad value.
    """
    if path is None:
        return Config().validate()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.__class__.__name__}: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from exc
    return from_dict(raw, sections)
