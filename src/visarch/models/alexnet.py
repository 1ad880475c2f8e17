r"""AlexNet, in the single-tower variant of "one weird trick" (Krizhevsky, 2014).

The 2012 network (Krizhevsky, Sutskever and Hinton) was split over two GPUs, with some layers
seeing only half of the previous layer's maps; the 2014 paper trains one tower instead, and
torchvision's version of it has 64, 192, 384, 256 and 256 filters.  Five convolutions with
ReLU, three 3 x 3 max poolings with stride 2 (overlapping windows), and three fully connected
layers with dropout before the first two::

    input                                   [B, 3, 224, 224]
    conv 11x11/4, pad 2, 3 -> 64, ReLU      [B, 64, 55, 55]
    max pool 3x3/2                          [B, 64, 27, 27]
    conv 5x5, pad 2, 64 -> 192, ReLU        [B, 192, 27, 27]
    max pool 3x3/2                          [B, 192, 13, 13]
    conv 3x3, pad 1, 192 -> 384, ReLU       [B, 384, 13, 13]
    conv 3x3, pad 1, 384 -> 256, ReLU       [B, 256, 13, 13]
    conv 3x3, pad 1, 256 -> 256, ReLU       [B, 256, 13, 13]
    max pool 3x3/2                          [B, 256, 6, 6]
    adaptive average pool to 6x6            [B, 256, 6, 6] -> [B, 9216]
    dropout, linear 9216 -> 4096, ReLU      [B, 4096]
    dropout, linear 4096 -> 4096, ReLU      [B, 4096]
    linear 4096 -> 1000                     [B, 1000]

61,100,840 parameters, the count PyTorch's vision library (torchvision) publishes for the same
layout.  The total stride is :math:`4 \cdot 2^3 = 32`, but the pooling windows need more: each
3 x 3 pool needs a 3 x 3 input, so the last one needs 3 rows, the second 7, the first 15, and
the first convolution, :math:`\lfloor (H + 4 - 11)/4 \rfloor + 1 \ge 15`, needs :math:`H \ge 63`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["AlexNet", "AlexNetConfig", "MIN_SIZE"]

MIN_SIZE = 63  #: the smallest image the three 3x3/2 max pools accept (module docstring)


@dataclass(frozen=True)
class AlexNetConfig:
    """Hyperparameters of AlexNet.

    One field per choice; each field's comment says what it sets.
    """

    in_channels: int = 3  #: RGB
    num_classes: int = 1000  #: ImageNet classes
    channels: tuple[int, ...] = (64, 192, 384, 256, 256)  #: filters of the five convolutions (torchvision's tower)
    hidden: int = 4096  #: units of the two hidden fully connected layers
    dropout: float = 0.5  #: probability of dropping a unit before each hidden fully connected layer

    def __post_init__(self):
        for name in ("in_channels", "num_classes", "hidden"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_ints(self.channels, "channels (one per convolution)", where=type(self).__name__, ge=1, length=5)
        check_real(self.dropout, "dropout probability", where=type(self).__name__, ge=0, lt=1)


class AlexNet(nn.Module):
    """AlexNet as one tower: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 63``.

    The layers and their shapes are in the module docstring; images smaller than
    :data:`~visarch.models.alexnet.MIN_SIZE` are refused with a ``ValueError``.

    Args:
        config: filters, hidden width, dropout and class count; the defaults are torchvision's layout.
    """

    def __init__(self, config: AlexNetConfig):
        super().__init__()
        self.config = config
        c1, c2, c3, c4, c5 = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c1, 11, stride=4, padding=2), nn.ReLU(),  # [B, 64, 55, 55]
            nn.MaxPool2d(3, stride=2),  # [B, 64, 27, 27]
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),  # [B, 192, 13, 13]
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),  # [B, 256, 6, 6]
        )
        # fixes the classifier's input at 6 x 6 maps whatever the image size (repeats pixels below 224)
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(c5 * 36, config.hidden), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.hidden, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=MIN_SIZE, model="AlexNet",
                    why="the smallest size whose feature map survives the three 3x3 max pools with stride 2")
        z = self.avgpool(self.features(x))  # [B, 256, 6, 6]
        return self.classifier(z.flatten(1))  # [B, 9216] -> [B, num_classes]


@register("alexnet", AlexNetConfig)
def build_alexnet(config: AlexNetConfig) -> AlexNet:
    """AlexNet as one tower (Krizhevsky, 2014): 61,100,840 parameters for 1000 classes."""
    return AlexNet(config)
