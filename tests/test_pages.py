"""Every chapter page reads on its own: the checks of a newcomer's reading that a machine can make.

- The lecture notes stay out of the main line: a page mentions them only in a collapsible box
  (*Erratum in the notes* or *Note on the notes*), in the title of a numbered result that points
  to the notes' numbering, or in its closing section *Against the notes*.
- It ends with a summary and at least four exercises, among them a question about the concept
  and an experiment to run, and a collapsed *Solutions* box that answers each one in prose.
- It links back to a page it builds on and forward to a page that uses it, with ``{doc}`` or
  ``{ref}`` targets that the build checks; the pairs the reading order needs most are named.
- A long asserting cell has its input folded, so a check supports the text instead of
  interrupting it.
- Its metadata lists the symbols of the introduction's notation table that it uses and the
  symbols it defines for itself; none of the latter is a symbol of the table.
- Its text holds no control characters: a LaTeX command written through a Python string without
  escaping (``"\times"``, ``"\approx"``) arrives as a tab or a bell and breaks the formula.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTRO = ROOT / "book" / "intro.md"

PAGES = [p.relative_to(ROOT) for p in sorted((ROOT / "book").rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]

NOTES = re.compile(r"\bthe (notes|slides|lecture)\b", re.IGNORECASE)
FENCE = re.compile(r"^\s*(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*)$")
BOXES = {"Erratum in the notes": "warning", "Note on the notes": "note"}
AGAINST = "Against the notes"
KINDS = ("Concept", "Experiment", "Derivation", "Computation")
EXERCISE = re.compile(r"^(\d+)\. \*\*(\w+)\.\*\*", re.MULTILINE)
LINK = re.compile(r"\{(doc|ref)\}`(?:[^`<]*<)?([^`>]+)>?`")
LABEL = re.compile(r"^\((?P<a>[\w-]+)\)=\s*$|^:label:\s*(?P<b>[\w-]+)\s*$", re.MULTILINE)
LONG_CELL = 25  # lines of an asserting cell beyond which its input is folded
FOLDED = {"hide-input", "hide-cell"}

# Links the reading order needs most: page -> pages it must link to.
REQUIRED_LINKS = {
    "book/building_blocks/conv2d": {
        "book/building_blocks/grouped_conv", "book/building_blocks/conv_transpose2d",
        "book/building_blocks/receptive_fields",
    },
    "book/normalization/template": {"book/normalization/invariances", "book/normalization/batch_size"},
    "book/front_end/vit": {
        "book/building_blocks/attention", "book/front_end/resnet", "book/transformers/deit",
        "book/transformers/transformer", "book/transformers/vit_practice",
    },
    "book/nonlocal_clip/clip": {"book/nonlocal_clip/nonlocal_block", "book/transformers/transformer"},
}


def cells(path):
    return json.loads((ROOT / path).read_text())["cells"]


def markdown(path):
    return [("".join(c["source"])) for c in cells(path) if c["cell_type"] == "markdown"]


def docname(path):
    return str(Path(path).with_suffix(""))


def mentions_outside_boxes(text):
    """Lines of a markdown cell that mention the notes outside a box, a result's title or the
    closing section, and the boxes whose title names the notes but that do not fold."""
    problems, stack, section = [], [], None
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if stack and line.strip() == stack[-1][0]:
            stack.pop()
            continue
        opened = FENCE.match(line)
        if opened:
            fence, directive, title = opened.groups()
            box = directive == "admonition" and title.startswith(tuple(BOXES))
            if box:
                options = []
                for option in lines[number + 1:]:
                    if not option.startswith(":"):
                        break
                    options.append(option)
                kind = BOXES[next(b for b in BOXES if title.startswith(b))]
                if not any(o.startswith(":class:") and {"dropdown", kind} <= set(o.split()[1:]) for o in options):
                    problems.append(f"box {title!r} needs ':class: dropdown {kind}'")
            stack.append((fence, box))
            continue  # a directive's title may cite the notes' numbering ("Lemma 1.1 of the notes")
        if line.startswith("## "):
            section = line[3:].strip()
        inside_box = any(box for _, box in stack)
        if NOTES.search(line) and not inside_box and section != AGAINST:
            problems.append(line.strip())
    return problems


def notation_table():
    """Symbols of the introduction's table, as written between dollars in its first column."""
    text = INTRO.read_text().split("## Notation", 1)[1].split("\n## ", 1)[0]
    symbols = set()
    for row in re.findall(r"^\| (\$.*?) \|", text, re.MULTILINE):
        for chunk in re.findall(r"\$([^$]+)\$", row):
            for part in re.split(r"\\times|,", chunk.split(r"\in")[0]):
                if part.strip():
                    symbols.add(part.strip())
    return symbols


