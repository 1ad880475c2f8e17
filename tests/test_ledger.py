"""The claims ledger and the notebooks agree: every settled row has its asserting cell, every id a
notebook uses is in the ledger, and every section of every seed of the notes is accounted for."""

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import claims_ledger as ledger  # noqa: E402

ROWS = ledger.rows()
CLAIMS = ledger.claims()
FILES = ledger.ledger_files()
BIB_KEYS = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(), re.M))
ERRATUM_LABELS = re.compile(r"^\((erratum-[\w-]+)\)=", re.M)

# The book's promise in numbers: at least 97 % of the checkable rows (checked, erratum or not yet
# checked) are settled by an executed cell. A new row of the notes that no cell checks counts against it.
COVERAGE_TARGET = 0.97


def test_one_ledger_file_per_seed():
    assert [f.stem for f in FILES] == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_sections_cover_the_seed(path):
    """The sections tile the seed's lines, 1 to the last, in order, without gap or overlap."""
    data = ledger.load_seed(path)
    expected = 1
    for section in data["sections"]:
        start, end = section["lines"]
        assert start == expected, f"{section['section']!r} starts at line {start}, expected {expected}"
        assert end >= start, f"{section['section']!r} ends before it starts"
        expected = end + 1
    assert expected - 1 == data["lines"], f"sections end at line {expected - 1}, the seed has {data['lines']}"
    seed = ledger.SEEDS / data["file"]
    if seed.exists():  # the notes sit beside a checkout of the book (shared/seeds), not inside it
        assert len(seed.read_text(encoding="utf-8").splitlines()) == data["lines"], "the seed changed length"


def test_rows_are_well_formed():
    ids = Counter(row.id for row in ROWS)
    assert not [i for i, n in ids.items() if n > 1], "ledger ids must be unique"
    for row in ROWS:
        match = ledger.ID.match(row.id)
        assert match and match["seed"] == row.seed, f"{row.id}: id must be '{row.seed}-section-slug'"
        assert row.status in ledger.STATUSES, f"{row.id}: unknown status {row.status!r}"
        assert row.statement.strip() and "|" not in row.statement, f"{row.id}: statement empty or with '|'"
        for key in ledger.REQUIRED[row.status]:
            assert row.get(key), f"{row.id}: a row with status {row.status} needs {key!r}"
        unknown = set(row.fields) - ledger.OPTIONAL - set(ledger.REQUIRED[row.status])
        assert not unknown, f"{row.id}: unknown fields {unknown}"
        if row.status == "cited":
            assert row.get("cite") in BIB_KEYS, f"{row.id}: {row.get('cite')!r} is not in book/references.bib"


def test_every_id_in_a_notebook_is_in_the_ledger_and_names_one_cell():
    known = {row.id for row in ROWS}
    used = Counter(i for claim in CLAIMS for i in claim.ids)
    unknown = sorted(set(used) - known)
    assert not unknown, f"ids used in notebooks but missing from the ledger: {unknown}"
    twice = sorted(i for i, n in used.items() if n > 1)
    assert not twice, f"ids named by more than one cell: {twice}"


def test_claim_cells_assert_and_ran_clean():
    for claim in CLAIMS:
        where = f"{claim.notebook} cell {claim.index}"
        assert "assert" in claim.source, f"{where} names ledger rows {claim.ids} but asserts nothing"
        assert not [o for o in claim.outputs if o["output_type"] == "error"], f"{where} stored an error"


def test_settled_rows_resolve_to_a_cell():
    cell_of = {i: claim for claim in CLAIMS for i in claim.ids}
    missing = [row.id for row in ROWS if row.status in ("checked", "erratum") and row.id not in cell_of]
    assert not missing, f"rows marked checked or erratum with no cell naming them: {missing}"


def test_errata_rows_and_erratum_boxes_agree():
    """Each erratum row names a box of the book, and each box of the book is some row's erratum."""
    boxes = set()
    for nb in ledger.notebooks():
        for cell in json.loads((ROOT / nb).read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                boxes |= set(ERRATUM_LABELS.findall("".join(cell["source"])))
    named = {row.get("erratum") for row in ROWS if row.status == "erratum"}
    assert named <= boxes, f"erratum rows naming no box: {sorted(named - boxes)}"
    assert boxes <= named, f"erratum boxes with no ledger row: {sorted(boxes - named)}"


def test_coverage_reaches_the_target():
    share = ledger.coverage(ledger.totals(ROWS))
    assert share >= COVERAGE_TARGET, f"{share:.3f} of the checkable rows are settled, below {COVERAGE_TARGET}"


def test_the_appendix_renders_every_row():
    text = ledger.ledger_markdown()
    for row in ROWS:
        assert f"`{row.id}`" in text, f"{row.id} missing from the appendix"
