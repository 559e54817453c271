"""Run configuration: a TOML file loaded once into a frozen, validated object."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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
    registry_names,
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
    "registry_names",
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
    """A whole run: data, model, search, metrics, compare, fine-tuning, bench and select sections."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def validate(self) -> Config:
        for section in fields(self):
            getattr(self, section.name).validate()
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

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Returns a validated copy with ``{"section.key": value}`` overrides applied.

        ``None`` values are ignored, so CLI options that were not given change nothing.
        """
        raw = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = dotted.split(".", 1)
            raw.setdefault(section, {})[key] = value
        return from_dict(raw)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in fields(self)}

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
    # JSON's escapes are TOML's (control characters as \\uXXXX); TOML also escapes DEL
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _coerce(section: str, key: str, value: Any, expected: type | tuple) -> Any:
    name = f"{section}.{key}"
    if isinstance(expected, tuple):  # the first type that takes the value
        expected = next(
            (t for t in expected if isinstance(value, (list, tuple) if t is tuple else t)), expected[0]
        )
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
        raise ConfigError(
            f"Expected {name} to be {expected.__name__}. Received: {name}={value!r} ({type(value).__name__})"
        )
    return value


def from_dict(raw: dict[str, Any]) -> Config:
    """Builds a validated :class:`Config`; unknown sections or keys are errors."""
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"Unknown config section. Expected one of: {', '.join(_SECTIONS)}. Received: [{section}]"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"Expected [{section}] to be a table. Received: {section}={values!r}")
        cls = _SECTIONS[section]
        types = {f.name: f.metadata.get("types", type(f.default)) for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in types:
                raise ConfigError(
                    f"Unknown key in [{section}]. Expected one of: {', '.join(types)}. "
                    f"Received: {section}.{key}"
                )
            kwargs[key] = _coerce(section, key, value, types[key])
        sections[section] = cls(**kwargs)
    return Config(**sections).validate()


def load_config(path: Path | str | None) -> Config:
    """Loads and validates a TOML config; ``None`` gives the defaults.

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
    return from_dict(raw)
