"""The module map of the architecture page, generated from the package's module docstrings.

A mkdocs hook (``hooks:`` in ``mkdocs.yml``): the block between ``<!-- module-map -->`` and
``<!-- /module-map -->`` in ``docs/architecture.md`` becomes one line per module of
``src/evoprune`` with the first line of its docstring, so the map cannot drift from the code
(the committed block is what GitHub shows; ``tests/test_docs.py`` keeps it current).
Standalone: ``python docs/gen_module_map.py`` prints it, ``--write`` rewrites the page's block.
The modules are parsed, not imported.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _blocks import fill, write  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "evoprune"
BLOCK = "module-map"  # <!-- module-map --> ... <!-- /module-map --> in the page
PAGE = "architecture.md"
ROLE = re.compile(r":(?:mod|func|class|meth):`~?([^`]+)`")


def first_line(path: Path) -> str:
    """The first line of a module's docstring (empty when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def module_map() -> str:
    """A text tree of ``src/evoprune``: each package, then its modules with their summaries."""
    lines = ["```text", "src/evoprune/"]
    for path in sorted(SRC.rglob("*.py"), key=lambda p: (p.parent != SRC, p.parent.as_posix(), p.name)):
        relative = path.relative_to(SRC)
        if path.name == "__init__.py":
            if path.parent == SRC:
                continue
            name = "  " * len(relative.parent.parts) + relative.parent.name + "/"
        else:
            name = "  " * len(relative.parts) + path.name
        lines.append(name.ljust(32) + " " + ROLE.sub(r"\1", first_line(path)).replace("``", ""))
    lines.append("```")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """mkdocs hook: fills the architecture page's block with the module map."""
    if page.file.src_uri == PAGE:
        return fill(markdown, BLOCK, module_map())
    return markdown


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        print(f"docs/{PAGE}: " + ("rewritten" if write(PAGE, BLOCK, module_map()) else "up to date"))
    else:
        print(module_map())
