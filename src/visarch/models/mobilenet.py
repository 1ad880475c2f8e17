r"""MobileNet v1 (Howard et al., 2017) and MobileNetV2 (Sandler et al., 2018).

**MobileNet v1** replaces every standard convolution but the first by a *depthwise separable* one:
a :math:`3 \times 3` depthwise convolution (one filter per channel, :math:`G = C`) followed by a
:math:`1 \times 1` pointwise convolution that mixes the channels, each with batch norm and ReLU.
For :math:`C \to C'` channels on an :math:`H' \times W'` output it costs

.. math:: H'W' (9C + C C') \quad\text{instead of}\quad H'W' \cdot 9 C C'

multiply-accumulates, a saving of :math:`1/C' + 1/9` (see ``visarch.cost``).  The *width multiplier*
:math:`\alpha` thins every layer to :math:`\lfloor \alpha c \rfloor` channels; the *resolution
multiplier* :math:`\rho` is the input size divided by 224.  Standard convolutions then cost about
:math:`\alpha^2 \rho^2` times as much, and hold :math:`\alpha^2` times as many weights.

Shapes at :math:`\alpha = 1` for a ``[B, 3, 224, 224]`` input (the paper's table 1)::

    conv 3x3, stride 2, 3 -> 32                    [B, 32, 112, 112]
    13 separable blocks (dw 3x3 with stride s, pw 1x1):
        64; 128 s2; 128; 256 s2; 256; 512 s2        [B, 512, 14, 14]
        512 x 5; 1024 s2; 1024 (stride 1)           [B, 1024, 7, 7]
    global average pool                             [B, 1024]
    linear 1024 -> 1000                             [B, 1000]

4,231,976 parameters (1000 classes) and 569 M multiply-adds at 224 x 224, as the paper's table 8
gives (4.2 M, 569 M).  The paper's table lists the 13th block with stride 2; its shapes need stride 1.

**MobileNetV2** stacks *inverted residual* blocks, which widen, filter and narrow:

.. math::

    x \in \mathbb{R}^{c \times h \times w}
    \xrightarrow{1 \times 1,\ \mathrm{BN},\ \mathrm{ReLU6}} \mathbb{R}^{tc \times h \times w}
    \xrightarrow{3 \times 3\ \text{dw, stride } s,\ \mathrm{BN},\ \mathrm{ReLU6}} \mathbb{R}^{tc \times h/s \times w/s}
    \xrightarrow{1 \times 1,\ \mathrm{BN}} \mathbb{R}^{c' \times h/s \times w/s},

with :math:`x` added back when :math:`s = 1` and :math:`c = c'`.  The last layer is *linear* (no
activation: the "linear bottleneck"), and the shortcut joins the narrow tensors, not the wide ones as
in a ResNet bottleneck.  The expansion layer is absent when :math:`t = 1`.  The paper's table 2
lists rows :math:`(t, c, n, s)`: :math:`n` blocks with :math:`c` output channels, the first with
stride :math:`s`::

    conv 3x3, stride 2, 3 -> 32                    [B, 32, 112, 112]
    (1, 16, 1, 1) (6, 24, 2, 2) (6, 32, 3, 2)      [B, 32, 28, 28]
    (6, 64, 4, 2) (6, 96, 3, 1)                    [B, 96, 14, 14]
    (6, 160, 3, 2) (6, 320, 1, 1)                  [B, 320, 7, 7]
    conv 1x1, 320 -> 1280                          [B, 1280, 7, 7]
    global average pool, dropout 0.2, linear       [B, 1000]

3,504,872 parameters and about 300 M multiply-adds at width 1 and 224 x 224 (the paper: 3.4 M, 300 M).
With a width multiplier every channel count becomes ``make_divisible(c * width, 8)``; the final
1280 grows with a multiplier above 1 but never shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.models.layers import check_image, conv_bn_act, make_divisible
from visarch.models.registry import register

__all__ = ["DepthwiseSeparable", "InvertedResidual", "MobileNetV1", "MobileNetV1Config", "MobileNetV2",
           "MobileNetV2Config", "V1_BODY", "V2_SETTING"]

TOTAL_STRIDE = 32  # five stride-2 layers in both networks

#: (C', stride) of each depthwise-separable block of MobileNet v1
V1_BODY = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

#: table 2 of the MobileNet v2 paper, (expansion t, channels c, repeats n, stride s) per stage
V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@dataclass(frozen=True)
class MobileNetV1Config:
    """Hyperparameters of MobileNet v1.

    One field per choice; each field's comment says what it sets.
    """

    alpha: float = 1.0  #: width multiplier; a layer with c channels gets max(int(alpha * c), min_channels)
    min_channels: int = 8  #: floor on thinned layers (as in the authors' TensorFlow release)
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: outputs of the final linear layer (ImageNet)

    def __post_init__(self):
        check_real(self.alpha, "width multiplier alpha", where=type(self).__name__, gt=0)
        for name in ("min_channels", "in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)

    def channels(self, c: int) -> int:
        """The width of a layer that has ``c`` channels at alpha = 1."""
        return max(int(c * self.alpha), self.min_channels)


class DepthwiseSeparable(nn.Module):
    """A depthwise separable convolution, ``[B, C, H, W] -> [B, C', H/S, W/S]``.

    A 3x3 depthwise convolution (stride S) + BN + ReLU filters each channel on its own, then a 1x1
    convolution + BN + ReLU mixes the channels.

    Args:
        c_in: C.
        c_out: C'.
        stride: S.
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1):
        super().__init__()
        self.depthwise = conv_bn_act(c_in, c_in, 3, stride=stride, groups=c_in)  # filters each channel alone
        self.pointwise = conv_bn_act(c_in, c_out, 1)  # mixes the channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNet v1: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 32``.

    A standard 3x3 convolution with stride 2, 13 depthwise separable blocks, global average pooling and a
    linear layer; the last map is ``[B, 1024 alpha, H/32, W/32]``.

    Args:
        config: width multiplier alpha, its floor on channels, input channels and class count.
    """

    def __init__(self, config: MobileNetV1Config):
        super().__init__()
        self.config = config
        c = config.channels
        self.stem = conv_bn_act(config.in_channels, c(32), 3, stride=2)
        blocks, width = [], c(32)
        for out, stride in V1_BODY:
            blocks.append(DepthwiseSeparable(width, c(out), stride=stride))
            width = c(out)
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(width, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE, model="mobilenet_v1")
        z = self.blocks(self.stem(x))  # [B, 1024 alpha, H/32, W/32]
        return self.classifier(z.mean((2, 3)))  # [B, num_classes]


@dataclass(frozen=True)
class MobileNetV2Config:
    """Hyperparameters of MobileNet v2.

    One field per choice; each field's comment says what it sets.
    """

    width_mult: float = 1.0  #: width multiplier; c channels become make_divisible(c * width_mult, round_to)
    setting: tuple[tuple[int, int, int, int], ...] = V2_SETTING  #: rows (t, c, n, s) of the paper's table 2
    stem_channels: int = 32  #: output channels of the first (standard, stride-2) convolution
    last_channels: int = 1280  #: channels of the final 1x1 convolution, scaled only when width_mult > 1
    round_to: int = 8  #: channel counts are multiples of this
    dropout: float = 0.2  #: dropout before the linear classifier
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: outputs of the final linear layer (ImageNet)

    def __post_init__(self):
        check_real(self.width_mult, "width multiplier", where=type(self).__name__, gt=0)
        for name in ("stem_channels", "last_channels", "round_to"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if not self.setting:
            raise ValueError("setting must list at least one row (t, c, n, s)")
        for row in self.setting:
            t, c, n, s = check_ints(row, "each row of the setting (t, c, n, s)", where=type(self).__name__, length=4)
            if t < 1 or c < 1 or n < 1:
                raise ValueError(f"expansion factor t, channels c and repeats n must be >= 1, got {row!r}")
            if s not in (1, 2):
                raise ValueError(f"stride s must be 1 or 2, got {s} in row {row!r}")
        check_real(self.dropout, "dropout probability", where=type(self).__name__, ge=0, lt=1)
        for name in ("in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)

    def channels(self, c: int) -> int:
        """The width of a layer that has ``c`` channels at width multiplier 1."""
        return make_divisible(c * self.width_mult, self.round_to)


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block, ``[B, c, H, W] -> [B, c', H/s, W/s]``.

    1x1 expansion to t c channels (if t > 1), 3x3 depthwise convolution with stride s, each with batch
    norm and ReLU6, then a linear 1x1 projection with batch norm; the input is added back when the shapes
    agree (s = 1 and c = c').

    Args:
        c_in: c.
        c_out: c'.
        stride: s.
        expand_ratio: t.
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int, expand_ratio: int):
        super().__init__()
        hidden = c_in * expand_ratio
        self.expand = conv_bn_act(c_in, hidden, 1, act=nn.ReLU6) if expand_ratio != 1 else nn.Identity()
        self.depthwise = conv_bn_act(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6)
        self.project = conv_bn_act(hidden, c_out, 1, act=None)  # linear: ReLU here would lose information
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.depthwise(self.expand(x)))  # [B, t c, H, W] inside, [B, c', H/s, W/s] out
        return x + z if self.residual else z


class MobileNetV2(nn.Module):
    """MobileNetV2: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 32``.

    A standard 3x3 convolution with stride 2, the inverted residual blocks of the setting, a 1x1
    convolution to 1280 channels (more with a multiplier above 1), global average pooling, dropout and a
    linear layer.

    Args:
        config: width multiplier, the rows (t, c, n, s), stem and last widths, rounding, dropout and classes.
    """

    def __init__(self, config: MobileNetV2Config):
        super().__init__()
        self.config = config
        width = config.channels(config.stem_channels)
        self.stem = conv_bn_act(config.in_channels, width, 3, stride=2, act=nn.ReLU6)
        blocks = []
        for t, c, n, s in config.setting:
            out = config.channels(c)
            for i in range(n):
                blocks.append(InvertedResidual(width, out, stride=s if i == 0 else 1, expand_ratio=t))
                width = out
        self.blocks = nn.Sequential(*blocks)
        last = make_divisible(config.last_channels * max(1.0, config.width_mult), config.round_to)
        self.head = conv_bn_act(width, last, 1, act=nn.ReLU6)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(last, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE, model="mobilenet_v2")
        z = self.head(self.blocks(self.stem(x)))  # [B, 1280, H/32, W/32]
        return self.classifier(self.dropout(z.mean((2, 3))))  # [B, num_classes]


@register("mobilenet_v1", MobileNetV1Config)
def build_mobilenet_v1(config: MobileNetV1Config) -> MobileNetV1:
    """MobileNet v1 (Howard et al., 2017), width multiplier alpha = 1 by default."""
    return MobileNetV1(config)


@register("mobilenet_v2", MobileNetV2Config)
def build_mobilenet_v2(config: MobileNetV2Config) -> MobileNetV2:
    """MobileNetV2 (Sandler et al., 2018), width multiplier 1 by default."""
    return MobileNetV2(config)
