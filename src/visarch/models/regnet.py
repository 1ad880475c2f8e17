r"""AnyNet and RegNet: networks described by a few numbers per stage, and widths from a quantised line
(Radosavovic et al., 2020).

An *AnyNet* is a stem, a body of stages and a head.  Stage :math:`i` is described by four numbers:
its depth :math:`d_i` (blocks), its width :math:`w_i` (output channels of every block), its
bottleneck ratio :math:`b_i` and its group width :math:`g_i`.  Every block is an *X block*, a
ResNeXt bottleneck with bottleneck width :math:`w_b = w_i / b_i`:

.. math::

    f(x) = \mathrm{BN}(W_3 * \mathrm{ReLU}(\mathrm{BN}(W_2 *_{G} \mathrm{ReLU}(\mathrm{BN}(W_1 * x))))),
    \qquad y = \mathrm{ReLU}(f(x) + x'),

with :math:`W_1` a 1 x 1 convolution to :math:`w_b` channels, :math:`W_2` a 3 x 3 convolution with
:math:`G = w_b / g_i` groups and the stage's stride in the first block, :math:`W_3` a 1 x 1
convolution to :math:`w_i` channels, and :math:`x'` the input itself or, when the width or the
resolution changes, a strided 1 x 1 projection with batch norm.  A *Y block* adds
squeeze-and-excitation after the grouped convolution, with :math:`\mathrm{round}(0.25\, w_{in})`
squeeze channels for a block whose input has :math:`w_{in}` channels.  With four stages this is the
16-dimensional design space AnyNetX.

*RegNet* ties the stages together with six numbers: a depth :math:`d`, an initial width
:math:`w_0 > 0`, a slope :math:`w_a \ge 0`, a multiplier :math:`w_m > 1`, and shared :math:`b` and
:math:`g`.  Block :math:`j` gets the width of a line, snapped to a geometric grid and to multiples
of :math:`q = 8` (the paper's section 3.3),

.. math::

    u_j = w_0 + w_a j \;(0 \le j < d), \qquad s_j = \mathrm{round}\bigl(\log_{w_m}(u_j / w_0)\bigr),
    \qquad w_j = q \,\mathrm{round}\bigl(w_0 w_m^{s_j} / q\bigr),

and consecutive blocks of equal width form a stage.  Finally each stage's bottleneck width
:math:`w_b` is rounded to a multiple of its group width :math:`\min(g, w_b)`.

Shapes for RegNetX-400MF on ``[B, 3, 224, 224]``::

    stem  3x3 conv, 32, stride 2, BN, ReLU   [B, 32, 112, 112]
    stage 1:  1 X block,  w = 32,  S = 2     [B, 32, 56, 56]
    stage 2:  2 X blocks, w = 64,  S = 2     [B, 64, 28, 28]
    stage 3:  7 X blocks, w = 160, S = 2     [B, 160, 14, 14]
    stage 4: 12 X blocks, w = 400, S = 2     [B, 400, 7, 7]
    global average pool, linear              [B, 1000]

5,495,976 parameters for RegNetX-400MF and 4,344,144 for RegNetY-400MF (widths 48, 104, 208, 440,
depths 1, 3, 6, 6), the counts torchvision publishes.  Its last X-400MF stage has 400 channels
where the paper's code (pycls) has 384 (and 5.16M parameters): the rule gives 392, exactly halfway
between two multiples of g = 16, and torchvision rounds halves up while pycls rounds them to even
(``group_rounding``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import SqueezeExcitation, check_image, conv_bn_act, make_divisible
from visarch.models.registry import register

__all__ = ["AnyNet", "AnyNetConfig", "RegNetConfig", "XBlock", "adjust_widths_to_groups", "block_widths",
           "quantized_linear_widths"]

_ROUNDINGS = ("make_divisible", "half_even")


def _check_rule(depth, w_0, w_a, w_m, q, *, where) -> None:
    check_int(depth, "depth d", where=where, ge=1)
    check_int(q, "quantum q", where=where, ge=1)
    check_real(w_0, "initial width w_0", where=where, gt=0)
    if w_0 % q:
        raise ValueError(f"initial width w_0={w_0} must be a multiple of q={q}")
    check_real(w_a, "slope w_a", where=where, ge=0)
    check_real(w_m, "width multiplier w_m", where=where, gt=1)


def block_widths(depth: int, w_0: float, w_a: float, w_m: float, q: int = 8) -> tuple[list[float], list[int]]:
    r"""The line :math:`u_j = w_0 + w_a j` and the quantised widths :math:`w_j` of the blocks ``j < depth``.

    Args:
        depth: d, the number of blocks.
        w_0: initial width, a multiple of ``q``.
        w_a: slope, at least 0.
        w_m: width multiplier, above 1.
        q: the widths are multiples of q.

    Returns:
        ``(u, w)``: two lists of ``depth`` numbers, the line and the quantised widths (ints).
    """
    _check_rule(depth, w_0, w_a, w_m, q, where="block_widths")
    line = [w_0 + w_a * j for j in range(depth)]
    steps = [round(math.log(u / w_0) / math.log(w_m)) for u in line]  # s_j
    return line, [int(round(w_0 * w_m**s / q)) * q for s in steps]


def quantized_linear_widths(depth: int, w_0: float, w_a: float, w_m: float, q: int = 8
                            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-stage ``(widths, depths)`` of the quantised linear rule: runs of blocks of equal width.

    The widths are those before the adjustment to the group width
    (:func:`~visarch.models.regnet.adjust_widths_to_groups`).  The arguments are those of
    :func:`~visarch.models.regnet.block_widths`.

    Returns:
        ``(widths, depths)``: two tuples with one entry per stage.
    """
    runs = [(w, len(list(blocks))) for w, blocks in itertools.groupby(block_widths(depth, w_0, w_a, w_m, q)[1])]
    return tuple(w for w, _ in runs), tuple(d for _, d in runs)


