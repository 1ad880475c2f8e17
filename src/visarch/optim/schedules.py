r"""Learning-rate schedules, as the factor ``torch.optim.lr_scheduler.LambdaLR`` multiplies the base rate by.

:func:`warmup_cosine` is the schedule of the ViT and DeiT recipes: the rate rises linearly over the first
:math:`w` updates (so that Adam's first steps, taken while its estimates of the gradients' scale rest on a
handful of batches, stay small) and then falls along a half cosine to zero at update :math:`T`
(Loshchilov and Hutter, 2017).
"""

from __future__ import annotations

import math

from visarch.checks import check_int

__all__ = ["warmup_cosine"]


def warmup_cosine(warmup: int, total: int):
    r"""The factor of the learning rate after ``step`` updates: linear warm-up, then a half cosine to zero.

    .. math:: \lambda(s) = \min\!\left(1, \frac{s + 1}{w}\right) \cdot \frac{1 + \cos(\pi \min(s, T) / T)}{2},
        \qquad s = 0, 1, 2, \dots

    For :math:`s < w` this is the product of torch's ``LinearLR`` (from :math:`1/w` to 1 over :math:`w - 1`
    steps) and ``CosineAnnealingLR`` (period :math:`T`), which ``tests/test_optim.py`` checks; after
    :math:`T` updates it stays at zero.

    Args:
        warmup: w, the updates of the warm-up, at least 1.
        total: T, the updates until the rate reaches zero, at least 1.

    Returns:
        ``factor(step)``, for ``torch.optim.lr_scheduler.LambdaLR(optimizer, factor)``.
    """
    check_int(warmup, "warmup", where="warmup_cosine", ge=1)
    check_int(total, "total", where="warmup_cosine", ge=1)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    return factor
