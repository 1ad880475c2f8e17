"""The claims ledger: every checkable statement of the notes, and the cell that checks it.

The ledger lives in ``book/ledger/<seed>.yml``, one file per seed of the notes. Each file lists the
seed's sections in order (with the lines of the seed they span, so a test can see that no section
was skipped), and each section its rows::

    - id: 000-1.1-output-size          # seed-section-slug
      statement: "..."                 # the claim in the book's words
      status: checked                  # checked | erratum | cited | not-checkable | unchecked
      erratum: erratum-...             # erratum: the label of the page's box
      cite: key                        # cited: a key of book/references.bib
      reason: "..."                    # not-checkable: why; unchecked: the check that is missing

The link from a row to its cell lives in the notebook, not in the ledger: a claim cell lists the ids
it checks in its metadata (``"claims": ["000-1.1-output-size", ...]``). This module reads both sides
for the tests (``tests/test_ledger.py``) and, as a Sphinx extension, gives every claim cell an
anchor ``claim-<id>`` and renders the appendix page from the ``claims-ledger`` directive.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / "book" / "ledger"
SEEDS = ROOT.parent / "shared" / "seeds"
STATUSES = ("checked", "erratum", "cited", "not-checkable", "unchecked")
# what a row of each status must carry besides id, statement and status
REQUIRED = {"checked": (), "erratum": ("erratum",), "cited": ("cite",), "not-checkable": ("reason",),
            "unchecked": ("reason",)}
OPTIONAL = {"note", "reason", "cite"}
ID = re.compile(r"^(?P<seed>\d{3})-[a-z0-9][a-z0-9.]*(-[a-z0-9]+)+$")
METADATA_KEY = "claims"


@dataclass(frozen=True)
class Row:
    id: str
    seed: str
    section: str
    statement: str
    status: str
    fields: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Claim:
    """A notebook cell that names ledger ids in its metadata."""

    notebook: Path  # relative to ROOT
    index: int  # position among all the notebook's cells
    ids: tuple
    source: str
    outputs: tuple


def load_seed(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("sections"), list):
        raise ValueError(f"{path}: a ledger file is a mapping with a list 'sections'")
    return data


def ledger_files():
    return sorted(LEDGER.glob("*.yml"))


def rows():
    """Every row of the ledger, in the order of the notes."""
    out = []
    for path in ledger_files():
        data = load_seed(path)
        for section in data["sections"]:
            for raw in section.get("rows") or []:
                raw = dict(raw)
                out.append(Row(id=raw.pop("id"), seed=path.stem, section=section["section"],
                               statement=raw.pop("statement"), status=raw.pop("status"), fields=raw))
    return out


def notebooks():
    return sorted(p.relative_to(ROOT) for p in (ROOT / "book").rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def claims():
    """Every cell of every notebook that carries ledger ids in its metadata."""
    out = []
    for nb in notebooks():
        for i, cell in enumerate(json.loads((ROOT / nb).read_text(encoding="utf-8"))["cells"]):
            ids = cell.get("metadata", {}).get(METADATA_KEY)
            if ids:
                out.append(Claim(nb, i, tuple(ids), "".join(cell["source"]), tuple(cell.get("outputs", ()))))
    return out


def page_title(nb: Path) -> str:
    for cell in json.loads((ROOT / nb).read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            match = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
            if match:
                return match.group(1).strip()
    return nb.stem


def anchor(claim_id: str) -> str:
    """The anchor of the cell that checks a row."""
    return f"claim-{claim_id}"


def row_anchor(claim_id: str) -> str:
    """The anchor of a row in the appendix."""
    return f"ledger-{claim_id}"


def totals(all_rows):
    counts = {status: 0 for status in STATUSES}
    for row in all_rows:
        counts[row.status] += 1
    return counts


def coverage(counts) -> float:
    """Share of the checkable rows (checked, erratum, unchecked) that an executed cell settles."""
    settled = counts["checked"] + counts["erratum"]
    return settled / max(1, settled + counts["unchecked"])


# --- rendering the appendix page -------------------------------------------------------------------

LABELS = {"checked": "checked", "erratum": "erratum", "cited": "cited", "not-checkable": "not checkable",
          "unchecked": "**not yet checked**"}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def ledger_markdown() -> str:
    """The appendix page's body, in MyST markdown: totals, then one table per seed."""
    all_rows = rows()
    where = {}
    for claim in claims():
        for claim_id in claim.ids:
            where[claim_id] = claim
    titles = {nb: page_title(nb) for nb in {c.notebook for c in where.values()}}
    counts = totals(all_rows)
    lines = [
        f"The ledger has {len(all_rows)} rows. Of the {counts['checked'] + counts['erratum'] + counts['unchecked']} "
        f"checkable ones, {counts['checked'] + counts['erratum']} ({100 * coverage(counts):.1f} %) are settled by "
        "a cell that runs on every test run.",
        "",
        "| status | rows |",
        "|---|---|",
        *(f"| {LABELS[s]} | {counts[s]} |" for s in STATUSES),
        "",
    ]
    for path in ledger_files():
        data = load_seed(path)
        seed_rows = [r for r in all_rows if r.seed == path.stem]
        seed_counts = totals(seed_rows)
        lines += [
            f"## {data['title']}",
            "",
            f"Seed `{data['file']}`, {len(data['sections'])} sections, {len(seed_rows)} rows: "
            + ", ".join(f"{seed_counts[s]} {LABELS[s].strip('*')}" for s in STATUSES) + ".",
            "",
            "| id | where in the notes | statement | status | settled by |",
            "|---|---|---|---|---|",
        ]
        for row in seed_rows:
            lines.append(f"| `{row.id}` | {_cell(row.section)} | {_cell(row.statement)} | {LABELS[row.status]} "
                         f"| {_cell(_evidence(row, where, titles))} |")
        lines.append("")
    return "\n".join(lines)