def adjust_widths_to_groups(widths, bottleneck_ratios, group_widths, rounding: str = "make_divisible"
                            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Make every stage's bottleneck width a multiple of its group width.

    Per stage, ``w_b = round(w / b)``, then ``g <- min(g, w_b)``, ``w_b`` rounded to a multiple of ``g``,
    and ``w = w_b * b``.  ``rounding="make_divisible"`` is :func:`visarch.models.layers.make_divisible`
    (nearest multiple, halves up, never more than 10 % down), the rule of torchvision's RegNets and of
    their published counts; ``"half_even"`` is Python's ``round`` (halves to the even multiple), the rule
    of pycls, the paper's code.  They differ only at exact halves and for ``w_b < 5 g``.

    Args:
        widths: w per stage.
        bottleneck_ratios: b per stage.
        group_widths: g per stage.
        rounding: ``"make_divisible"`` or ``"half_even"``.

    Returns:
        The adjusted ``(widths, group_widths)``, one entry per stage each.
    """
    if rounding not in _ROUNDINGS:
        raise ValueError(f"group_rounding must be one of {_ROUNDINGS}, got {rounding!r}")
    new_widths, new_groups = [], []
    for w, b, g in zip(widths, bottleneck_ratios, group_widths, strict=True):
        w_b = int(round(w / b))
        g = min(g, w_b)
        w_b = make_divisible(w_b, g) if rounding == "make_divisible" else max(g, round(w_b / g) * g)
        new_widths.append(int(round(w_b * b)))
        new_groups.append(g)
    return tuple(new_widths), tuple(new_groups)


@dataclass(frozen=True)
class AnyNetConfig:
    """Hyperparameters of an AnyNet, stage by stage (defaults: RegNetX-400MF).

    One field per choice; each field's comment says what it sets.
    """

    widths: tuple[int, ...] = (32, 64, 160, 400)  #: w_i, output channels of every block of stage i (RegNetX-400MF)
    depths: tuple[int, ...] = (1, 2, 7, 12)  #: d_i, blocks in stage i
    group_widths: tuple[int, ...] = (16, 16, 16, 16)  #: g_i, channels per group of the 3x3 convolution
    bottleneck_ratios: tuple[float, ...] = (1, 1, 1, 1)  #: b_i; the bottleneck width is w_b = w_i / b_i
    strides: tuple[int, ...] = (2, 2, 2, 2)  #: stride of the first block of stage i
    se_ratio: float = 0.0  #: 0 for X blocks, else Y blocks with round(se_ratio * w_in) squeeze channels (RegNetY 0.25)
    stem_width: int = 32  #: channels of the stem's 3x3 convolution
    stem_stride: int = 2  #: stride of the stem (2 for ImageNet; 1 keeps small images whole)
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: ImageNet

    def __post_init__(self):
        stages = len(self.depths)
        for name in ("widths", "depths", "group_widths", "bottleneck_ratios", "strides"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != stages or not stages:
                raise ValueError(f"{name} must be a non-empty tuple with one entry per stage "
                                 f"({stages} stages from depths), got {value!r}")
        for i in range(stages):
            check_int(self.depths[i], f"depth d_{i + 1}", where=type(self).__name__, ge=1)
            check_int(self.widths[i], f"width w_{i + 1}", where=type(self).__name__, ge=1)
            check_int(self.group_widths[i], f"group width g_{i + 1}", where=type(self).__name__, ge=1)
            check_int(self.strides[i], f"stride of stage {i + 1}", where=type(self).__name__, ge=1)
            check_real(self.bottleneck_ratios[i], f"bottleneck ratio b_{i + 1}", where=type(self).__name__, gt=0)
            w_b = self.widths[i] / self.bottleneck_ratios[i]
            if w_b != int(w_b):
                raise ValueError(f"bottleneck ratio b_{i + 1}={self.bottleneck_ratios[i]} does not divide "
                                 f"the width w_{i + 1}={self.widths[i]}")
            if int(w_b) % self.group_widths[i]:
                raise ValueError(f"group width g_{i + 1}={self.group_widths[i]} does not divide the bottleneck "
                                 f"width w_b={int(w_b)} of stage {i + 1}")
        check_real(self.se_ratio, "se_ratio", where=type(self).__name__, ge=0, lt=1)
        for name in ("stem_width", "stem_stride", "in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)

    @property
    def total_stride(self) -> int:
        """The factor by which the network shrinks an image, the stem's stride times the stages'."""
        return self.stem_stride * math.prod(self.strides)


@dataclass(frozen=True)
class RegNetConfig:
    """Hyperparameters of a RegNet, whose widths follow the quantized linear rule (defaults: RegNetX-400MF).

    One field per choice; each field's comment says what it sets.
    """

    depth: int = 22  #: d, blocks in all (RegNetX-400MF)
    w_0: int = 24  #: initial width, a multiple of q
    w_a: float = 24.48  #: slope of the line u_j = w_0 + w_a j
    w_m: float = 2.54  #: ratio between the widths of consecutive stages (before quantisation)
    group_width: int = 16  #: g, shared by all stages
    bottleneck_ratio: float = 1.0  #: b, shared by all stages (1 in the published RegNets)
    se_ratio: float = 0.0  #: 0 for RegNetX, 0.25 for RegNetY (squeeze-and-excitation in every block)
    q: int = 8  #: widths are multiples of q
    group_rounding: str = "make_divisible"  #: rounding of w_b to a multiple of g, "make_divisible" or "half_even"
    stem_width: int = 32  #: channels of the stem's 3x3 convolution
    stem_stride: int = 2  #: stride of the stem
    stage_stride: int = 2  #: stride of the first block of every stage
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: ImageNet

    def __post_init__(self):
        _check_rule(self.depth, self.w_0, self.w_a, self.w_m, self.q, where=type(self).__name__)
        check_int(self.group_width, "group width g", where=type(self).__name__, ge=1)
        check_real(self.bottleneck_ratio, "bottleneck ratio b", where=type(self).__name__, gt=0)
        if self.group_rounding not in _ROUNDINGS:
            raise ValueError(f"group_rounding must be one of {_ROUNDINGS}, got {self.group_rounding!r}")
        check_int(self.stage_stride, "stage_stride", where=type(self).__name__, ge=1)
        self.anynet()  # validates the stages the rule produces

    def anynet(self) -> AnyNetConfig:
        """The explicit per-stage description this RegNet stands for."""
        widths, depths = quantized_linear_widths(self.depth, self.w_0, self.w_a, self.w_m, self.q)
        stages = len(widths)
        ratios = (self.bottleneck_ratio,) * stages
        widths, groups = adjust_widths_to_groups(widths, ratios, (self.group_width,) * stages, self.group_rounding)
        return AnyNetConfig(widths=widths, depths=depths, group_widths=groups, bottleneck_ratios=ratios,
                            strides=(self.stage_stride,) * stages, se_ratio=self.se_ratio, stem_width=self.stem_width,
                            stem_stride=self.stem_stride, in_channels=self.in_channels, num_classes=self.num_classes)


class XBlock(nn.Module):
    """RegNet's X block (Y block with squeeze-and-excitation), ``[B, w_in, H, W] -> [B, w, H/S, W/S]``.

    1x1 convolution to ``w_b = w / b`` channels, grouped 3x3 convolution (stride S, ``w_b / g`` groups),
    optional squeeze-and-excitation, 1x1 convolution to w, each with batch norm and ReLU but the last,
    plus the shortcut (identity or strided 1x1 projection with batch norm), then ReLU.

    Args:
        w_in: input channels.
        w: output channels.
        stride: S.
        bottleneck_ratio: b.
        group_width: g, channels per group of the 3x3 convolution.
        se_ratio: 0 for an X block; otherwise a Y block with ``round(se_ratio * w_in)`` squeeze channels.
    """

    def __init__(self, w_in: int, w: int, *, stride: int, bottleneck_ratio: float = 1, group_width: int = 1,
                 se_ratio: float = 0.0):
        super().__init__()
        w_b = int(round(w / bottleneck_ratio))
        self.conv1 = conv_bn_act(w_in, w_b, 1)
        self.conv2 = conv_bn_act(w_b, w_b, 3, stride=stride, groups=w_b // group_width)
        # the squeeze width follows the block's input, as in the paper's Y block
        self.se = SqueezeExcitation(w_b, int(round(se_ratio * w_in))) if se_ratio else nn.Identity()
        self.conv3 = conv_bn_act(w_b, w, 1, act=None)  # no ReLU before the addition
        self.shortcut = nn.Identity() if (w_in, stride) == (w, 1) else conv_bn_act(w_in, w, 1, stride=stride,
                                                                                   act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(x)  # [B, w_b, H, W]
        z = self.se(self.conv2(z))  # [B, w_b, H/S, W/S]
        return torch.relu(self.conv3(z) + self.shortcut(x))  # [B, w, H/S, W/S]


class AnyNet(nn.Module):
    """AnyNet (RegNet): class scores ``[B, num_classes]`` for images ``[B, C, H, W]``.

    Stem (3x3 conv, BN, ReLU), stages of X (or Y) blocks, global average pooling, linear classifier.  The
    image must be at least the total stride on each side (32 for the ImageNet layout).

    Args:
        config: an :class:`~visarch.models.regnet.AnyNetConfig`, or a
            :class:`~visarch.models.regnet.RegNetConfig`, which is turned into one by its ``anynet()``.
    """

    def __init__(self, config: AnyNetConfig | RegNetConfig):
        super().__init__()
        config = config.anynet() if isinstance(config, RegNetConfig) else config
        self.config = config
        self.stem = conv_bn_act(config.in_channels, config.stem_width, 3, stride=config.stem_stride)
        stages, w_in = [], config.stem_width
        for w, d, g, b, s in zip(config.widths, config.depths, config.group_widths, config.bottleneck_ratios,
                                 config.strides, strict=True):
            blocks = []
            for j in range(d):
                blocks.append(XBlock(w_in, w, stride=s if j == 0 else 1, bottleneck_ratio=b, group_width=g,
                                     se_ratio=config.se_ratio))
                w_in = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(w_in, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=self.config.total_stride, model="AnyNet")
        z = self.stages(self.stem(x))  # [B, w_4, H/32, W/32] for the ImageNet layout
        return self.head(z.mean((2, 3)))  # global average pool [B, w_4], then [B, num_classes]


@register("regnety_400mf", RegNetConfig, depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25)
@register("regnetx_400mf", RegNetConfig, depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16)
def build_regnet(config: RegNetConfig) -> AnyNet:
    """RegNetX-400MF and RegNetY-400MF (Radosavovic et al., 2020) from their six published numbers."""
    return AnyNet(config)
