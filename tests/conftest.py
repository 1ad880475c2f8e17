"""Fixtures shared by the tests of the book itself."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _entries(node):
    """Every ``file:`` of a _toc.yml subtree, in reading order."""
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                yield from _entries(child)


@pytest.fixture(scope="session")
def toc_entries():
    """The documents of the table of contents, as paths without suffix relative to the root."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *_entries(toc)]
