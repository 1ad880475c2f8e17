"""Root pytest configuration, shared by the unit tests and the notebooks.

Hypothesis runs derandomised, so every run (and every machine) sees the same
examples; nbval gets the sanitize file that masks what legitimately varies
between runs of a notebook.

The suite runs one worker per logical core (``-n logical`` in pyproject.toml),
each driving a test process or a notebook kernel, so a reader with eight cores
waits less than one with two. With PyTorch's default of one OpenMP thread per
core, N workers would run N busy threads per core, and the spinning threads cost
as much as the work: measured on a two-core machine, two workers took 12.5
minutes and 22 CPU-minutes that way, against 6.6 minutes and 11 CPU-minutes
with one thread each. So every process of the test run (the workers inherit
this environment, and the kernels inherit it from them) gets ``cores //
workers`` threads, at least one, unless the caller sets ``OMP_NUM_THREADS``.
The stored outputs do not depend on it: the same suite passes with either
setting.

Workers finish together only if the long jobs start first: in collection order the chapters
that train the most (transformers, near the end of the alphabet) ran last, one worker busy for
minutes while the others idled. So notebooks run longest first, by the time their stored run
recorded, and the unit tests, many short files, fill the gaps at the end (``--no-loadscope-reorder``
in pyproject.toml keeps this order: by default xdist hands out the files with the most tests first).

The book's build (tests/conftest.py's ``book_build``) is the longest job of all, a single process
of several minutes, and two files read it. Started together on two workers, one would build while
the other sat blocked on the build's lock; so the browser tests, which build, run first, and the
build tests, which only read the build, run last, when it is long done.
"""

import json
import os
from functools import cache
from pathlib import Path

from hypothesis import settings

from benchmarks.notebooks import cell_seconds

# Before anything imports torch (see the docstring). Only in xdist's workers, which know how many
# they are: the controller's environment is inherited by every worker, so it must not set it.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # the cores this process may use (Linux); macOS and Windows only know the machine's count
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))

ROOT = Path(__file__).resolve().parent

settings.register_profile("book", derandomize=True, deadline=None, database=None, print_blob=True)
settings.load_profile("book")


def pytest_configure(config):
    # nbval resolves the sanitize file from the working directory, so pass an absolute path.
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")


@cache
def recorded_seconds(path: str) -> float:
    """Seconds the stored run of a notebook spent in its cells (nbclient's timestamps in the cell metadata)."""
    return sum(cell_seconds(cell) for cell in json.loads(Path(path).read_text())["cells"])


BUILDS_THE_BOOK, READS_THE_BUILD = ROOT / "tests" / "test_browser.py", ROOT / "tests" / "test_book_build.py"


def pytest_collection_modifyitems(items):
    # a stable sort keeps each file's items together and in order (the workers run one file at a time)
    def cost(item):
        if item.path == BUILDS_THE_BOOK:
            return -float("inf")
        if item.path == READS_THE_BUILD:
            return float("inf")
        return -recorded_seconds(str(item.path)) if item.path.suffix == ".ipynb" else 0.0

    items.sort(key=cost)
