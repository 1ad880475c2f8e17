"""visarch.tolerance: the tolerance of a reduction of n terms holds for correct float32 results
computed in different orders by torch, is needed (a fixed atol fails for long reductions), and
still catches a single wrong term.  The truth is the same sum in float64."""

import math

import pytest
import torch
from torch.testing import assert_close

from visarch.tolerance import reduction_tolerance

LENGTHS = (9, 576, 4608, 16384)  # a 3 x 3 filter; 64 and 512 channels of 3 x 3; a long matrix product
U32 = 2.0**-24


def products(n, *, dtype=torch.float32, seed=0):
    """Pairs of unit-variance vectors of length n (at most 2^20 numbers), and the scale m = mean sum_i |x_i y_i|."""
    rows = min(4096, 2**20 // n)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=gen, dtype=torch.float64)
    y = torch.randn(rows, n, generator=gen, dtype=torch.float64)
    scale = float((x * y).abs().sum(1).mean())
    return x.to(dtype), y.to(dtype), scale


@pytest.mark.parametrize("n", LENGTHS)
def test_two_summation_orders_agree_within_the_tolerance(n):
    x, y, scale = products(n)
    blocked = (x[:, None, :] @ y[:, :, None]).flatten()  # torch's matrix-multiply kernel
    sequential = torch.cumsum(x * y, 1)[:, -1]  # one term after another, left to right
    truth = (x.double() * y.double()).sum(1)
    tol = reduction_tolerance(n, scale=scale)
    assert_close(blocked, sequential, **tol)
    for result in (blocked, sequential):  # and each is within half of it from the exact sum
        assert_close(result.double(), truth, rtol=tol["rtol"] / 2, atol=tol["atol"] / 2)


def test_a_fixed_tolerance_fails_a_long_reduction():
    x, y, _ = products(16384)
    blocked = (x[:, None, :] @ y[:, :, None]).flatten()
    sequential = torch.cumsum(x * y, 1)[:, -1]
    assert not torch.allclose(blocked, sequential, rtol=1.3e-6, atol=1e-5)  # assert_close's float32 default


@pytest.mark.parametrize("n", LENGTHS[:3])
def test_one_wrong_term_fails(n):
    x, y, scale = products(n)
    right = (x[:, None, :] @ y[:, :, None]).flatten()
    wrong = right + x[:, 0] * y[:, 0]  # the first product counted twice, as an off-by-one window would
    flagged = ~torch.isclose(wrong, right, **reduction_tolerance(n, scale=scale))
    assert flagged.float().mean() > 0.5, float(flagged.float().mean())


def test_float64_is_tight_and_the_formula_is_the_docstrings():
    x, y, scale = products(4608, dtype=torch.float64)
    tol = reduction_tolerance(4608, dtype=torch.float64, scale=scale)
    assert tol["rtol"] == 2 * 8 * math.sqrt(4608) * 2.0**-53 and tol["atol"] == tol["rtol"] * scale
    assert_close((x[:, None, :] @ y[:, :, None]).flatten(), torch.cumsum(x * y, 1)[:, -1], **tol)
    assert reduction_tolerance(9)["rtol"] == 2 * 8 * 3 * U32


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"n": 0}, ValueError, r"n \(the terms summed\) must be >= 1, got 0"),
    ({"n": 2.0}, ValueError, r"n \(the terms summed\) must be an int, got float"),
    ({"n": True}, ValueError, r"n \(the terms summed\) must be an int, got bool"),
    ({"n": 4, "dtype": torch.int32}, TypeError, "floating-point torch.dtype"),
    ({"n": 4, "scale": 0.0}, ValueError, "scale must be > 0, got 0.0"),
    ({"n": 4, "lam": -1}, ValueError, "lam must be > 0, got -1"),
])
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        reduction_tolerance(**kwargs)
