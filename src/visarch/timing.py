"""Wall-clock timing for the pages that compare the speed of two ways of computing one thing.

A page reports speed as a ratio of two times measured in the same run (the book's rule), each the
median of a few calls, so that one call slowed down by the rest of the machine does not decide it
(:func:`median_seconds`).  A measurement of the machine itself, which may take longer, uses
``torch.utils.benchmark``'s blocked autorange over a minimum run time (:func:`autorange_seconds`).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.benchmark import Timer

from visarch.checks import check_int, check_real

__all__ = ["autorange_seconds", "median_seconds"]


def median_seconds(fn, *, repeats: int = 3, warmup: int = 0) -> float:
    """The median wall-clock time of ``repeats`` calls of ``fn()``, in seconds, after ``warmup`` untimed calls.

    Args:
        fn: a function of no arguments; what it returns is ignored.
        repeats: the timed calls (an odd count makes the median one of them).
        warmup: calls made first and not timed (a first call may pay for allocations and caches).

    Returns:
        The median of the ``repeats`` times, measured with ``time.perf_counter``.
    """
    if not callable(fn):
        raise TypeError(f"median_seconds: fn must be callable, got {type(fn).__name__}")
    check_int(repeats, "repeats", where="median_seconds", ge=1)
    check_int(warmup, "warmup", where="median_seconds", ge=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autorange_seconds(fn, *, min_run_time: float = 0.3) -> float:
    """The median time of one ``fn()``, in seconds, over ``torch.utils.benchmark``'s blocked autorange.

    The timer calls ``fn`` in blocks sized so that each block is long enough to time well, until
    ``min_run_time`` seconds have passed, with as many threads as torch uses.

    Args:
        fn: a function of no arguments; what it returns is ignored.
        min_run_time: the least total time spent measuring, in seconds.

    Returns:
        The median over the blocks of the time per call.
    """
    if not callable(fn):
        raise TypeError(f"autorange_seconds: fn must be callable, got {type(fn).__name__}")
    check_real(min_run_time, "min_run_time", where="autorange_seconds", gt=0)
    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median
