r"""Wide residual networks for CIFAR, WRN-d-k (Zagoruyko & Komodakis, 2016).

A WRN keeps ResNet's CIFAR layout (a 3 x 3 stem with 16 channels, three groups of blocks at
32 x 32, 16 x 16 and 8 x 8) and multiplies the width of every group by a *widening factor* k:
16k, 32k and 64k channels.  Each block is a *pre-activation* basic block (He et al., 2016, "Identity
mappings"): batch norm and ReLU come before each of its two 3 x 3 convolutions, and the sum is
not passed through a ReLU, so the identity path runs from the stem to the classifier untouched,

.. math::

    x_{l+1} = x_l + W_2 * \mathrm{ReLU}(\mathrm{BN}(W_1 * \mathrm{ReLU}(\mathrm{BN}(x_l)))).

The depth d counts the weight layers on the longest path: the stem, 2 per block, the classifier,
and no shortcut, so each group holds N = (d - 4) / 6 blocks (WRN-28-10: N = 4).  A block that
changes the shape takes a 1 x 1 projection of the pre-activated input as its shortcut.

Shapes for WRN-28-10 on ``[B, 3, 32, 32]``::

    stem  3x3 conv, 16                 [B, 16, 32, 32]
    group 1: 4 blocks, 16k = 160       [B, 160, 32, 32]
    group 2: 4 blocks, 32k = 320, S=2  [B, 320, 16, 16]
    group 3: 4 blocks, 64k = 640, S=2  [B, 640, 8, 8]
    BN, ReLU, global average pool      [B, 640]
    linear                             [B, 10]

36,479,194 parameters, the 36.5M of the paper's table for WRN-28-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["PreActBlock", "WideResNet", "WideResNetConfig"]


@dataclass(frozen=True)
class WideResNetConfig:
    """Hyperparameters of a Wide ResNet.

    One field per choice; each field's comment says what it sets.
    """

    depth: int = 28  #: d, the weight layers on the longest path; (d - 4) must be a multiple of 6
    widen: int = 10  #: k; the groups have 16k, 32k and 64k channels
    num_classes: int = 10  #: CIFAR-10
    in_channels: int = 3  #: colour channels of the input image
    dropout: float = 0.0  #: between the two convolutions of a block (the paper's 0.3 for some runs)

    def __post_init__(self):
        if not isinstance(self.depth, int) or self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"depth d={self.depth!r} must satisfy d = 6N + 4 with N >= 1 blocks per group")
        for name in ("widen", "num_classes", "in_channels"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_real(self.dropout, "dropout", where=type(self).__name__, ge=0, lt=1)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., 2016), ``[B, C, H, W] -> [B, C', H/S, W/S]``.

    BN, ReLU, 3x3 conv, BN, ReLU, dropout, 3x3 conv, plus the shortcut: the input itself, or a 1 x 1
    projection of the pre-activated input when the shape changes.  No ReLU follows the sum.

    Args:
        in_channels: C.
        out: C'.
        stride: S, of the first convolution and of the projection.
        dropout: probability of dropping a unit between the two convolutions.
    """

    def __init__(self, in_channels: int, out: int, *, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        # the projection sees the pre-activated input, as the first convolution does
        same = (in_channels, stride) == (out, 1)
        self.shortcut = None if same else nn.Conv2d(in_channels, out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn1(x))  # [B, C, H, W]
        z = self.conv1(a)  # [B, C', H/S, W/S]
        z = self.conv2(self.dropout(torch.relu(self.bn2(z))))  # [B, C', H/S, W/S]
        return z + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    """Wide ResNet WRN-d-k: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 4``.

    Stem, three groups of pre-activation blocks, BN + ReLU, global average pooling, linear classifier;
    the last group's map is ``[B, 64k, H/4, W/4]``.

    Args:
        config: depth d, widening factor k, dropout, input channels and class count.
    """

    def __init__(self, config: WideResNetConfig):
        super().__init__()
        self.config = config
        n = (config.depth - 4) // 6
        self.stem = nn.Conv2d(config.in_channels, 16, 3, padding=1, bias=False)
        groups, channels = [], 16
        for i, width in enumerate((16 * config.widen, 32 * config.widen, 64 * config.widen)):
            blocks = [PreActBlock(channels, width, stride=1 if i == 0 else 2, dropout=config.dropout)]
            blocks += [PreActBlock(width, width, dropout=config.dropout) for _ in range(n - 1)]
            groups.append(nn.Sequential(*blocks))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=4, model="WideResNet")
        z = torch.relu(self.bn(self.groups(self.stem(x))))  # [B, 64k, H/4, W/4]
        return self.head(z.mean((2, 3)))  # [B, num_classes]


@register("wrn_28_10", WideResNetConfig)
def build_wide_resnet(config: WideResNetConfig) -> WideResNet:
    """WRN-d-k for CIFAR (Zagoruyko & Komodakis, 2016); the registered WRN-28-10 has 36,479,194 parameters."""
    return WideResNet(config)
