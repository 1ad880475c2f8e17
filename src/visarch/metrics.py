"""Image-quality figures of merit shared by the denoising pages.

Peak signal-to-noise ratio compares an estimate :math:`\\hat x` with a reference :math:`x`
through their mean squared error over all :math:`n` values,

.. math::

    \\mathrm{PSNR}(\\hat x, x) = 10 \\log_{10} \\frac{p^2}{\\frac1n \\sum_i (\\hat x_i - x_i)^2}
    \\quad \\text{dB},

where :math:`p` is the peak of the intensity range (1 for images in [0, 1]).  Each 3 dB is a
halving of the error.  The U-Net, NL-means and non-local-block pages all report it, so it
lives here once; ``tests/test_metrics.py`` checks it against scikit-image's
``peak_signal_noise_ratio``.
"""

from __future__ import annotations

import math

import torch

from visarch.checks import check_real

__all__ = ["psnr"]


def psnr(estimate: torch.Tensor, reference: torch.Tensor, *, peak: float = 1.0) -> float:
    """PSNR in dB of ``estimate`` against ``reference``, two tensors of one shape (any shape).

    The error is summed in float64 whatever the inputs' dtype, so a float32 image and its
    float64 copy score alike.  Values outside [0, peak] are compared as they are: clamp the
    estimate first where the display would clip it.  Checked against scikit-image's
    ``peak_signal_noise_ratio`` in ``tests/test_metrics.py``.

    Args:
        estimate: floating point, e.g. a denoised image ``[C, H, W]`` or a batch ``[N, C, H, W]``.
        reference: the clean values, of the same shape.
        peak: p, the peak of the intensity range (1 for images in [0, 1]).

    Returns:
        The PSNR in dB; ``math.inf`` for identical tensors.
    """
    for name, t in (("estimate", estimate), ("reference", reference)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must have a floating-point dtype, got {t.dtype}")
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate and reference must have one shape, got {tuple(estimate.shape)} "
                         f"and {tuple(reference.shape)}")
    if estimate.numel() == 0:
        raise ValueError("PSNR needs at least one value, got empty tensors")
    check_real(peak, "peak", where="psnr", gt=0, lt=math.inf)
    mse = (estimate.double() - reference.double()).square().mean().item()
    if mse == 0:
        return math.inf
    return 10 * math.log10(peak**2 / mse)
