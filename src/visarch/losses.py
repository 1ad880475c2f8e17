"""Training objectives that several pages hand to :func:`~visarch.train.loop.fit`.

A ``loss_fn`` of :func:`~visarch.train.loop.fit` is called as ``loss_fn(model, *batch)``.  The classifiers of the
ResNet-50 and CvT pages train on the digits with the same objective: cross-entropy of the class scores
of images moved by a random offset of at most one pixel (:func:`~visarch.data.random_shift`), so the
network sees a slightly different copy of every digit in every epoch.  With logits :math:`z = f(\\tau(x))`
of the shifted image :math:`\\tau(x)` and label :math:`y` among :math:`K` classes, the loss of one example is

.. math::

    \\ell = -\\sum_{k=1}^{K} q_k \\log \\operatorname{softmax}(z)_k, \\qquad
    q_k = (1 - \\varepsilon)\\,[k = y] + \\varepsilon / K,

averaged over the batch, where :math:`\\varepsilon` is the label smoothing (0: the one-hot target).
``tests/test_losses.py`` checks it against ``torch.nn.functional.cross_entropy`` of the shifted images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.data import random_shift

__all__ = ["shifted_cross_entropy"]


def shifted_cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, max_shift: int = 1,
                          label_smoothing: float = 0.0, generator: torch.Generator | None = None,
                          channels_last: bool = False) -> torch.Tensor:
    """Cross-entropy of ``model`` on the batch, each image shifted by a random offset first.

    A ``loss_fn`` for :func:`~visarch.train.loop.fit`; fix the keyword arguments with
    ``functools.partial(shifted_cross_entropy, label_smoothing=0.1)``.

    Args:
        model: maps images ``[B, C, H, W]`` to class scores ``[B, K]``.
        images: the batch ``[B, C, H, W]``.
        labels: class indices ``[B]``.
        max_shift: the largest offset along each axis, in pixels (:func:`~visarch.data.random_shift`);
            0 leaves the images as they are and draws nothing.
        label_smoothing: :math:`\\varepsilon` in [0, 1], as in ``torch.nn.functional.cross_entropy``.
        generator: where the offsets are drawn (default: torch's global generator, which
            :func:`~visarch.train.loop.fit` seeds).
        channels_last: hand the model the shifted images in ``torch.channels_last`` memory format (the
            same numbers; the CPU's convolutions run faster in it).

    Returns:
        The scalar mean loss over the batch.
    """
    check_int(max_shift, "max_shift", where="shifted_cross_entropy", ge=0)
    check_real(label_smoothing, "label_smoothing", where="shifted_cross_entropy", ge=0, le=1)
    if max_shift:
        images = random_shift(images, max_shift, generator=generator)  # [B, C, H, W]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return F.cross_entropy(model(images), labels, label_smoothing=label_smoothing)
