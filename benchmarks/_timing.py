"""Timing shared by the benchmarks: functions take turns, medians are compared."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

import torch
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


def add_timing_arguments(parser: argparse.ArgumentParser, *, min_run_time: float, batch: int | None = None) -> None:
    """The options every benchmark shares: threads, timing budget, rounds (and a batch size N if it has one)."""
    parser.add_argument("--threads", type=int, help="torch.set_num_threads(THREADS); default: torch's own")
    if batch is not None:
        parser.add_argument("--batch", type=int, default=batch, help=f"batch size N (default {batch})")
    parser.add_argument("--min-run-time", type=float, default=min_run_time,
                        help=f"seconds of timing per function and shape (default {min_run_time})")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the functions take turns this many times per shape (default 3)")


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count if given; return the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def print_reconciled_counts(book: tuple[str, int], terms: list[tuple[str, int]], peer: tuple[str, int]) -> None:
    """Print the book's parameter count, each signed term that turns it into a peer's, and the peer's
    count; fail if the terms no longer close the gap (a version of either side changed)."""
    (book_label, n_book), (peer_label, n_peer) = book, peer
    width = max(len(book_label), len(peer_label), *(len(text) + 2 for text, _ in terms))
    print("parameters:")
    print(f"  {book_label:{width}s} {n_book:13,d}")
    for text, n in terms:
        print(f"  {'+' if n >= 0 else '-'} {text:{width - 2}s} {abs(n):13,d}")
    reconciled = n_book + sum(n for _, n in terms)
    print(f"  = {'reconciled':{width - 2}s} {reconciled:13,d}")
    print(f"  {peer_label:{width}s} {n_peer:13,d}")
    assert reconciled == n_peer, f"the counts no longer reconcile: {reconciled:,} != {n_peer:,}"
