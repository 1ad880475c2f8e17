"""visarch.roofline: the traffic counts equal what torch builds and counts (the patch matrix of
``F.unfold``, the score matrix of ``q @ k^T``, the operations of ``FlopCounterMode``); the roofline
and the slowdown bound follow from the time model; the measurements return sane rates."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from visarch.plot import roofline
from visarch.roofline import (
    Traffic,
    attainable_rate,
    attention_traffic,
    im2col_traffic,
    measure_bandwidth,
    measure_matmul_rate,
    unfused_slowdown,
)


def counted_flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("n, c, c_out, kernel, stride, padding, size", [
    (2, 3, 5, (3, 3), 1, 1, (8, 8)),
    (1, 4, 7, (2, 3), 2, 0, (9, 10)),
    (3, 2, 64, (1, 1), 1, 0, (5, 4)),
    (2, 16, 8, (5, 5), 3, 2, (11, 13)),
])
def test_im2col_traffic_is_the_unfolded_matrix_and_its_product(n, c, c_out, kernel, stride, padding, size):
    x, weight = torch.randn(n, c, *size), torch.randn(c_out, c, *kernel)
    patches = F.unfold(x, kernel, padding=padding, stride=stride)  # [N, C F_h F_w, H' W'], torch's im2col
    output_size = F.conv2d(x, weight, stride=stride, padding=padding).shape[2:]
    traffic = im2col_traffic(c, c_out, kernel, tuple(output_size), batch=n)
    assert traffic.bytes == 2 * patches.numel() * patches.element_size()  # written once, read once
    assert traffic.flops == counted_flops(lambda: weight.view(c_out, -1) @ patches)
    assert traffic.intensity == c_out / 4


@pytest.mark.parametrize("heads, length, source, d", [(1, 7, 7, 4), (6, 16, 9, 64), (2, 5, 33, 8)])
def test_attention_traffic_is_four_passes_over_the_scores(heads, length, source, d):
    q, k, v = torch.randn(heads, length, d), torch.randn(heads, source, d), torch.randn(heads, source, d)
    scores = q @ k.transpose(-2, -1)  # [heads, L, S]
    traffic = attention_traffic(length, source, d, heads=heads)
    assert traffic.bytes == 4 * scores.numel() * scores.element_size()
    assert traffic.flops == counted_flops(lambda: torch.softmax(q @ k.transpose(-2, -1), -1) @ v)
    assert traffic.intensity == d / 4


def test_the_roofline_is_the_lower_of_the_two_bounds():
    peak, bandwidth = 100e9, 10e9  # ridge point at 10 FLOP per byte
    assert attainable_rate(2.5, peak=peak, bandwidth=bandwidth) == 25e9  # memory-bound
    assert attainable_rate(10.0, peak=peak, bandwidth=bandwidth) == peak  # the ridge
    assert attainable_rate(1e3, peak=peak, bandwidth=bandwidth) == peak  # compute-bound


@pytest.mark.parametrize("flops, nbytes", [(10**9, 10**8), (10**6, 10**7), (123, 456)])
def test_the_slowdown_is_the_time_of_product_and_traffic_over_the_product(flops, nbytes):
    peak, bandwidth = 80e9, 12e9
    product, traffic = flops / peak, nbytes / bandwidth  # seconds of each, one after the other
    slowdown = unfused_slowdown(Traffic(flops, nbytes), peak=peak, bandwidth=bandwidth)
    assert math.isclose(slowdown, (product + traffic) / product, rel_tol=1e-12)


def test_measured_rates_are_positive_and_finite():
    bandwidth = measure_bandwidth(megabytes=4, min_run_time=0.01)
    rate = measure_matmul_rate(size=64, min_run_time=0.01)
    for value in (bandwidth, rate):
        assert math.isfinite(value) and value > 1e6


def test_the_figure_draws_every_point():
    fig = roofline({"a": [(2.0, 1e9, "x"), (3.0, 2e9, "y")], "b": [(50.0, 4e10, "z")]}, peak=5e10, bandwidth=1e10)
    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 1 + 2  # the roof, the ridge, one line of markers per series
    assert [t.get_text() for t in ax.texts] == ["ridge R/B = 5.0", "x", "y", "z"]
    fig.clf()


@pytest.mark.parametrize("call, error, match", [
    (lambda: im2col_traffic(0, 4, (3, 3), (8, 8)), ValueError, "c_in must be >= 1"),
    (lambda: im2col_traffic(2, 4, (3, 3.0), (8, 8)), TypeError, "F_w must be an int"),
    (lambda: attention_traffic(8, 8, 64, heads=True), TypeError, "heads must be an int"),
    (lambda: attainable_rate(4.0, peak=0.0, bandwidth=1e9), ValueError, "peak must be > 0"),
    (lambda: unfused_slowdown(Traffic(1, 1), peak=1e9, bandwidth=float("nan")), ValueError, "bandwidth must be > 0"),
    (lambda: measure_bandwidth(megabytes=0), ValueError, "megabytes must be >= 1"),
    (lambda: measure_matmul_rate(size=64, min_run_time="1"), TypeError,
     "min_run_time must be a real number, got str '1'"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
