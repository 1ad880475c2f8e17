r"""The blocks of Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke and Alemi, 2017, figures 7 and 16-19).

A residual Inception block runs a few branches of convolutions (each with batch norm and ReLU),
concatenates them, maps the concatenation back to the input's width with a *linear* 1 x 1
convolution (with bias, no batch norm, no activation), scales it and adds it to the input:

.. math::

    y = \mathrm{ReLU}\big(x + s\, W\,[f_1(x), \dots, f_k(x)]\big).

The paper found that residual Inception networks with more than about 1000 filters became
unstable ("died") early in training unless the residual was scaled down, by :math:`s` between 0.1
and 0.3, before the addition.  Reduction blocks are plain Inception modules with stride 2 that
shrink the grid and widen the channels.  Shapes of Inception-ResNet-v2::

    InceptionResNetA  1x1 32 | 1x1 32, 3x3 32 | 1x1 32, 3x3 48, 3x3 64 -> 128 -> 1x1 384   [B, 384, 35, 35]
    ReductionA        max pool 3x3/2 | 3x3/2 n | 1x1 k, 3x3 l, 3x3/2 m  (k, l, m, n = 256, 256, 384, 384)
                                                                         [B, 384 + n + m = 1152, 17, 17]
    InceptionResNetB  1x1 192 | 1x1 128, 1x7 160, 7x1 192 -> 384 -> 1x1 1152             [B, 1152, 17, 17]
    ReductionB        max pool 3x3/2 | 1x1 256, 3x3/2 384 | 1x1 256, 3x3/2 288 |
                      1x1 256, 3x3 288, 3x3/2 320                        [B, 1152 + 992 = 2144, 8, 8]
    InceptionResNetC  1x1 192 | 1x1 192, 1x3 224, 3x1 256 -> 448 -> 1x1 2144             [B, 2144, 8, 8]

The stride-2 layers are unpadded ("V" in the figures: :math:`35 \to 17 \to 8`); every other
convolution is same-padded.  The figures print 1154 channels for block B and 2048 for block C,
neither of which can be the width of a residual block whose input has 1152 or 2144 channels
(Reduction-A's concatenation gives 1152, Reduction-B's 2144); the widths here follow from the
concatenations.  (The released TensorFlow model uses other widths again: 320, 1088 and 2080.)
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_real

__all__ = ["InceptionResNetA", "InceptionResNetB", "InceptionResNetC", "ReductionA", "ReductionB", "basic_conv"]


def basic_conv(c_in: int, c_out: int, kernel_size, *, stride: int = 1, padding: str = "same") -> nn.Sequential:
    """Convolution without bias, batch norm (eps 0.001, as the released model) and ReLU, as one ``Sequential``.

    Maps ``[B, C, H, W]`` to ``[B, C', H, W]`` with ``"same"`` padding, or to
    ``[B, C', floor((H - k)/S) + 1, ...]`` with ``"valid"``.

    Args:
        c_in: C.
        c_out: C'.
        kernel_size: an int, or a pair such as ``(1, 7)`` for the factorised filters.
        stride: S.
        padding: ``"same"`` (stride 1 only) or ``"valid"`` (the figures' "V").
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, eps=1e-3), nn.ReLU())


class _ResidualInception(nn.Module):
    """``y = ReLU(x + scale * W [branches(x)])``, ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, channels: int, branches: list[nn.Module], concat: int, scale: float):
        super().__init__()
        check_real(scale, "residual scale", where=type(self).__name__, gt=0)
        self.scale = scale
        self.branches = nn.ModuleList(branches)
        self.linear = nn.Conv2d(concat, channels, 1)  # back to the input's width, no activation ("Linear")

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The unscaled residual ``W [branches(x)]``, ``[B, C, H, W]``."""
        return self.linear(torch.cat([branch(x) for branch in self.branches], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.scale * self.residual(x))


class InceptionResNetA(_ResidualInception):
    """Inception-ResNet-A (figure 16), the 35 x 35 block: three branches of 32, 32 and 64 channels.

    Maps ``[B, C, H, W]`` to ``[B, C, H, W]`` as ``ReLU(x + scale * W [branches(x)])``; its method
    ``residual`` returns the unscaled residual ``W [branches(x)]``.

    Args:
        channels: C, 384 in Inception-ResNet-v2.
        scale: s, the factor on the residual (0.1 to 0.3 against the instability the paper reports).
    """

    def __init__(self, channels: int = 384, *, scale: float = 1.0):
        super().__init__(channels, [
            basic_conv(channels, 32, 1),
            nn.Sequential(basic_conv(channels, 32, 1), basic_conv(32, 32, 3)),
            nn.Sequential(basic_conv(channels, 32, 1), basic_conv(32, 48, 3), basic_conv(48, 64, 3)),
        ], 32 + 32 + 64, scale)


class InceptionResNetB(_ResidualInception):
    """Inception-ResNet-B (figure 17), the 17 x 17 block: a 1 x 1 and a factorised 7 x 7 branch, 192 channels each.

    Maps ``[B, C, H, W]`` to ``[B, C, H, W]`` as ``ReLU(x + scale * W [branches(x)])``.

    Args:
        channels: C, 1152 after Reduction-A.
        scale: s, the factor on the residual.
    """

    def __init__(self, channels: int = 1152, *, scale: float = 1.0):
        super().__init__(channels, [
            basic_conv(channels, 192, 1),
            nn.Sequential(basic_conv(channels, 128, 1), basic_conv(128, 160, (1, 7)), basic_conv(160, 192, (7, 1))),
        ], 192 + 192, scale)


class InceptionResNetC(_ResidualInception):
    """Inception-ResNet-C (figure 19), the 8 x 8 block: a 1 x 1 branch of 192 and a factorised 3 x 3 one of 256.

    Maps ``[B, C, H, W]`` to ``[B, C, H, W]`` as ``ReLU(x + scale * W [branches(x)])``.

    Args:
        channels: C, 2144 after Reduction-B.
        scale: s, the factor on the residual.
    """

    def __init__(self, channels: int = 2144, *, scale: float = 1.0):
        super().__init__(channels, [
            basic_conv(channels, 192, 1),
            nn.Sequential(basic_conv(channels, 192, 1), basic_conv(192, 224, (1, 3)), basic_conv(224, 256, (3, 1))),
        ], 192 + 256, scale)


class ReductionA(nn.Module):
    """Reduction-A (figure 7), ``[B, C, 35, 35] -> [B, C + n + m, 17, 17]``.

    A 3 x 3 max pool with stride 2, a 3 x 3 convolution with stride 2 to n channels, and a tower of 1 x 1
    (k), 3 x 3 (l) and 3 x 3 stride-2 (m) convolutions, concatenated; the stride-2 layers are unpadded.
    Table 1 of the paper gives Inception-ResNet-v2 ``k, l, m, n = 256, 256, 384, 384``, the defaults.

    Args:
        channels: C.
        k: channels of the tower's 1 x 1 convolution.
        l: channels of its first 3 x 3 convolution.
        m: channels of its stride-2 convolution.
        n: channels of the single stride-2 convolution.
    """

    def __init__(self, channels: int = 384, *, k: int = 256, l: int = 256, m: int = 384, n: int = 384):
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2)
        self.conv = basic_conv(channels, n, 3, stride=2, padding="valid")
        self.tower = nn.Sequential(basic_conv(channels, k, 1), basic_conv(k, l, 3),
                                   basic_conv(l, m, 3, stride=2, padding="valid"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x), self.conv(x), self.tower(x)], 1)


class ReductionB(nn.Module):
    """Reduction-B (figure 18), ``[B, C, 17, 17] -> [B, C + 384 + 288 + 320, 8, 8]``.

    A 3 x 3 max pool with stride 2 and three towers starting with a 1 x 1 convolution to 256 channels and
    ending in an unpadded 3 x 3 stride-2 convolution (to 384, 288 and 320 channels), concatenated.

    Args:
        channels: C, 1152 in Inception-ResNet-v2.
    """

    def __init__(self, channels: int = 1152):
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2)
        self.branches = nn.ModuleList([
            nn.Sequential(basic_conv(channels, 256, 1), basic_conv(256, 384, 3, stride=2, padding="valid")),
            nn.Sequential(basic_conv(channels, 256, 1), basic_conv(256, 288, 3, stride=2, padding="valid")),
            nn.Sequential(basic_conv(channels, 256, 1), basic_conv(256, 288, 3),
                          basic_conv(288, 320, 3, stride=2, padding="valid")),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x), *(branch(x) for branch in self.branches)], 1)
