r"""Pieces the models share: convolution + batch norm + activation, squeeze-and-excitation,
stochastic depth, channel rounding, and the check every model's input goes through.

Squeeze-and-excitation (Hu et al., 2018) reweights the :math:`C` channels of
:math:`\mathbf{x} \in \mathbb{R}^{C \times H \times W}`: squeeze each channel to its mean
:math:`z_c = \frac{1}{HW}\sum_{i,j} x_c(i, j)`, excite with a two-layer bottleneck
:math:`\mathbf{s} = \sigma(\mathbf{W}_2\, \delta(\mathbf{W}_1 \mathbf{z} + \mathbf{b}_1) + \mathbf{b}_2)`,
:math:`\mathbf{W}_1 \in \mathbb{R}^{C_s \times C}`, and scale, :math:`\tilde{x}_c = s_c x_c` with
:math:`s_c \in (0, 1)`.  Its two 1 x 1 convolutions hold the parameters; their count is
:func:`~visarch.cost.squeeze_excitation_parameters`.  The families differ in
:math:`C_s` (:math:`C/16` in SENet, a quarter of the block's *input* width in EfficientNet and
RegNetY) and in :math:`\delta` (ReLU, or SiLU in EfficientNet).
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_int, check_real

__all__ = ["SqueezeExcitation", "StochasticDepth", "check_image", "conv_bn_act", "make_divisible"]


def conv_bn_act(c_in: int, c_out: int, kernel_size: int, *, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU, eps: float = 1e-5) -> nn.Sequential:
    """A "same"-padded convolution without bias, batch norm, then an activation, as one ``Sequential``.

    The convolution has no bias because batch norm's shift would cancel it.  With an odd kernel size the
    block maps ``[B, C, H, W]`` to ``[B, C', ceil(H/S), ceil(W/S)]``.

    Args:
        c_in: input channels C.
        c_out: output channels C'.
        kernel_size: side of the square kernel; the padding is ``(kernel_size - 1) // 2`` on each side.
        stride: S.
        groups: channel groups of the convolution (``groups=c_in`` makes it depthwise).
        act: activation class, called without arguments; None leaves the block linear.
        eps: batch norm's epsilon.

    Returns:
        ``Sequential(Conv2d, BatchNorm2d, act())``, without the activation when ``act`` is None.
    """
    layers = [nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out, eps=eps)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): each channel scaled by a gate computed from all channel means.

    Maps ``[B, C, H, W]`` to ``[B, C, H, W]``: the channel means ``[B, C, 1, 1]`` go through two 1 x 1
    convolutions, C to :math:`C_s` and back, with ``act`` between them and a sigmoid after, and the
    resulting gates in (0, 1) multiply the channels (the module docstring gives the formula).

    Args:
        channels: C.
        squeeze: :math:`C_s`, the channels of the bottleneck.
        act (type[torch.nn.Module]): activation class between the two convolutions (ReLU; SiLU in EfficientNet).
    """

    def __init__(self, channels: int, squeeze: int, *, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        check_int(squeeze, "squeeze channels C_s", where=type(self).__name__, ge=1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)  # W_1, b_1 as a 1x1 convolution on [B, C, 1, 1]
        self.act = act()
        self.expand = nn.Conv2d(squeeze, channels, 1)  # W_2, b_2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # squeeze: [B, C, 1, 1]
        s = torch.sigmoid(self.expand(self.act(self.reduce(s))))  # excite: [B, C, 1, 1]
        return x * s  # scale


class StochasticDepth(nn.Module):
    """Stochastic depth (Huang et al., 2016): in training, drop a residual branch for whole images at random.

    Maps ``[B, ...]`` to ``[B, ...]``: in training, each image's tensor is zeroed with probability p and
    otherwise divided by 1 - p, so its expected value is unchanged; in evaluation mode, or with p = 0, the
    input passes unchanged.  The draw uses the global generator, so ``torch.manual_seed`` makes it repeatable.

    Args:
        p: the probability of dropping an image's branch, in [0, 1).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = check_real(p, "p", where=type(self).__name__, ge=0, lt=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1 - self.p) / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10 % below it.

    This is the rounding of MobileNetV2's and EfficientNet's channel counts: halves round up, the result is
    at least ``divisor``, and a result more than 10 % below ``value`` is raised by one more ``divisor``.

    Args:
        value: a channel count, usually a width multiplier times a base count.
        divisor: the multiple the result must be.

    Returns:
        The rounded channel count.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def check_image(x: torch.Tensor, *, in_channels: int, min_size: int, model: str,
                why: str = "the network's total stride") -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, in_channels, H, W]`` with ``H, W >= min_size``.

    ``min_size`` is usually the network's total stride: a smaller image would be reduced to nothing
    before the classifier.  Where pooling windows need more (AlexNet), ``why`` says so.

    Args:
        x: the model's input.
        in_channels: the channels C the model expects.
        min_size: the smallest height and width it accepts.
        model: the model's name, for the error message.
        why: the reason for ``min_size``, for the error message.
    """
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{model}: input must be [B, {in_channels}, H, W], got {tuple(x.shape)}")
    if min(x.shape[2:]) < min_size:
        raise ValueError(f"{model}: input {x.shape[2]}x{x.shape[3]} is smaller than {min_size}x{min_size}, "
                         f"{why}")
