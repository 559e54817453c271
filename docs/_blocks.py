"""Generated blocks of the docs' Markdown pages, kept in the pages between two markers.

A page holds ``<!-- NAME -->``, the generated text, then ``<!-- /NAME -->``: GitHub shows the
committed text, the mkdocs hooks replace it with a fresh one at every build, and
``tests/test_docs.py`` fails when the committed text is stale (``python docs/gen_*.py --write``
rewrites it).
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent


def fill(markdown: str, name: str, content: str) -> str:
    """``markdown`` with the block ``name`` holding ``content``; a lost marker is an error."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    head, found, rest = markdown.partition(begin)
    _, closed, tail = rest.partition(end)
    if not found or not closed:
        raise RuntimeError(f"a docs page lost its markers {begin} ... {end}")
    return f"{head}{begin}\n\n{content.strip()}\n\n{end}{tail}"


def write(page: str, name: str, content: str) -> bool:
    """Rewrites ``docs/PAGE``'s block ``name``; True when the page changed."""
    path = DOCS / page
    old = path.read_text(encoding="utf-8")
    new = fill(old, name, content)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