def labels():
    """Which page defines each ``(label)=`` target and ``:label:`` of the book's notebooks."""
    found = {}
    for page in PAGES:
        for text in markdown(page):
            for match in LABEL.finditer(text):
                found[match["a"] or match["b"]] = docname(page)
    return found


def linked_pages(page, known_labels):
    targets = set()
    for text in markdown(page):
        for role, target in LINK.findall(text):
            if role == "ref":
                if target in known_labels:
                    targets.add(known_labels[target])
            else:
                path = target.lstrip("/") if target.startswith("/") else str(
                    ((ROOT / page).parent / target).resolve().relative_to(ROOT))
                targets.add(path)
    return targets - {docname(page)}


def test_the_table_has_the_symbols_the_pages_share():
    table = notation_table()
    for symbol in ("N", "C", "H", "F", "S", "P", "T", "d", "h", "d_h", r"d_{\text{mlp}}", "p", r"\mathcal{S}",
                   r"\eta", r"\theta", r"\beta_1", r"\tau"):
        assert symbol in table, f"the notation table of book/intro.md lacks ${symbol}$"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_notes_stay_out_of_the_main_line(page):
    problems = [p for text in markdown(page) for p in mentions_outside_boxes(text)]
    assert not problems, (
        f"{page} mentions the lecture notes outside an 'Erratum in the notes' / 'Note on the notes' "
        f"dropdown box or the closing '## {AGAINST}' section:\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_summary_exercises_and_solutions(page):
    text = "\n".join(markdown(page))
    assert re.search(r"^## Summary$", text, re.MULTILINE), f"{page} has no '## Summary'"
    parts = re.split(r"^## Exercises$", text, flags=re.MULTILINE)
    assert len(parts) == 2, f"{page} needs one '## Exercises' section"
    exercises, _, rest = parts[1].partition("```{dropdown} Solutions")
    assert rest, f"{page}: the exercises need a '```{{dropdown}} Solutions' box after them"
    found = EXERCISE.findall(exercises)
    assert len(found) >= 4, f"{page} has {len(found)} exercises, at least 4 are needed"
    assert [int(n) for n, _ in found] == list(range(1, len(found) + 1)), f"{page}: exercises numbered 1, 2, ..."
    kinds = [k for _, k in found]
    assert set(kinds) <= set(KINDS), f"{page}: each exercise starts with one of {KINDS} in bold"
    assert {"Concept", "Experiment"} <= set(kinds), f"{page} needs a Concept and an Experiment exercise"
    answers = re.findall(r"^(\d+)\. ", rest.split("\n```", 1)[0], re.MULTILINE)
    assert [int(a) for a in answers] == list(range(1, len(found) + 1)), (
        f"{page}: the Solutions box answers every exercise in prose, numbered like the exercises")


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_links_back_and_forward(page, toc_entries):
    order = [e for e in toc_entries if (ROOT / f"{e}.ipynb").exists()]
    here = order.index(docname(page))
    targets = linked_pages(page, labels())
    for target in targets:
        assert (ROOT / f"{target}.ipynb").exists() or (ROOT / f"{target}.md").exists(), f"{page} links to {target}"
    earlier, later = targets & set(order[:here]), targets & set(order[here + 1:])
    if here > 0:
        assert earlier, f"{page} links to none of the pages before it (what it builds on)"
    if here < len(order) - 1:
        assert later, f"{page} links to none of the pages after it (what builds on it)"
    missing = REQUIRED_LINKS.get(docname(page), set()) - targets
    assert not missing, f"{page} must link to {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_long_checks_are_folded(page):
    for cell in cells(page):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "assert" in source and len(source.splitlines()) > LONG_CELL:
            assert FOLDED & set(cell["metadata"].get("tags", [])), (
                f"{page}: an asserting cell of {len(source.splitlines())} lines needs the tag 'hide-input':\n"
                + source[:200])


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_notation_agrees_with_the_table(page):
    meta = json.loads((ROOT / page).read_text())["metadata"].get("notation")
    assert meta, f"{page}: metadata 'notation' lists the table symbols it uses and the ones it defines"
    table, math = notation_table(), "\n".join(
        m for text in markdown(page) for m in re.findall(r"\$\$?([^$]+)\$\$?", text))
    unknown = set(meta["uses"]) - table
    assert not unknown, f"{page} uses {sorted(unknown)} as table symbols, but the table has no such row"
    clashes = set(meta["defines"]) & table
    assert not clashes, f"{page} redefines {sorted(clashes)}, which the notation table already defines"
    for symbol in [*meta["uses"], *meta["defines"]]:
        assert symbol in math, f"{page} lists ${symbol}$ in its notation but never writes it"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_no_control_characters_in_the_text(page):
    for text in markdown(page):
        bad = re.search(r"[\x00-\x08\x0b-\x1f]|\t", text)
        context = text[max(0, bad.start() - 40):bad.end() + 20] if bad else ""
        assert not bad, f"{page}: control character {bad.group(0)!r} in {context!r}"
