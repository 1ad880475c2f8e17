r"""ResNet-50 as the notes build it, for CIFAR images and in the ImageNet layout (He et al., 2016).

A residual block adds its input back to a transformation of it, :math:`y = \mathrm{ReLU}(f(x) + x')`,
where :math:`x' = x` when the shapes agree and otherwise a 1 x 1 convolution with stride and batch
norm (the "projection shortcut").  ResNet-50's :math:`f` is a *bottleneck*: 1 x 1 down to C'
channels, 3 x 3 at C' channels (with the block's stride), 1 x 1 up to 4C', each followed by batch
norm, with ReLU between them.  Four stacks of 3, 4, 6 and 3 blocks with C' = 64, 128, 256, 512
and strides 1, 2, 2, 2 give 16 blocks, i.e. 48 convolutions; with the stem and the final linear
layer, 50 weight layers.

Shapes for the notes' CIFAR version (input ``[B, 3, 32, 32]``)::

    stem  3x3 conv, 64, stride 1        [B, 64, 32, 32]
    stack 1: 3 blocks, C' = 64          [B, 256, 32, 32]
    stack 2: 4 blocks, C' = 128, S' = 2 [B, 512, 16, 16]
    stack 3: 6 blocks, C' = 256, S' = 2 [B, 1024, 8, 8]
    stack 4: 3 blocks, C' = 512, S' = 2 [B, 2048, 4, 4]
    global average pool                 [B, 2048]        (the notes' output)
    linear (when num_classes is set)    [B, num_classes]

The ImageNet layout replaces the stem by a 7 x 7 convolution with stride 2 and a 3 x 3 max pool
with stride 2 (a factor 4 in resolution), and ends in a 1000-way linear layer: 25,557,032
parameters, the count torchvision publishes for its ``resnet50``.

The same configuration spans the family of the CNN-families chapter:

* ResNet-18/34 use the *basic* block, two 3 x 3 convolutions at C' channels (``expansion=1``);
* Wide ResNet-50-2 (Zagoruyko & Komodakis, 2016) doubles the channels of the 3 x 3 convolution
  but not the block outputs (``bottleneck_width=128``);
* ResNeXt-50 32x4d (Xie et al., 2017) does the same and splits the 3 x 3 convolution into
  G = 32 groups of d = 4 channels (``bottleneck_width=128, groups=32``);
* SE-ResNet-50 (Hu et al., 2018) rescales each block's channels with squeeze-and-excitation
  before the addition (``se_reduction=16``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int
from visarch.models.layers import SqueezeExcitation, check_image
from visarch.models.registry import register

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResNetConfig"]


@dataclass(frozen=True)
class ResNetConfig:
    """Hyperparameters of a ResNet (defaults: ResNet-50 with the CIFAR stem).

    One field per choice; each field's comment says what it sets.
    """

    blocks: tuple[int, ...] = (3, 4, 6, 3)  #: residual blocks per stack (ResNet-50)
    width: int = 64  #: C' of the first stack; each later stack doubles it
    stem: str = "cifar"  #: "cifar" (3x3 conv, stride 1) or "imagenet" (7x7 conv stride 2, 3x3 max pool stride 2)
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int | None = None  #: classes; None returns the 2048-dimensional representation, as the notes do
    expansion: int = 4  #: output channels of a block = expansion * C'
    block: str = "bottleneck"  #: "bottleneck" (1x1, 3x3, 1x1) or "basic" (two 3x3 convolutions, ResNet-18/34)
    bottleneck_width: int | None = None  #: channels of the first stack's 3x3 conv, doubling per stack (None = width)
    groups: int = 1  #: G, the groups of a bottleneck's 3x3 convolution (ResNeXt's cardinality)
    se_reduction: int | None = None  #: r of a squeeze-and-excitation gate in every block (16 in SE-ResNet)

    def __post_init__(self):
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        if self.block not in ("bottleneck", "basic"):
            raise ValueError(f"block must be 'bottleneck' or 'basic', got {self.block!r}")
        for name in ("width", "in_channels", "expansion", "groups"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        for name in ("num_classes", "bottleneck_width", "se_reduction"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or a positive int, got {value!r}")
        if self.block == "basic" and (self.groups, self.se_reduction, self.bottleneck_width) != (1, None, None):
            raise ValueError("the basic block has no grouped, wide-bottleneck or squeeze-and-excitation variant here: "
                             "groups must be 1, bottleneck_width and se_reduction None")
        first = self.bottleneck_width or self.width
        if first % self.groups:  # the first stack's grouped 3x3 convolution splits its channels into the groups
            raise ValueError(f"{type(self).__name__}: groups must divide the first stack's 3x3 convolution's {first} "
                             f"channels, got {self.groups}")
        if self.se_reduction is not None and self.expansion * self.width < self.se_reduction:
            raise ValueError(f"se_reduction r={self.se_reduction} exceeds the first stack's "
                             f"{self.expansion * self.width} output channels")
        if not self.blocks or any(not isinstance(b, int) or b < 1 for b in self.blocks):
            raise ValueError(f"blocks must be a non-empty tuple of positive ints, got {self.blocks!r}")


def _shortcut(in_channels: int, out: int, stride: int) -> nn.Module:
    """x' = x when the shapes agree, else the projection: 1 x 1 convolution with stride, batch norm."""
    if (in_channels, stride) == (out, 1):
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))


