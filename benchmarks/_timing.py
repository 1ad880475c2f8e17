"""Timing shared by the benchmarks: functions take turns, medians are compared."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from torch.utils.benchmark import Timer


def alternating_medians(fns: list[Callable[[], object]], *, threads: int, rounds: int,
                        min_run_time: float) -> list[float]:
    """Median time of one call of each zero-argument function, in ms.

    The functions take turns for ``rounds`` rounds of ``blocked_autorange``, so a burst of load
    from elsewhere on the machine hits all of them alike; the median is over every block of
    every round.
    """
    timers = [Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(rounds):
        for timer, fn_times in zip(timers, times, strict=True):
            fn_times.extend(timer.blocked_autorange(min_run_time=min_run_time / rounds).times)
    return [statistics.median(fn_times) * 1e3 for fn_times in times]


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))
