"""Where the test suite's time goes: every notebook of the book run once, a table sorted by time.

``python -m benchmarks notebooks`` executes each notebook under ``book/`` from top to bottom in a
fresh kernel, as nbval does (in the notebook's own folder, nothing written back), and prints one
row per notebook: its wall time, its number of code cells, its slowest cell and that cell's time,
and a mark where the notebook exceeds its budget (``--budget``, 60 s, or ``--train-budget``, 90 s,
for a page that says in its first cell that it trains). Several notebooks run side by side with
``--workers``; each kernel then gets ``cores // workers`` threads (``OMP_NUM_THREADS``), so the
machine is never oversubscribed, as in the test suite. The times are printed, never asserted.

Cell times come from the execution timestamps that Jupyter records in each cell's metadata.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINS = re.compile(r"\*This (section|page) trains\b")  # how a training page says so at its top


@dataclass(frozen=True)
class Run:
    notebook: str
    seconds: float
    cells: int
    slowest_cell: int  # 1-based among the code cells
    slowest_seconds: float
    trains: bool
    error: str = ""


def cell_seconds(cell) -> float:
    """Seconds one cell ran, from the timestamps Jupyter stores in its metadata (0 if it never ran)."""
    stamps = cell.get("metadata", {}).get("execution", {})
    start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    start, end = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in (start, end))
    return (end - start).total_seconds()


def run_one(path: str, threads: int, timeout: int) -> Run:
    """Execute one notebook in a fresh ``python3`` kernel with ``threads`` threads."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    nb = nbformat.read(path, as_version=4)
    first = "".join(next((c.source for c in nb.cells if c.cell_type == "markdown"), ""))
    error = ""
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:80]
    seconds = time.perf_counter() - start
    code = [c for c in nb.cells if c.cell_type == "code"]
    times = [cell_seconds(c) for c in code]
    slowest = max(range(len(times)), key=times.__getitem__) if times else 0
    return Run(str(Path(path).relative_to(ROOT)), seconds, len(code), slowest + 1,
               times[slowest] if times else 0.0, bool(TRAINS.search(first)), error)


def table(runs: list[Run], budget: float, train_budget: float) -> str:
    rows = [f"{'notebook':44s} {'seconds':>8s} {'cells':>5s} {'slowest cell':>13s}  budget"]
    for r in sorted(runs, key=lambda r: r.seconds, reverse=True):
        limit = train_budget if r.trains else budget
        mark = "ERROR " + r.error if r.error else (f"over {limit:.0f} s" if r.seconds > limit else "")
        slowest = f"#{r.slowest_cell}: {r.slowest_seconds:.1f} s"
        rows.append(f"{r.notebook:44s} {r.seconds:8.1f} {r.cells:5d} {slowest:>13s}  {mark}".rstrip())
    total = sum(r.seconds for r in runs)
    rows.append(f"{'total (sum over notebooks)':44s} {total:8.1f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks to run (default: every notebook under book/)")
    parser.add_argument("--workers", type=int, default=1, help="notebooks run side by side (default 1)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds allowed to a page (default 60)")
    parser.add_argument("--train-budget", type=float, default=90.0,
                        help="seconds allowed to a page that trains (default 90)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed to one cell (default 600)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    paths = [str(Path(p).resolve()) for p in args.paths] or sorted(
        str(p) for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    print(f"{len(paths)} notebooks, {args.workers} at a time, {threads} thread(s) each")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(run_one, paths, [threads] * len(paths), [args.timeout] * len(paths)))
    print(table(runs, args.budget, args.train_budget))
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 1 if any(r.error for r in runs) else 0
