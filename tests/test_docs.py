"""The docs' generated pages: the configuration reference covers every key, the module map every module."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from evoprune.config import Config
from evoprune.experiments import methods

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return _load("gen_config_reference")


def _tables() -> dict[str, type]:
    core = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config) if f.name != "extra"}
    return {**core, **methods.sections()}


def test_every_config_key_has_a_documented_row(reference):
    text = reference.reference_markdown()
    for table, cls in _tables().items():
        assert f"## `[{table}]`" in text
        documented = reference.attribute_docs(cls)
        for field in dataclasses.fields(cls):
            assert documented.get(field.name), (
                f"[{table}] {field.name} has no Attributes: entry in {cls.__name__}"
            )
            assert f"| `{field.name}` |" in text


def test_grouped_attribute_entries_document_each_name(reference):
    class Example:
        """Summary.

        Attributes:
            steps, batch_size: Adam mini-batch training,
                continued here.
            seed: a seed.
        """

    docs = reference.attribute_docs(Example)
    assert docs == {
        "steps": "(`steps`, `batch_size`) Adam mini-batch training, continued here.",
        "batch_size": "(`steps`, `batch_size`) Adam mini-batch training, continued here.",
        "seed": "a seed.",
    }


def test_registry_names_and_defaults_come_from_the_code(reference):
    text = reference.reference_markdown()
    for name in methods.names():
        assert f"| `{name}` |" in text
    assert "| `population` | integer | `20` |" in text
    assert "`sbx`" in text and "`flip_bit`" in text


def test_methods_own_tables_are_the_sections_a_config_accepts(reference):
    """``gmp-global`` reads ``[gmp]``: the reference must not name a ``[gmp-global]`` table."""
    text = reference.methods_markdown()
    for method in methods.METHODS.values():
        if method.section is None:
            continue
        assert f"| `{method.name}` | " in text and f"`[{method.table_name}]`" in text
        if method.name != method.table_name:
            assert f"`[{method.name}]`" not in text


def test_generated_blocks_are_committed_current(reference):
    """GitHub shows the committed block; a schema or module change must rewrite it (``--write``)."""
    module_map = _load("gen_module_map")
    for generator, text in (
        (reference, reference.reference_markdown()),
        (module_map, module_map.module_map()),
    ):
        page = (ROOT / "docs" / generator.PAGE).read_text(encoding="utf-8")
        assert generator.fill(page, generator.BLOCK, text) == page, (
            f"docs/{generator.PAGE} is stale: run python {Path(generator.__file__).relative_to(ROOT)} --write"
        )
    for path in (ROOT / "src" / "evoprune").rglob("*.py"):
        if path.name != "__init__.py":
            assert path.name in module_map.module_map()


def test_a_page_without_its_block_markers_fails_the_build():
    blocks = _load("_blocks")
    assert (
        blocks.fill("a\n<!-- x -->\nold\n<!-- /x -->\nb", "x", "new")
        == "a\n<!-- x -->\n\nnew\n\n<!-- /x -->\nb"
    )
    for broken in ("a <!-- x --> b", "a <!-- /x --> b", "nothing"):
        with pytest.raises(RuntimeError, match="lost its markers"):
            blocks.fill(broken, "x", "new")


def test_command_synopsis_lists_every_method_and_architecture():
    from evoprune import api

    text = (ROOT / "docs" / "getting-started.md").read_text()
    synopsis = text.split("## Commands", 1)[1].split("```", 2)[1]
    listed = synopsis.split("--algorithm ", 1)[1].split("]", 1)[0].split("|")
    assert listed == list(api.choices("algorithm"))
    built_in = synopsis.split("--architecture ", 1)[1].split(" ", 1)[0].split("|")
    assert built_in == list(api.choices("architecture"))


def test_command_synopsis_names_every_option_of_every_command():
    """Each command's long options are in its synopsis lines, or in run's where it says "as for run"."""
    import typer

    from evoprune.cli import app

    text = (ROOT / "docs" / "getting-started.md").read_text()
    synopsis = text.split("## Commands", 1)[1].split("```", 2)[1]
    lines: dict[str, str] = {}
    name = ""
    for line in synopsis.splitlines():
        if line.startswith("evoprune "):
            name = line.split()[1]
        lines[name] = lines.get(name, "") + line + "\n"
    # what "data and model options, --set, --quiet, --verbose, --debug as for run" stands for
    shared = {"--dataset", "--data-dir", "--data-file", "--architecture", "--model-file", "--layers"}
    shared |= {"--config", "--set", "--quiet", "--verbose", "--debug"}
    group = typer.main.get_command(app)
    missing = []
    for command_name, command in group.commands.items():
        own = lines.get(command_name, "")
        for param in command.params:
            for opt in param.opts:
                named = re.search(re.escape(opt) + r"(?![\w-])", own)  # --seed is not --seeds
                if opt.startswith("--") and opt != "--help" and not named:
                    if not ("as for run" in own and opt in shared):
                        missing.append(f"{command_name} {opt}")
    assert not missing, missing
    run_options = {opt for param in group.commands["run"].params for opt in param.opts}
    assert shared <= run_options  # what "as for run" stands for is run's


def test_every_api_member_the_reference_lists_is_a_top_level_name():
    import evoprune

    page = (ROOT / "docs" / "api.md").read_text()
    block = page.split("::: evoprune.api", 1)[1].split("\n\n", 1)[0]
    members = re.findall(r"^\s+- (\w+)$", block, re.M)
    assert "prune" in members and "choices" in members
    assert sorted(members) == sorted(evoprune.__all__[1:])  # the same set, nothing unlisted
    for name in members:
        assert getattr(evoprune, name) is getattr(importlib.import_module("evoprune.api"), name)
