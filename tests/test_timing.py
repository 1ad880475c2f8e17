"""visarch.timing: median_seconds, the median of the timed calls on a scripted clock, warm-up calls untimed;
autorange_seconds, torch.utils.benchmark's blocked autorange."""

import statistics
import time

import pytest

from visarch import timing
from visarch.timing import autorange_seconds, median_seconds


class ScriptedClock:
    """time.perf_counter for a function whose k-th call takes durations[k] seconds."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def perf_counter(self):
        return self.now

    def run(self):  # the timed function: its call advances the clock
        self.now += self.durations[self.calls]
        self.calls += 1


@pytest.mark.parametrize("durations, warmup", [([3.0, 1.0, 2.0], 0), ([9.0, 0.5, 0.25, 4.0, 1.0, 2.0], 1),
                                               ([5.0, 7.0, 1.0, 1.5], 0)])
def test_the_median_of_the_timed_calls(monkeypatch, durations, warmup):
    clock = ScriptedClock(durations)
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    repeats = len(durations) - warmup
    assert median_seconds(clock.run, repeats=repeats, warmup=warmup) == statistics.median(durations[warmup:])
    assert clock.calls == len(durations)


def test_a_real_function_takes_a_positive_time():
    assert median_seconds(lambda: sum(range(1000)), repeats=5) > 0


@pytest.mark.parametrize("fn, kwargs, exc, match", [
    (None, {}, TypeError, "fn must be callable, got NoneType"),
    (print, {"repeats": 0}, ValueError, "repeats must be >= 1, got 0"),
    (print, {"warmup": -1}, ValueError, "warmup must be >= 0, got -1"),
    (print, {"repeats": 2.0}, TypeError, "repeats must be an int, got float"),
])
def test_bad_arguments(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        median_seconds(fn, **kwargs)


def test_autorange_times_at_least_what_the_call_sleeps():
    seconds = autorange_seconds(lambda: time.sleep(0.002), min_run_time=0.05)
    assert 0.002 <= seconds < 0.5


@pytest.mark.parametrize("fn, kwargs, exc, match", [
    (None, {}, TypeError, "autorange_seconds: fn must be callable, got NoneType"),
    (lambda: None, {"min_run_time": 0}, ValueError, "autorange_seconds: min_run_time must be > 0, got 0"),
])
def test_autorange_refuses_bad_arguments(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        autorange_seconds(fn, **kwargs)
