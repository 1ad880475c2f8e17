r"""DenseNet: every layer of a block reads the concatenation of all earlier maps (Huang et al., 2017).

Inside a *dense block* the :math:`\ell`-th layer computes
:math:`\mathbf{x}_\ell = H_\ell([\mathbf{x}_0, \mathbf{x}_1, \dots, \mathbf{x}_{\ell-1}])`, where
:math:`[\cdot]` concatenates along the channels and every :math:`H_\ell` adds :math:`k` new channels
(the *growth rate*).  A block with :math:`c_0` input channels and :math:`L` layers therefore feeds
its :math:`\ell`-th layer :math:`c_0 + (\ell - 1)k` channels and outputs :math:`c_0 + Lk`.
DenseNet-BC's :math:`H_\ell` is a bottleneck, BN-ReLU-Conv(1 x 1, :math:`4k`)-BN-ReLU-Conv(3 x 3,
:math:`k`), and a *transition* between blocks, BN-ReLU-Conv(1 x 1)-AvgPool(2 x 2, stride 2),
compresses :math:`m` channels to :math:`\lfloor \theta m \rfloor` (:math:`\theta = 0.5`) and halves
the resolution.

With :math:`c` input channels a dense layer holds :math:`2c` batch-norm parameters, :math:`4k c`
weights of the 1 x 1 convolution, :math:`8k` of the second batch norm and :math:`36 k^2` of the
3 x 3 convolution: :math:`(4k + 2)c + 8k + 36k^2`; a transition from :math:`m` channels holds
:math:`2m + m \lfloor \theta m \rfloor`.  None of the convolutions has a bias (batch norm follows
or precedes every one of them).

Shapes of DenseNet-121 (k = 32, blocks of 6, 12, 24 and 16 layers) for ``[B, 3, 224, 224]``::

    stem: 7x7 conv 64, stride 2; BN, ReLU; 3x3 max pool, stride 2   [B, 64, 56, 56]
    dense block 1 (6 layers)                                        [B, 256, 56, 56]
    transition 1                                                    [B, 128, 28, 28]
    dense block 2 (12 layers)                                       [B, 512, 28, 28]
    transition 2                                                    [B, 256, 14, 14]
    dense block 3 (24 layers)                                       [B, 1024, 14, 14]
    transition 3                                                    [B, 512, 7, 7]
    dense block 4 (16 layers)                                       [B, 1024, 7, 7]
    BN, ReLU, global average pool                                   [B, 1024]
    linear                                                          [B, 1000]

7,978,856 parameters, the count torchvision publishes for its ``densenet121``.  DenseNet-169, -201
((6, 12, 32, 32), (6, 12, 48, 32)) and -161 (k = 48, 96 initial channels, (6, 12, 36, 24)) are
the same configuration with other numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["DenseBlock", "DenseLayer", "DenseNet", "DenseNetConfig", "Transition"]

TOTAL_STRIDE = 32  # stem 4 (stride-2 convolution, stride-2 max pool), then three transitions of 2


@dataclass(frozen=True)
class DenseNetConfig:
    """Hyperparameters of DenseNet (defaults: DenseNet-121).

    One field per choice; each field's comment says what it sets.
    """

    growth_rate: int = 32  #: k, the channels each dense layer adds (DenseNet-121)
    blocks: tuple[int, ...] = (6, 12, 24, 16)  #: L of each dense block (DenseNet-121)
    init_features: int = 64  #: channels of the 7x7 stem convolution (2k in the paper)
    bottleneck: int = 4  #: the 1x1 convolution of a dense layer outputs bottleneck * k channels
    compression: float = 0.5  #: theta; a transition keeps floor(theta * m) of its m channels
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: ImageNet classes

    def __post_init__(self):
        for name in ("growth_rate", "init_features", "bottleneck", "in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_ints(self.blocks, "blocks (layers per dense block)", where=type(self).__name__, ge=1)
        theta = check_real(self.compression, "compression factor theta", where=type(self).__name__, gt=0, le=1)
        for m in self.block_outputs()[:-1]:
            if int(theta * m) < 1:
                raise ValueError(f"compression theta={theta} leaves no channel of a transition's {m} inputs")

    def block_outputs(self) -> list[int]:
        """Channels leaving each dense block, ``c_0 + L k``, with ``c_0`` the previous transition's output."""
        outputs, c = [], self.init_features
        for i, layers in enumerate(self.blocks):
            c += layers * self.growth_rate
            outputs.append(c)
            if i < len(self.blocks) - 1:
                c = int(self.compression * c)
        return outputs


