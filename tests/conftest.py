"""Fixtures shared by the tests of the book itself.

The book is built once per test run. The build tests and the browser tests read the same build,
even when pytest-xdist runs the two files on different workers: the first worker to ask builds
into the workers' shared temporary folder while holding a lock, records the outcome next to it,
and the other worker, blocked on the lock meanwhile, reads that record instead of building again.
"""

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Build:
    returncode: int
    html: Path
    output: str = field(repr=False)  # shown once, as the assertion message, not again in the traceback


@pytest.fixture(scope="session")
def book_build(tmp_path_factory):
    """The one build of the book in this test run: warnings are errors, references nitpicky."""
    # Under xdist every worker has its own basetemp; their parent is the one folder they share.
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    out, record = base / "book", base / "book-build.json"
    with open(base / "book-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build raises
        if not record.exists():
            jupyter_book = Path(sys.executable).with_name("jupyter-book")
            command = [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=600)
                returncode, output = result.returncode, result.stdout[-4000:] + result.stderr[-4000:]
            except subprocess.TimeoutExpired as timeout:  # its captured output is bytes even with text=True
                # recorded like a failed build, so the other worker reports it instead of waiting as long again
                returncode, output = -1, f"{timeout}\n" + (timeout.stdout or b"")[-4000:].decode(errors="replace")
            # Written after the build, so a record always describes a finished build.
            record.write_text(json.dumps({"returncode": returncode, "output": output}))
        outcome = json.loads(record.read_text())
    return Build(outcome["returncode"], out / "_build" / "html", outcome["output"])


@pytest.fixture(scope="session")
def html(book_build):
    """The built HTML folder; every test that needs it fails with the build's output if the build failed."""
    assert book_build.returncode == 0, book_build.output
    return book_build.html
