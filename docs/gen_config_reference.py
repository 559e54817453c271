"""The configuration reference, generated from the config schema so it cannot drift.

Every table of a run's TOML file is a frozen dataclass: the core ones in
``evoprune.config.sections`` (in the order ``evoprune.config.Config`` holds them) and the
tables the methods declare (``evoprune.experiments.methods.sections()``, e.g. ``[gmp]``).
For each field this prints its TOML type, its default and the text of its class
docstring's ``Attributes:`` entry; fields whose names a registry defines (algorithms,
encodings, operators, executors, architectures, layer sets) list the valid names too.

Used two ways:

- as a mkdocs hook (``hooks:`` in ``mkdocs.yml``): the block between ``<!-- config-reference -->``
  and ``<!-- /config-reference -->`` in ``docs/configuration.md`` is generated again at every build
  (the committed block is what GitHub shows; ``tests/test_docs.py`` keeps it current);
- standalone: ``python docs/gen_config_reference.py`` prints the Markdown, ``--write`` rewrites
  the page's block.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "src", ROOT / "docs"):  # document the source tree beside these docs
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _blocks import fill, write  # noqa: E402

from evoprune.config import Config  # noqa: E402
from evoprune.experiments import configure, methods  # noqa: E402

BLOCK = "config-reference"  # <!-- config-reference --> ... <!-- /config-reference --> in the page
PAGE = "configuration.md"
REGISTRIES = ("algorithm", "encoding", "executor", "crossover", "mutation", "architecture", "layers")
TOML_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "float",
    "bool": "boolean",
    "tuple": "array of strings",
    "dict": "table of numbers",
}
ROLE = re.compile(r":(?:mod|func|class|meth|attr|data):`~?([^`]+)`")


def _plain(text: str) -> str:
    """Docstring text as Markdown: roles and double backticks become code spans, lines are joined."""
    return ROLE.sub(r"`\1`", " ".join(text.split())).replace("``", "`").replace("|", "\\|")


def attribute_docs(cls: type) -> dict[str, str]:
    """``field -> text`` from the ``Attributes:`` block of a class's (Google-style) docstring.

    An entry may name several fields (``steps, batch_size, learning_rate: ...``): each gets
    the entry's text, prefixed with the group's names.
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
    except StopIteration:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    indent = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break  # the next block
        if depth == indent and ":" in line:
            names, _, text = line.strip().partition(":")
            entries.append(([n.strip() for n in names.split(",")], [text.strip()]))
        elif entries:
            entries[-1][1].append(line.strip())
    docs = {}
    for names, text in entries:
        group = f"({', '.join(f'`{n}`' for n in names)}) " if len(names) > 1 else ""
        docs.update({name: group + _plain(" ".join(text)) for name in names})
    return docs


def toml_type(field: dataclasses.Field) -> str:
    """The field's type as TOML spells it (``string or array of strings`` for unions)."""
    types = field.metadata.get("types")
    if isinstance(types, type):
        types = (types,)
    names = [t.__name__ for t in types] if types else [part.strip() for part in str(field.type).split("|")]
    if field.metadata.get("items") is float:  # a list of numbers, not of strings
        return "array of numbers"
    return " or ".join(TOML_TYPES.get(name, name) for name in names)


def toml_default(field: dataclasses.Field) -> str:
    """The default as it would be written in a TOML file."""
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, str):
        return f'"{default}"'
    if isinstance(default, (tuple, list)):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in default) + "]"
    return repr(default)


def valid_names(name: str) -> tuple[str, ...]:
    """The registry's names when a field takes them (``algorithm``, ``algorithms``, ...)."""
    for registry in REGISTRIES:
        if name in (registry, f"{registry}s"):
            return configure.registry_names(registry)
    return ()


def section_markdown(table: str, cls: type) -> str:
    """One table of the config: a heading, the class's summary and one row per field."""
    doc = inspect.getdoc(cls) or ""
    summary = _plain(doc.split("\n\n")[0])
    texts = attribute_docs(cls)
    rows = [
        f"## `[{table}]`",
        "",
        summary,
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for field in dataclasses.fields(cls):
        text = texts.get(field.name, "")
        names = valid_names(field.name)
        if names:
            text += f" Registered names: {', '.join(f'`{n}`' for n in names)}."
        default = toml_default(field).replace("|", "\\|")
        rows.append(f"| `{field.name}` | {toml_type(field)} | `{default}` | {text.strip()} |")
    return "\n".join(rows) + "\n"


def tables() -> dict[str, type]:
    """Every table a config file may hold: the core ones, then the methods' own."""
    core = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config) if f.name != "extra"}
    return {**core, **methods.sections()}


def methods_markdown() -> str:
    """The method table: every ``search.algorithm`` name and its one-line summary."""
    rows = ["## Methods (`search.algorithm`)", "", "| name | what it is | own table |", "| --- | --- | --- |"]
    for method in methods.METHODS.values():
        own = f"`[{method.table_name}]`" if method.section is not None else ""
        rows.append(f"| `{method.name}` | {_plain(method.summary)} | {own} |")
    return "\n".join(rows) + "\n"


def reference_markdown() -> str:
    """The whole generated reference: the methods, every table, then the defaults as TOML."""
    parts = [methods_markdown()]
    parts += [section_markdown(name, cls) for name, cls in tables().items()]
    defaults = configure.check_config(Config()).to_toml().strip()
    parts.append(
        "## Every default, as a file\n\nWhat `config.toml` in a run directory holds for a run "
        f"with no config file and no options:\n\n```toml\n{defaults}\n```\n"
    )
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """mkdocs hook: fills the configuration page's block with the generated reference."""
    if page.file.src_uri == PAGE:
        return fill(markdown, BLOCK, reference_markdown())
    return markdown


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        print(f"docs/{PAGE}: " + ("rewritten" if write(PAGE, BLOCK, reference_markdown()) else "up to date"))
    else:
        print(reference_markdown())
