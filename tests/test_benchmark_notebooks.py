"""``python -m benchmarks notebooks``: its table and its reading of Jupyter's cell timestamps.
Timings themselves are printed by the command, never asserted."""

import pytest

from benchmarks.notebooks import Run, cell_seconds, main, table


def testcell_seconds_reads_jupyters_timestamps():
    cell = {"metadata": {"execution": {"iopub.execute_input": "2026-12-07T10:00:00.250000Z",
                                       "shell.execute_reply": "2026-12-07T10:00:02.000000Z"}}}
    assert cell_seconds(cell) == 1.75
    assert cell_seconds({"metadata": {}}) == 0.0  # a cell that never ran


def test_table_sorts_by_time_and_marks_each_budget():
    runs = [Run("book/a.ipynb", 30.0, 5, 2, 20.0, trains=False),
            Run("book/b.ipynb", 70.0, 9, 4, 50.0, trains=True),
            Run("book/c.ipynb", 65.0, 3, 1, 60.0, trains=False),
            Run("book/d.ipynb", 95.0, 3, 1, 60.0, trains=True, error="AssertionError")]
    lines = table(runs, budget=60, train_budget=90).splitlines()
    assert [line.split()[0] for line in lines[1:5]] == ["book/d.ipynb", "book/b.ipynb", "book/c.ipynb", "book/a.ipynb"]
    assert lines[1].endswith("ERROR AssertionError")
    assert lines[2].rstrip().endswith("#4: 50.0 s") and "over" not in lines[2]  # 70 s is within a training page's 90 s
    assert lines[3].endswith("over 60 s")
    assert lines[5].split()[-1] == "260.0"


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        main(["--workers", "0"])