class DenseLayer(nn.Module):
    r"""One dense layer :math:`H_\ell`, ``[B, c, H, W] -> [B, k, H, W]``: the k new channels only.

    BN-ReLU-Conv 1x1 (to bottleneck * k) - BN-ReLU-Conv 3x3 (to k), no biases; the caller concatenates
    its output to its input.

    Args:
        in_channels: c, all the channels of the block so far.
        growth_rate: k.
        bottleneck: the 1 x 1 convolution outputs ``bottleneck * k`` channels (4 in DenseNet-BC).
    """

    def __init__(self, in_channels: int, *, growth_rate: int, bottleneck: int):
        super().__init__()
        width = bottleneck * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(torch.relu(self.norm1(x)))  # [B, 4k, H, W]
        return self.conv2(torch.relu(self.norm2(z)))  # [B, k, H, W]


class DenseBlock(nn.Module):
    """A dense block of L layers, ``[B, c_0, H, W] -> [B, c_0 + L k, H, W]``.

    Layer ``l`` reads all ``c_0 + (l - 1) k`` channels so far, and the block returns them all with the last
    layer's k.

    Args:
        in_channels: c_0.
        layers: L.
        growth_rate: k.
        bottleneck: the width factor of each layer's 1 x 1 convolution.
    """

    def __init__(self, in_channels: int, *, layers: int, growth_rate: int, bottleneck: int):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate=growth_rate, bottleneck=bottleneck)
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for layer in self.layers:
            maps.append(layer(torch.cat(maps, 1)))  # the new k channels join every later layer's input
        return torch.cat(maps, 1)


class Transition(nn.Sequential):
    """A transition between dense blocks, ``[B, m, H, W] -> [B, m', H/2, W/2]``: BN, ReLU, 1x1 conv, 2x2 average pool.

    Args:
        in_channels: m.
        out_channels: m', ``floor(theta m)`` in DenseNet-BC.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.AvgPool2d(2, stride=2))


class DenseNet(nn.Module):
    """DenseNet(-BC): class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 32``.

    Stem, dense blocks with transitions between them, BN and ReLU, global average pooling, linear
    classifier; the module docstring gives DenseNet-121's shapes.

    Args:
        config: growth rate, layers per block, stem width, bottleneck, compression and class count.
    """

    def __init__(self, config: DenseNetConfig):
        super().__init__()
        self.config = config
        c = config.init_features
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, c, 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        stages = []
        for i, layers in enumerate(config.blocks):
            stages.append(DenseBlock(c, layers=layers, growth_rate=config.growth_rate, bottleneck=config.bottleneck))
            c += layers * config.growth_rate
            if i < len(config.blocks) - 1:
                stages.append(Transition(c, int(config.compression * c)))
                c = int(config.compression * c)
        self.features = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(c)  # the last block's output has not been normalised yet
        self.classifier = nn.Linear(c, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE, model="DenseNet")
        z = torch.relu(self.norm(self.features(self.stem(x))))  # [B, 1024, H/32, W/32]
        return self.classifier(z.mean((2, 3)))  # [B, 1024] -> [B, num_classes]


@register("densenet121", DenseNetConfig)
def build_densenet(config: DenseNetConfig) -> DenseNet:
    """DenseNet-BC (Huang et al., 2017); the registered DenseNet-121 is k = 32 with blocks (6, 12, 24, 16)."""
    return DenseNet(config)