class Bottleneck(nn.Module):
    """The notes' ResBlock, a bottleneck residual block: ``[B, C, H, W] -> [B, 4C', H/S', W/S']``.

    1 x 1 convolution to C', 3 x 3 convolution (stride S', optionally grouped), 1 x 1 convolution to the
    output channels, each with batch norm and ReLU between; optional squeeze-and-excitation, then the
    shortcut (identity or projection) is added and a ReLU applied.

    Args:
        in_channels: C.
        mid: C', the channels of the 3 x 3 convolution.
        stride: S'.
        out: output channels; None gives ResNet-50's 4C'.
        groups: groups of the 3 x 3 convolution (ResNeXt).
        se_reduction: r of a squeeze-and-excitation gate with ``out // r`` channels; None for none.
    """

    def __init__(self, in_channels: int, mid: int, *, stride: int = 1, out: int | None = None, groups: int = 1,
                 se_reduction: int | None = None):
        super().__init__()
        out = 4 * mid if out is None else out  # ResNet-50's expansion by 4 unless told otherwise
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)  # bias would be cancelled by batch norm
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se = nn.Identity() if se_reduction is None else SqueezeExcitation(out, out // se_reduction)
        self.shortcut = _shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.bn1(self.conv1(x)))  # [B, C', H, W]
        z = torch.relu(self.bn2(self.conv2(z)))  # [B, C', H/S', W/S']
        z = self.se(self.bn3(self.conv3(z)))  # [B, 4C', H/S', W/S']
        return torch.relu(z + self.shortcut(x))


class BasicBlock(nn.Module):
    """ResNet-18/34's block: ``[B, C, H, W] -> [B, C', H/S', W/S']`` through two 3 x 3 convolutions.

    Each convolution is followed by batch norm; a ReLU sits between them and after the sum with the
    shortcut (identity or projection).

    Args:
        in_channels: C.
        out: C'.
        stride: S', of the first convolution and the projection.
    """

    def __init__(self, in_channels: int, out: int, *, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut = _shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.bn1(self.conv1(x)))  # [B, C', H/S', W/S']
        z = self.bn2(self.conv2(z))  # [B, C', H/S', W/S']
        return torch.relu(z + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet: stem, residual stacks, global average pooling and, optionally, a linear classifier.

    Maps ``[B, C, H, W]`` to ``[B, num_classes]``, or to the pooled features ``[B, 2048]`` (ResNet-50) when
    ``num_classes`` is None.  The image must be at least the total stride on each side: 8 with the CIFAR
    stem, 32 with the ImageNet one (four stacks).

    Args:
        config: stacks, widths, stem, block type and the ResNeXt / wide / SE variants.
    """

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        w = config.width
        if config.stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(config.in_channels, w, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(w), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(config.in_channels, w, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        stacks, channels = [], w
        for i, count in enumerate(config.blocks):
            out, mid, blocks = config.expansion * w * 2**i, (config.bottleneck_width or w) * 2**i, []
            for b in range(count):
                stride = 2 if i > 0 and b == 0 else 1
                if config.block == "basic":
                    blocks.append(BasicBlock(channels, out, stride=stride))
                else:
                    blocks.append(Bottleneck(channels, mid, stride=stride, out=out, groups=config.groups,
                                             se_reduction=config.se_reduction))
                channels = out
            stacks.append(nn.Sequential(*blocks))
        self.stacks = nn.Sequential(*stacks)
        self.head = nn.Identity() if config.num_classes is None else nn.Linear(channels, config.num_classes)
        self.total_stride = 2 ** (len(config.blocks) - 1) * (1 if config.stem == "cifar" else 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=self.total_stride, model="ResNet")
        z = self.stacks(self.stem(x))  # [B, 2048, H/8, W/8] (CIFAR stem) or [B, 2048, H/32, W/32]
        return self.head(z.mean((2, 3)))  # global average pool: [B, 2048], then [B, num_classes]


_IMAGENET = {"stem": "imagenet", "num_classes": 1000}


@register("resnet50_cifar", ResNetConfig, stem="cifar", num_classes=10)
@register("resnet50", ResNetConfig, **_IMAGENET)
@register("resnet18", ResNetConfig, blocks=(2, 2, 2, 2), block="basic", expansion=1, **_IMAGENET)
@register("resnet34", ResNetConfig, blocks=(3, 4, 6, 3), block="basic", expansion=1, **_IMAGENET)
@register("wide_resnet50_2", ResNetConfig, bottleneck_width=128, **_IMAGENET)
@register("resnext50_32x4d", ResNetConfig, bottleneck_width=128, groups=32, **_IMAGENET)
@register("se_resnet50", ResNetConfig, se_reduction=16, **_IMAGENET)
def build_resnet(config: ResNetConfig) -> ResNet:
    """ResNet (He et al., 2016) and the variants above: the notes' CIFAR ResNet-50, or an ImageNet layout."""
    return ResNet(config)
