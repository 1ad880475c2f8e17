"""How close two floating-point results of one computation must be: tolerances that grow with
the length of the reduction.

A convolution output, an entry of a matrix product or an attention output is a sum of :math:`n`
products :math:`s = \\sum_{i=1}^n x_i y_i`.  Two correct implementations add those products in
different orders (loop by loop, blocked by a matrix-multiply library, vectorised differently on
another CPU), and every addition rounds to the nearest float, losing up to the unit roundoff
:math:`u` (:math:`2^{-24}` in float32, :math:`2^{-53}` in float64).  The computed sum
:math:`\\hat s` obeys the worst-case bound

.. math::

    |\\hat s - s| \\le \\gamma_n \\sum_i |x_i y_i|, \\qquad \\gamma_n = \\frac{nu}{1 - nu}

(Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, §3.1), and, modelling the rounding
errors as independent and of mean zero, the probabilistic bound

.. math::

    |\\hat s - s| \\le \\lambda \\sqrt{n}\\, u \\sum_i |x_i y_i| \\quad (\\text{to first order in } u),

which fails with a probability of at most about :math:`2n\\,e^{-\\lambda^2/2}` (Higham and Mary,
*A new approach to probabilistic rounding error analysis*, SIAM J. Sci. Comput., 2019).  The
second is the one observed in practice: errors grow like :math:`\\sqrt n`, as a random walk.

So a fixed tolerance is wrong twice over: ``atol=1e-5`` is needlessly loose for a sum of four
float32 terms and too tight for a sum of thousands (comparing the book's convolution with torch's
on the 3 x 3 layers of a ResNet-50 once failed on one x86-64 CPU, where 1 output of 262,144
differed by 1.5e-5).  :func:`reduction_tolerance` gives the tolerance for comparing two such
results, each carrying its own rounding error, hence twice the bound above:
``|actual - expected| <= atol + rtol * |expected|`` with

.. math::

    \\text{rtol} = 2\\lambda\\sqrt{n}\\,u, \\qquad \\text{atol} = \\text{rtol} \\cdot m,

where :math:`m` is the typical size of :math:`\\sum_i |x_i y_i|` (the ``scale``; it covers outputs
that cancel to nearly zero, where the relative term alone is no bound at all).  With
:math:`\\lambda = 8` the tolerance stays small enough to catch a single wrong term: a term left out
or read from the wrong place moves an output by a whole product, about :math:`m / n`, which
exceeds :math:`16\\sqrt n\\,u\\,m` as long as :math:`n^{3/2} < 1 / (16u)`, that is for every
reduction shorter than about 10,000 terms in float32 (and any realistic one in float64); real
indexing bugs move many terms at once.  ``tests/test_tolerance.py`` checks both sides against
float64 references computed by torch.
"""

from __future__ import annotations

import math

import torch

from visarch.checks import check_int, check_real

__all__ = ["reduction_tolerance"]


def reduction_tolerance(n: int, *, dtype: torch.dtype = torch.float32, scale: float = 1.0,
                        lam: float = 8.0) -> dict[str, float]:
    """``{"rtol": ..., "atol": ...}`` for comparing two results that each sum ``n`` rounded products.

    Pass it to ``torch.testing.assert_close(actual, expected, **reduction_tolerance(n))`` or
    ``torch.allclose``.

    Args:
        n: the length of the reduction, the number of products summed into one output (a
            convolution's ``C_in / groups * F_h * F_w``, a matrix product's inner dimension, the
            number of keys of an attention row, the number of values a normalization averages).
        dtype: the floating-point type both results are computed in; its unit roundoff is
            ``torch.finfo(dtype).eps / 2``.
        scale: the typical size of the sum of the products' magnitudes, ``sum_i |x_i y_i|``.  For
            inputs of unit variance and weights of variance ``1 / n`` (the usual initialisation)
            it is about ``0.64 * sqrt(n)``; for entries of unit variance on both sides, ``0.64 * n``.
        lam: how many standard deviations of the rounding error's random walk are tolerated.

    Returns:
        The relative and absolute tolerances ``2 * lam * sqrt(n) * u`` and that times ``scale``.
    """
    check_int(n, "n (the terms summed)", where="reduction_tolerance", ge=1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"reduction_tolerance: dtype must be a floating-point torch.dtype, got {dtype!r}")
    for name, value in (("scale", scale), ("lam", lam)):
        check_real(value, name, where="reduction_tolerance", gt=0)
    rtol = 2 * lam * math.sqrt(n) * torch.finfo(dtype).eps / 2
    return {"rtol": rtol, "atol": rtol * scale}
