r"""EfficientNet-B0 and its compound scaling (Tan & Le, 2019).

EfficientNet-B0 came out of a neural architecture search over MobileNetV2-like networks.  Its block is
*MBConv*: MobileNetV2's inverted residual with squeeze-and-excitation (Hu et al., 2018) and SiLU
(swish), :math:`\mathrm{SiLU}(x) = x\,\sigma(x)`:

.. math::

    x \in \mathbb{R}^{c \times h \times w}
    \xrightarrow{1 \times 1,\ \mathrm{BN},\ \mathrm{SiLU}} \mathbb{R}^{tc \times h \times w}
    \xrightarrow{k \times k\ \text{dw, stride } s,\ \mathrm{BN},\ \mathrm{SiLU}}
    \xrightarrow{\mathrm{SE},\ C_s = \max(1, \lfloor c/4 \rfloor)}
    \xrightarrow{1 \times 1,\ \mathrm{BN}} \mathbb{R}^{c' \times h/s \times w/s},

with the expansion absent when :math:`t = 1`, and :math:`x` added back when :math:`s = 1` and
:math:`c = c'`.  During training the residual branch of block :math:`i` (of :math:`N`, counted from 0)
is dropped for a whole image with probability :math:`p_i = 0.2\, i / N` and otherwise divided by
:math:`1 - p_i` (*stochastic depth*, Huang et al., 2016), so the expected output is unchanged.

Stages for a ``[B, 3, 224, 224]`` input (the paper's table 1; (t, k, s, C_in, C_out, L))::

    conv 3x3, stride 2, 3 -> 32, BN, SiLU                   [B, 32, 112, 112]
    (1, 3, 1, 32, 16, 1)  (6, 3, 2, 16, 24, 2)              [B, 24, 56, 56]
    (6, 5, 2, 24, 40, 2)  (6, 3, 2, 40, 80, 3)              [B, 80, 14, 14]
    (6, 5, 1, 80, 112, 3) (6, 5, 2, 112, 192, 4)            [B, 192, 7, 7]
    (6, 3, 1, 192, 320, 1)                                  [B, 320, 7, 7]
    conv 1x1, 320 -> 1280, BN, SiLU                         [B, 1280, 7, 7]
    global average pool, dropout 0.2, linear                [B, 1000]

5,288,548 parameters (the paper: 5.3 M) and 0.39 G multiply-adds at 224 x 224 (the paper's "0.39B FLOPS").

*Compound scaling* grows depth, width and resolution together: with a coefficient :math:`\phi`,
:math:`d = \alpha^\phi`, :math:`w = \beta^\phi`, :math:`r = \gamma^\phi` with
:math:`\alpha \beta^2 \gamma^2 \approx 2`, so the cost roughly doubles per unit of :math:`\phi`.  A
stage of :math:`L` layers gets :math:`\lceil dL \rceil`, a layer of :math:`c` channels
``make_divisible(w c, 8)``, and the input side :math:`224 r` pixels.  B1, B2 and B3 use
:math:`(w, d, \text{resolution}, \text{dropout}) = (1.0, 1.1, 240, 0.2), (1.1, 1.2, 260, 0.3),
(1.2, 1.4, 300, 0.3)`: 7,794,184, 9,109,994 and 12,233,232 parameters.

Batch norm uses PyTorch's default epsilon (the reference TensorFlow code uses 1e-3; no count changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.models.layers import SqueezeExcitation, StochasticDepth, check_image, conv_bn_act, make_divisible
from visarch.models.registry import register

__all__ = ["B0_STAGES", "EfficientNet", "EfficientNetConfig", "MBConv", "StochasticDepth"]

TOTAL_STRIDE = 32  # the stem and four stages with stride 2

#: (expand ratio t, kernel k, stride s, C_in, C_out, layers L) per stage of EfficientNet-B0
B0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
             (6, 3, 1, 192, 320, 1))


@dataclass(frozen=True)
class EfficientNetConfig:
    """Hyperparameters of EfficientNet (defaults: EfficientNet-B0).

    One field per choice; each field's comment says what it sets.
    """

    width_mult: float = 1.0  #: w; a layer of c channels gets make_divisible(w * c, 8)
    depth_mult: float = 1.0  #: d; a stage of L layers gets ceil(d * L)
    resolution: int = 224  #: input side the network is scaled for (224 r); any side >= 32 runs
    dropout: float = 0.2  #: dropout before the linear classifier
    stochastic_depth: float = 0.2  #: block i of N drops its residual branch with probability stochastic_depth * i / N
    stages: tuple[tuple[int, int, int, int, int, int], ...] = B0_STAGES  #: rows (t, k, s, C_in, C_out, L) of table 1
    head_channels: int = 1280  #: channels of the final 1x1 convolution (scaled by w)
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: outputs of the final linear layer (ImageNet)

    def __post_init__(self):
        check_real(self.width_mult, "width multiplier w", where=type(self).__name__, gt=0)
        check_real(self.depth_mult, "depth multiplier d", where=type(self).__name__, gt=0)
        for name in ("resolution", "head_channels", "in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if self.resolution < TOTAL_STRIDE:
            raise ValueError(f"resolution {self.resolution} is smaller than the network's total stride {TOTAL_STRIDE}")
        for name in ("dropout", "stochastic_depth"):
            check_real(getattr(self, name), f"{name} probability", where=type(self).__name__, ge=0, lt=1)
        if not self.stages:
            raise ValueError("stages must list at least one row (t, k, s, C_in, C_out, L)")
        previous = None
        for row in self.stages:
            t, k, s, c_in, c_out, layers = check_ints(row, "each stage (t, k, s, C_in, C_out, L)",
                                                      where=type(self).__name__, length=6)
            if min(t, c_in, c_out, layers) < 1:
                raise ValueError(f"expand ratio, channels and layers must be >= 1, got {row!r}")
            if k < 1 or k % 2 == 0:
                raise ValueError(f"kernel size k must be odd (a 'same' convolution), got {k} in stage {row!r}")
            if s not in (1, 2):
                raise ValueError(f"stride s must be 1 or 2, got {s} in stage {row!r}")
            if previous is not None and c_in != previous:
                raise ValueError(f"stage {row!r} takes {c_in} channels but the previous stage gives {previous}")
            previous = c_out

    def channels(self, c: int) -> int:
        """The width of a layer that has ``c`` channels in B0."""
        return make_divisible(c * self.width_mult, 8)

    def layers(self, n: int) -> int:
        """The number of blocks of a stage that has ``n`` in B0."""
        return math.ceil(n * self.depth_mult)


class MBConv(nn.Module):
    """EfficientNet's MBConv block, ``[B, c, H, W] -> [B, c', H/s, W/s]``.

    A 1x1 expansion to t c channels (if t > 1), a k x k depthwise convolution with stride s, both with
    batch norm and SiLU, squeeze-and-excitation to ``max(1, c // 4)`` channels, and a linear 1x1
    projection with batch norm; when the shapes agree (s = 1 and c = c') the input is added back, the
    branch passing through stochastic depth first.

    Args:
        c_in: c.
        c_out: c'.
        kernel: k, odd.
        stride: s.
        expand_ratio: t.
        drop: stochastic depth probability of the residual branch.
    """

    def __init__(self, c_in: int, c_out: int, *, kernel: int, stride: int, expand_ratio: int, drop: float = 0.0):
        super().__init__()
        hidden = c_in * expand_ratio
        self.expand = conv_bn_act(c_in, hidden, 1, act=nn.SiLU) if expand_ratio != 1 else nn.Identity()
        self.depthwise = conv_bn_act(hidden, hidden, kernel, stride=stride, groups=hidden, act=nn.SiLU)
        self.se = SqueezeExcitation(hidden, max(1, c_in // 4), act=nn.SiLU)  # squeeze width from the block's input
        self.project = conv_bn_act(hidden, c_out, 1, act=None)  # linear bottleneck, as in MobileNetV2
        self.residual = stride == 1 and c_in == c_out
        self.drop = StochasticDepth(drop) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.se(self.depthwise(self.expand(x))))  # [B, t c, ...] inside, [B, c', H/s, W/s] out
        return x + self.drop(z) if self.residual else z


class EfficientNet(nn.Module):
    """EfficientNet: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 32``.

    Stem, MBConv stages, 1x1 head convolution, global average pool, dropout, linear classifier, all
    scaled by the config's width and depth multipliers; the drop probability of block i of N rises as
    ``stochastic_depth * i / N``.

    Args:
        config: multipliers, the stages of table 1, dropout, stochastic depth and class count.
    """

    def __init__(self, config: EfficientNetConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        rows = [(t, k, s, ch(c_in), ch(c_out), config.layers(n)) for t, k, s, c_in, c_out, n in config.stages]
        self.stem = conv_bn_act(config.in_channels, rows[0][3], 3, stride=2, act=nn.SiLU)
        total, index, stages = sum(row[5] for row in rows), 0, []
        for t, k, s, c_in, c_out, n in rows:
            blocks = []
            for i in range(n):
                blocks.append(MBConv(c_in if i == 0 else c_out, c_out, kernel=k, stride=s if i == 0 else 1,
                                     expand_ratio=t, drop=config.stochastic_depth * index / total))
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        head = ch(config.head_channels)
        self.head = conv_bn_act(rows[-1][4], head, 1, act=nn.SiLU)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(head, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE, model="efficientnet")
        z = self.head(self.stages(self.stem(x)))  # [B, 1280 w, H/32, W/32]
        return self.classifier(self.dropout(z.mean((2, 3))))  # [B, num_classes]


@register("efficientnet_b0", EfficientNetConfig)
@register("efficientnet_b1", EfficientNetConfig, width_mult=1.0, depth_mult=1.1, resolution=240, dropout=0.2)
@register("efficientnet_b2", EfficientNetConfig, width_mult=1.1, depth_mult=1.2, resolution=260, dropout=0.3)
@register("efficientnet_b3", EfficientNetConfig, width_mult=1.2, depth_mult=1.4, resolution=300, dropout=0.3)
def build_efficientnet(config: EfficientNetConfig) -> EfficientNet:
    """EfficientNet-B0 (Tan & Le, 2019) and its compound-scaled B1-B3."""
    return EfficientNet(config)
