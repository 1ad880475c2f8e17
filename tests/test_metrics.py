"""PSNR against scikit-image's ``peak_signal_noise_ratio`` and against its closed form."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from skimage.metrics import peak_signal_noise_ratio

from visarch.metrics import psnr


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1),
       peak=st.sampled_from([1.0, 2.0, 255.0]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_psnr_matches_scikit_image(shape, seed, peak, dtype):
    generator = torch.Generator().manual_seed(seed)
    reference = peak * torch.rand(shape, generator=generator, dtype=torch.float64)
    estimate = reference + 0.1 * peak * torch.randn(shape, generator=generator, dtype=torch.float64)
    reference, estimate = reference.to(dtype), estimate.to(dtype)
    expected = peak_signal_noise_ratio(reference.double().numpy(), estimate.double().numpy(), data_range=peak)
    assert psnr(estimate, reference, peak=peak) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("error", [0.5, 0.1, 0.01, 1e-4])
def test_constant_error_gives_twenty_log_of_peak_over_error(error):
    reference = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    signs = (torch.arange(reference.numel(), dtype=torch.float64) % 2 * 2 - 1).view_as(reference)
    # (r + e) - r is e only up to rounding, a relative 1e-12 at e = 1e-4
    assert psnr(reference + error * signs, reference) == pytest.approx(-20 * math.log10(error), rel=1e-10)


def test_float32_is_summed_in_float64():
    # a million equal float32 errors: a float32 running sum would drift; the float64 one does not
    reference = torch.zeros(1000, 1000)
    estimate = torch.full((1000, 1000), 0.1)
    assert psnr(estimate, reference) == pytest.approx(-20 * math.log10(np.float32(0.1)), rel=1e-12)


def test_identical_images_give_infinity():
    x = torch.rand(4, 4)
    assert psnr(x, x.clone()) == math.inf


def test_halving_the_error_gains_six_decibels():
    reference = torch.rand(32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = torch.randn(32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gain = psnr(reference + noise / 20, reference) - psnr(reference + noise / 10, reference)
    assert gain == pytest.approx(20 * math.log10(2), rel=1e-12)


@pytest.mark.parametrize(
    ("estimate", "reference", "kwargs", "error", "match"),
    [
        (torch.zeros(2, 3), torch.zeros(3, 2), {}, ValueError, r"one shape, got \(2, 3\) and \(3, 2\)"),
        (torch.zeros(0), torch.zeros(0), {}, ValueError, "at least one value"),
        (torch.zeros(2), torch.zeros(2), {"peak": 0.0}, ValueError, r"peak must be in \(0, inf\)"),
        (torch.zeros(2), torch.zeros(2), {"peak": math.inf}, ValueError, r"peak must be in \(0, inf\), got inf"),
        (torch.zeros(2), torch.zeros(2), {"peak": True}, TypeError, "peak must be a real number"),
        (torch.zeros(2, dtype=torch.uint8), torch.zeros(2), {}, TypeError, "estimate must have a floating-point"),
        (torch.zeros(2), np.zeros(2), {}, TypeError, "reference must be a torch.Tensor, got ndarray"),
    ],
)
def test_bad_input(estimate, reference, kwargs, error, match):
    with pytest.raises(error, match=match):
        psnr(estimate, reference, **kwargs)