def _evidence(row: Row, where: dict, titles: dict) -> str:
    parts = []
    if row.id in where:
        parts.append(f"{{ref}}`{titles[where[row.id].notebook]} <{anchor(row.id)}>`")
    if row.status == "erratum":
        parts.append(f"{{ref}}`erratum <{row.get('erratum')}>`")
    if row.status == "cited":
        parts.append(f"{{cite:t}}`{row.get('cite')}`")
    if row.status in ("not-checkable", "unchecked"):
        parts.append(row.get("reason"))
    if row.get("note"):
        parts.append(f"*Note:* {row.get('note')}")
    return "; ".join(parts)


# --- the Sphinx extension --------------------------------------------------------------------------


def setup(app):
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx import addnodes
    from sphinx.transforms import SphinxTransform
    from sphinx.util.docutils import SphinxDirective

    class ClaimAnchors(SphinxTransform):
        """Give each notebook cell that names ledger ids an anchor ``claim-<id>`` per id, and a line under it
        linking back to those rows of the appendix."""

        default_priority = 500

        def apply(self):
            for node in list(self.document.findall(nodes.container)):
                ids = node.get("cell_metadata", {}).get(METADATA_KEY)
                if not ids:
                    continue
                node["ids"] += [anchor(i) for i in ids]
                node["names"] += [anchor(i) for i in ids]
                self.document.note_explicit_target(node)
                line = nodes.paragraph(classes=["claim-ledger"])
                line += nodes.Text("Checks the notes' claim" + ("s " if len(ids) > 1 else " "))
                for k, claim_id in enumerate(ids):
                    if k:
                        line += nodes.Text(", ")
                    ref = addnodes.pending_xref("", refdomain="std", reftype="ref", reftarget=row_anchor(claim_id),
                                                refexplicit=True, refwarn=True, refdoc=self.env.docname)
                    ref += nodes.literal(claim_id, claim_id)
                    line += ref
                line += nodes.Text(" (ledger).")
                node.parent.insert(node.parent.index(node) + 1, line)

    class ClaimsLedger(SphinxDirective):
        """Render the whole ledger: totals, then one table per seed."""

        def run(self):
            for path in [*ledger_files(), *(ROOT / nb for nb in notebooks())]:
                self.env.note_dependency(str(path))
            container = nodes.container()
            self.state.nested_parse(StringList(ledger_markdown().splitlines()), self.content_offset, container)
            known = {row.id for row in rows()}
            for row in container.findall(nodes.row):  # the first entry of a body row is its id
                first = row.next_node(nodes.literal)
                if first is not None and first.astext() in known:
                    row["ids"].append(row_anchor(first.astext()))
                    row["names"].append(row_anchor(first.astext()))
                    self.state.document.note_explicit_target(row)
            return container.children

    app.add_transform(ClaimAnchors)
    app.add_directive("claims-ledger", ClaimsLedger)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
