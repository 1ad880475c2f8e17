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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.models.registry import register

__all__ = ["Bottleneck", "ResNet", "ResNetConfig"]


@dataclass(frozen=True)
class ResNetConfig:
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # residual blocks per stack (ResNet-50)
    width: int = 64  # C' of the first stack; each later stack doubles it
    stem: str = "cifar"  # "cifar": 3x3 conv, stride 1; "imagenet": 7x7 conv stride 2 + 3x3 max pool stride 2
    in_channels: int = 3  # colour channels of the input image
    num_classes: int | None = None  # None: return the 2048-dimensional representation, as the notes do
    expansion: int = 4  # output channels of a block = expansion * C'

    def __post_init__(self):
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        for name in ("width", "in_channels", "expansion"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.blocks or any(not isinstance(b, int) or b < 1 for b in self.blocks):
            raise ValueError(f"blocks must be a non-empty tuple of positive ints, got {self.blocks!r}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes < 1):
            raise ValueError(f"num_classes must be None or a positive int, got {self.num_classes!r}")


class Bottleneck(nn.Module):
    """The notes' ResBlock: ``[B, C, H, W] -> [B, 4C', H/S', W/S']``."""

    def __init__(self, in_channels: int, mid: int, stride: int = 1, *, expansion: int = 4):
        super().__init__()
        out = expansion * mid
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)  # bias would be cancelled by batch norm
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Identity() if (in_channels, stride) == (out, 1) else nn.Sequential(
            nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.bn1(self.conv1(x)))  # [B, C', H, W]
        z = torch.relu(self.bn2(self.conv2(z)))  # [B, C', H/S', W/S']
        z = self.bn3(self.conv3(z))  # [B, 4C', H/S', W/S']
        return torch.relu(z + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, residual stacks, global average pooling and (optionally) a linear classifier."""

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
            mid = w * 2**i
            blocks = [Bottleneck(channels, mid, 1 if i == 0 else 2, expansion=config.expansion)]
            channels = config.expansion * mid
            blocks += [Bottleneck(channels, mid, expansion=config.expansion) for _ in range(count - 1)]
            stacks.append(nn.Sequential(*blocks))
        self.stacks = nn.Sequential(*stacks)
        self.head = nn.Identity() if config.num_classes is None else nn.Linear(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must be [B, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        z = self.stacks(self.stem(x))  # [B, 2048, H/8, W/8] (CIFAR stem) or [B, 2048, H/32, W/32]
        return self.head(z.mean((2, 3)))  # global average pool: [B, 2048], then [B, num_classes]


@register("resnet50_cifar", ResNetConfig, stem="cifar", num_classes=10)
@register("resnet50", ResNetConfig, stem="imagenet", num_classes=1000)
def build_resnet(config: ResNetConfig) -> ResNet:
    """ResNet-50 (He et al., 2016): the notes' CIFAR variant, or the ImageNet layout."""
    return ResNet(config)
