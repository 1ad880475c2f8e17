r"""Closed-form parameter and multiply-accumulate counts of convolutional layers.

(Building blocks, section "Grouped, depthwise and separable convolution".)

A 2D convolution from :math:`C` to :math:`C'` channels with :math:`G` groups holds the filter bank
:math:`\mathbf{W} \in \mathbb{R}^{C' \times C/G \times F_h \times F_w}` and the bias
:math:`\mathbf{b} \in \mathbb{R}^{C'}`, so

.. math::

    \#\text{params} = C' \cdot \frac{C}{G} \cdot F_h F_w \;+\; C' \;[\text{bias}].

Each of its :math:`C' H' W'` output values is a dot product of length :math:`(C/G) F_h F_w`,
so one image costs

.. math::

    \#\text{MACs} = C' H' W' \cdot \frac{C}{G} \cdot F_h F_w

multiply-accumulates (the :math:`C' H' W'` bias additions are not counted, as in
``torch.utils.flop_counter``, which reports :math:`2 \times \#\text{MACs}` FLOPs).
The weight count and the MAC count are exactly :math:`G` times smaller than for
:math:`G = 1`; the parameter count with the bias is not, since the :math:`C'`
biases do not shrink.

*Depthwise* convolution is the case :math:`G = C`, :math:`C' = mC` (channel multiplier :math:`m`):
:math:`C' F_h F_w` weights.  A *depthwise separable* convolution is a depthwise layer
(:math:`C \to mC`, filter :math:`F`, stride :math:`S`, padding :math:`P`) followed by a pointwise
(:math:`1 \times 1`) layer :math:`mC \to C'`:

.. math::

    \#\text{params} = mC F_h F_w + C' m C, \qquad
    \#\text{MACs} = H' W' \left(mC F_h F_w + C' m C\right),

plus :math:`mC + C'` biases.  For :math:`m = 1` and a square filter, separable over standard
costs :math:`\frac{C F^2 + C' C}{C' C F^2} = \frac{1}{C'} + \frac{1}{F^2}`
(MobileNets, Howard et al. 2017).

These are the formulas the book states; ``tests/test_cost.py`` checks them
against ``torch.nn.Conv2d`` and ``torch.utils.flop_counter.FlopCounterMode``.
``parameter_count`` and ``model_macs`` are the measured side that the chapters compare such closed
forms with: ``model_macs`` runs a whole network once under ``FlopCounterMode`` (on the ``meta``
device, so a 20-GMAC VGG costs nothing) and halves the count, which gives the multiply-accumulates
that papers call "FLOPs" (ResNet-50's "3.8-4.1 GFLOPs", RegNet's "400MF").  Elementwise work
(activations, normalization, pooling, the bias additions) is not counted, as in the papers.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from visarch.functional._checks import check_int, pair

__all__ = ["conv_parameters", "conv_macs", "forward_macs", "model_macs", "parameter_count", "separable_conv_parameters",
           "separable_conv_macs"]


def _check_layer(c_in, c_out, groups):
    """Validate channel counts and groups; return ``C/G``."""
    check_int(c_in, "input channels C", low=1)
    check_int(c_out, "output channels C'", low=1)
    check_int(groups, "number of groups G", low=1)
    if c_in % groups:
        raise ValueError(f"input channels C={c_in} are not divisible by groups G={groups}")
    if c_out % groups:
        raise ValueError(f"output channels C'={c_out} are not divisible by groups G={groups}")
    return c_in // groups


def _check_bias(bias):
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")


def conv_parameters(c_in, c_out, kernel_size, *, groups=1, bias=True) -> int:
    r"""Number of parameters of ``torch.nn.Conv2d(c_in, c_out, kernel_size, groups=groups, bias=bias)``.

    .. math:: C' \cdot (C/G) \cdot F_h F_w + C' \,[\text{bias}]

    A 1D convolution with filter length F has the count of ``kernel_size=(1, F)``.  Checked against
    ``torch.nn.Conv2d`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels.
        kernel_size: F or ``(F_h, F_w)``.
        groups: G, which must divide C and C'.
        bias: count the C' biases.
    """
    c_per_group = _check_layer(c_in, c_out, groups)
    fh, fw = pair(kernel_size, "kernel_size F", low=1)
    _check_bias(bias)
    return c_out * c_per_group * fh * fw + (c_out if bias else 0)


def conv_macs(c_in, c_out, kernel_size, output_size, *, groups=1) -> int:
    r"""Multiply-accumulates of ``torch.nn.Conv2d(c_in, c_out, kernel_size, groups=groups)`` on one image.

    .. math:: C' H' W' \cdot (C/G) \cdot F_h F_w

    Stride and padding enter only through the output size.  Bias additions are not counted.  Checked
    against ``torch.utils.flop_counter.FlopCounterMode`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels.
        kernel_size: F or ``(F_h, F_w)``.
        output_size: H' or ``(H', W')``, the size of the *output* (see
            :func:`~visarch.functional.conv.conv_output_size`).
        groups: G, which must divide C and C'.
    """
    c_per_group = _check_layer(c_in, c_out, groups)
    fh, fw = pair(kernel_size, "kernel_size F", low=1)
    h_out, w_out = pair(output_size, "output_size H'", low=1)
    return c_out * h_out * w_out * c_per_group * fh * fw


def separable_conv_parameters(c_in, c_out, kernel_size, *, multiplier=1, bias=True) -> int:
    r"""Parameters of a depthwise separable convolution: depthwise ``C -> mC``, then pointwise ``mC -> C'``.

    .. math:: mC F_h F_w + C' m C \;+\; (mC + C') \,[\text{bias}]

    Checked against the two ``torch.nn.Conv2d`` layers in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels of the pointwise layer.
        kernel_size: the depthwise filter, F or ``(F_h, F_w)``.
        multiplier: the channel multiplier m of the depthwise layer (``groups=C``, ``C * m`` output channels).
        bias: count the biases of both layers.
    """
    c_mid = c_in * check_int(multiplier, "channel multiplier m", low=1)
    return conv_parameters(c_in, c_mid, kernel_size, groups=c_in, bias=bias) + conv_parameters(
        c_mid, c_out, 1, bias=bias
    )


def separable_conv_macs(c_in, c_out, kernel_size, output_size, *, multiplier=1) -> int:
    r"""Multiply-accumulates of a depthwise separable convolution on one image.

    .. math:: H' W' \left(mC F_h F_w + C' m C\right)

    Checked against ``torch.utils.flop_counter.FlopCounterMode`` in ``tests/test_cost.py``.

    Args:
        c_in: C, the input channels.
        c_out: C', the output channels of the pointwise layer.
        kernel_size: the depthwise filter, F or ``(F_h, F_w)``.
        output_size: H' or ``(H', W')``, the output of the depthwise layer, which the pointwise layer keeps.
        multiplier: the channel multiplier m of the depthwise layer.
    """
    c_mid = c_in * check_int(multiplier, "channel multiplier m", low=1)
    return conv_macs(c_in, c_mid, kernel_size, output_size, groups=c_in) + conv_macs(
        c_mid, c_out, 1, output_size
    )


def parameter_count(module) -> int:
    """The number of entries in ``module``'s parameters, a parameter shared by several submodules counted once.

    ``module.parameters()`` yields a shared parameter once; the count works on the ``meta`` device.
    """
    return sum(p.numel() for p in module.parameters())


def model_macs(model, input_size, *, device="meta") -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a batch of shape ``input_size``.

    Half of what ``torch.utils.flop_counter.FlopCounterMode`` counts, since torch reports two FLOPs
    per multiply-accumulate of a convolution, linear layer or matrix product.  With the default
    ``device="meta"`` the model must have been built on the meta device (``with torch.device("meta")``):
    no memory is allocated and no arithmetic is done.  The model is put in eval mode.

    Args:
        model: the ``torch.nn.Module``.
        input_size: the shape of the input batch, e.g. ``(1, 3, 224, 224)`` for ``[N, C, H, W]``.
        device: where the input is made, ``"meta"`` or the model's device.
    """
    if not isinstance(input_size, (tuple, list)) or not all(isinstance(n, int) and n > 0 for n in input_size):
        raise ValueError(f"input_size must be a tuple of positive ints, got {input_size!r}")
    return forward_macs(model.eval(), torch.empty(input_size, device=device))


def forward_macs(fn, *args, **kwargs) -> int:
    """Multiply-accumulates that ``FlopCounterMode`` counts while ``fn(*args, **kwargs)`` runs once without autograd.

    That is half its FLOPs, two per multiply-accumulate of a convolution, linear layer or matrix product
    (elementwise work is not counted).  ``fn`` is a module or any function of tensors, real or on the meta
    device, called with ``args`` and ``kwargs``; a module keeps its train or eval mode.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a module or a function, got {type(fn).__name__}")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2
