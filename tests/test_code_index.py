"""From a page to its code and its tests in one step, kept true as the book changes.

``book/_ext/code_index.py`` generates the API reference pages, each notebook's closing "Code and
tests" line and the chapter table of the introduction from what the notebooks and the tests
import. These tests fail when a committed copy is stale (rerun ``python book/_ext/code_index.py``),
when a public object of ``visarch`` has no documentation, or when a page uses an object that has no
reference entry. That every link of those lines resolves is checked by the nitpicky build
(``tests/test_book_build.py``), and that it works in a browser by ``tests/test_browser.py``.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import code_index as index  # noqa: E402

REGENERATE = "stale: run `python book/_ext/code_index.py` and commit what it writes"
GENERATED = index.generated()


@pytest.mark.parametrize("path", sorted(GENERATED, key=str), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_generated_file_is_current(path):
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: {REGENERATE}"
    assert path.read_text() == GENERATED[path], f"{path.relative_to(ROOT)} is {REGENERATE}"


def test_every_public_object_is_documented():
    assert index.undocumented() == [], "give these a docstring (functions, classes) or a #: comment (constants)"


def test_every_module_declares_its_public_api():
    for module in index.modules():
        index.public_names(module)  # raises for a module without __all__


def test_every_module_has_a_reference_page_in_the_toc(toc_entries):
    pages = {index.page_of(m) for m in index.modules()}
    in_toc = {entry for entry in toc_entries if entry.startswith("book/api/")}
    assert pages == in_toc, f"missing from _toc.yml: {sorted(pages - in_toc)}; not a module: {sorted(in_toc - pages)}"


@pytest.mark.parametrize("docname", index.notebook_pages())
def test_page_line_names_every_object_it_imports(docname):
    cells = json.loads((ROOT / f"{docname}.ipynb").read_text())["cells"]
    line = "".join(cells[-1]["source"])
    assert cells[-1]["metadata"].get(index.CODE_AND_TESTS), "the page's last cell is not its Code and tests line"
    documented = index.documented_objects()
    for name in index.imported(index.notebook_code(ROOT / f"{docname}.ipynb")):
        obj = index.canonical(name)
        assert obj in documented or obj in index.modules(), f"{name} ({obj}) has no entry in the API reference"
        if obj in index.page_objects(docname):
            assert f"`~{obj}`" in line or f"`{obj}`" in line, f"{obj} is missing from the Code and tests line"
    for test in index.tests_of(index.page_objects(docname)):
        assert (ROOT / test).is_file() and f"`{test}`" in line


def test_every_chapter_is_in_the_intro_table():
    text = (ROOT / "book" / "intro.md").read_text()
    table = text[text.index(index.TABLE_START):text.index(index.TABLE_END)]
    for caption, docs in index.chapters():
        assert f"{{doc}}`{caption} </{docs[0]}>`" in table, f"chapter {caption} is missing from the intro table"
        for doc in docs[1:]:
            assert f"{{doc}}`/{doc}`" in table, f"page {doc} is missing from the intro table"


def test_imports_are_read_as_python_reads_them():
    source = """
import visarch.models as models
from visarch.functional import conv2d as c2d, normalization
from visarch import plot
import visarch.optim
net = models.create("vit_small")
normalization.batch_norm
plot.loss_curves
visarch.optim.SGD
%timeit c2d
"""
    assert index.imported(source) == {
        "visarch.models", "visarch.models.create", "visarch.functional.conv2d", "visarch.functional.normalization",
        "visarch.functional.normalization.batch_norm", "visarch.plot", "visarch.plot.loss_curves",
        "visarch.optim", "visarch.optim.SGD"}
    assert index.canonical("visarch.functional.conv2d") == "visarch.functional.conv.conv2d"
    assert index.canonical("visarch.data.DIRECTIONS") == "visarch.data.DIRECTIONS"
    assert index.canonical("visarch.nn") == "visarch.nn"
