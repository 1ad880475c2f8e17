"""Hygiene of the notebooks: listed in the table of contents, stored from one clean run, offline."""

import ast
import json
import re
from pathlib import Path

import pytest

from visarch.display import without_checks

ROOT = Path(__file__).resolve().parents[1]

# Ways a notebook could reach the network; none is allowed at run time.
NETWORK = re.compile(
    r"urllib|urlopen|requests\.|http\.client|socket\.|wget|curl |torch\.hub|load_state_dict_from_url"
    r"|download\s*=\s*True|fetch_openml|fetch_lfw|pip install|https?://"
)

NOTEBOOKS = [
    p.relative_to(ROOT) for p in sorted((ROOT / "book").rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
]


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_toc_and_files_agree(toc_entries):
    for entry in toc_entries:
        found = [p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.exists()]
        assert len(found) == 1, f"_toc.yml entry {entry!r} must match exactly one .md or .ipynb file"
    listed = set(toc_entries)
    for nb in NOTEBOOKS:
        assert nb.with_suffix("").as_posix() in listed, f"{nb} is not in _toc.yml"


def test_there_are_notebooks():
    assert NOTEBOOKS, "the book has no notebook under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_stored_from_one_clean_run(path):
    cells = code_cells(ROOT / path)
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"execution counts {counts}: rerun top to bottom"
    for i, cell in enumerate(cells, 1):
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"cell {i} stored an error"
            assert output.get("name") != "stderr", f"cell {i} stored stderr output: {output['text'][:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_offline_and_asserting(path):
    sources = ["".join(c["source"]) for c in code_cells(ROOT / path)]
    for i, src in enumerate(sources, 1):
        match = NETWORK.search(src)
        assert match is None, f"cell {i} may reach the network: {match.group(0)!r}"
    assert any("assert" in src for src in sources), "a notebook of this book checks its claims with assert"


ERRATUM_BOX = r"^\((erratum-[\w-]+)\)=\s*\n`{3,}\{admonition\} Erratum in the notes"


def test_every_erratum_is_listed():
    """Each 'Erratum in the notes' box has a label, and the errata appendix links to each label once."""
    errata_page = (ROOT / "book" / "appendix" / "errata.md").read_text()
    linked = re.findall(r"\{ref\}`[^`<]*<([^>]+)>`", errata_page)
    labels = []
    for path in NOTEBOOKS:
        for cell in json.loads((ROOT / path).read_text())["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and "Erratum in the notes" in text:
                found = re.findall(ERRATUM_BOX, text, re.M)
                assert len(found) == text.count("Erratum in the notes"), f"{path}: erratum without a label"
                labels += found
    assert labels, "no erratum found in the notebooks"
    assert sorted(linked) == sorted(labels), "errata appendix and erratum boxes disagree"


def _package_sources():
    """The source of every function, class and method of ``visarch``, as ``inspect.getsource`` gives it,
    in full and with its argument checks folded (``show_source``'s default view)."""
    sources = set()
    for module in sorted((ROOT / "src" / "visarch").rglob("*.py")):
        lines = module.read_text().splitlines(keepends=True)
        for node in ast.walk(ast.parse("".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                source = "".join(lines[first - 1:node.end_lineno])
                sources |= {source, without_checks(source)}
    return sources


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_shown_source_is_current(path):
    """A page shows the package's code with ``show_source``, stored as Markdown that nbval does not
    compare; this keeps the stored copy equal to the code, so the book never shows a stale one."""
    current = _package_sources()
    for i, cell in enumerate(code_cells(ROOT / path), 1):
        for output in cell["outputs"]:
            shown = "".join(output.get("data", {}).get("text/markdown", ""))
            if shown.startswith("```python\n") and "show_source" in "".join(cell["source"]):
                code = shown.removeprefix("```python\n").removesuffix("```")
                name = code.lstrip().split("(")[0].split(":")[0]
                assert code in current, f"cell {i} shows an outdated {name!r}: rerun the notebook"
