"""Root pytest configuration, shared by the unit tests and the notebooks.

Hypothesis runs derandomised, so every run (and every machine) sees the same
examples; nbval gets the sanitize file that masks what legitimately varies
between runs of a notebook.

The suite runs two workers (``-n 2`` in pyproject.toml), each driving a test
process or a notebook kernel. With PyTorch's default of one OpenMP thread per
core, two workers on a two-core machine run four busy threads on two cores,
and the spinning threads cost as much as the work: measured on the book's
machine, the suite took 12.5 minutes and 22 CPU-minutes that way, against 6.6
minutes and 11 CPU-minutes with one thread per worker. So every process of the
test run (the workers inherit this environment, and the kernels inherit it
from them) uses one thread unless the caller sets ``OMP_NUM_THREADS``. The
stored outputs do not depend on it: the same suite passes with either setting.

Two workers finish together only if the long jobs start first: in collection order the chapters
that train the most (transformers, near the end of the alphabet) ran last, one worker busy for
minutes while the other idled. So notebooks run longest first, by the time their stored run
recorded, and the unit tests, many short files, fill the gaps at the end.
"""

import json
import os
from datetime import datetime
from functools import cache
from pathlib import Path

from hypothesis import settings

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before anything imports torch (see the docstring)

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
    total = 0.0
    for cell in json.loads(Path(path).read_text())["cells"]:
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - start).total_seconds()
    return total


def pytest_collection_modifyitems(items):
    # a stable sort keeps each file's items together and in order (the workers run one file at a time)
    def cost(item):
        path = str(item.path)
        return -recorded_seconds(path) if path.endswith(".ipynb") else 0.0

    items.sort(key=cost)
