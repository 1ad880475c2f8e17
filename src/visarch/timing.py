"""Wall-clock timing for the pages that compare the speed of two ways of computing one thing.

A page reports speed as a ratio of two times measured in the same run (the book's rule), each the
median of a few calls, so that one call slowed down by the rest of the machine does not decide it.
The benchmarks, which time for longer, use ``torch.utils.benchmark`` instead.
"""

from __future__ import annotations

import statistics
import time

from visarch.checks import check_int

__all__ = ["median_seconds"]


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
