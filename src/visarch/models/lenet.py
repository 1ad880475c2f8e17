r"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), the classic layout with full C3 connections.

Three 5 x 5 convolutions with :math:`\tanh`, two parameter-free 2 x 2 average poolings, then two
fully connected layers.  A 32 x 32 image is exactly what the layers need: layer C5's 5 x 5 filters
cover the whole 5 x 5 map left by S4, so C5 is a fully connected layer written as a convolution::

    input                             [B, 1, 32, 32]
    C1  conv 5x5, 1 -> 6,  tanh       [B, 6, 28, 28]
    S2  average pool 2x2              [B, 6, 14, 14]
    C3  conv 5x5, 6 -> 16, tanh       [B, 16, 10, 10]
    S4  average pool 2x2              [B, 16, 5, 5]
    C5  conv 5x5, 16 -> 120, tanh     [B, 120, 1, 1] -> [B, 120]
    F6  linear 120 -> 84, tanh        [B, 84]
    output linear 84 -> 10            [B, 10]

A convolution :math:`C \to C'` with :math:`F \times F` filters and biases holds :math:`C'(CF^2 + 1)`
parameters, a linear layer :math:`n \to m` holds :math:`m(n + 1)`, so LeNet-5 has
:math:`6 \cdot 26 + 16 \cdot 151 + 120 \cdot 401 + 84 \cdot 121 + 10 \cdot 85 = 61{,}706`.

Simplifications against the paper, as in most modern re-implementations: C3 connects every S2 map
to every C3 map (the paper's table 1 gives each C3 map only 3 to 6 of the 6 inputs, 1,516 weights
instead of 2,416), S2 and S4 are plain averages (the paper's subsampling layers have a trainable
coefficient and bias per map), :math:`\tanh` replaces the scaled :math:`1.7159 \tanh(2a/3)`, and
the output layer is linear instead of the paper's Euclidean RBF units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_ints
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["LeNet5", "LeNet5Config"]

IMAGE_SIZE = 32  # the only size for which C5's 5x5 filters see exactly the 5x5 map of S4


@dataclass(frozen=True)
class LeNet5Config:
    """Hyperparameters of LeNet-5.

    One field per choice; each field's comment says what it sets.
    """

    in_channels: int = 1  #: grey images, as the digits the paper reads
    num_classes: int = 10  #: the ten digits
    channels: tuple[int, int, int] = (6, 16, 120)  #: maps of C1, C3 and C5
    hidden: int = 84  #: units of F6 (the paper's 7 x 12 bitmaps of the target characters)

    def __post_init__(self):
        for name in ("in_channels", "num_classes", "hidden"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_ints(self.channels, "channels (C1, C3, C5)", where=type(self).__name__, ge=1, length=3)


class LeNet5(nn.Module):
    """LeNet-5: class scores ``[B, num_classes]`` for images ``[B, C, 32, 32]`` (no other size fits C5).

    Args:
        config: the channels of C1, C3 and C5, the width of F6 and the class count.
    """

    def __init__(self, config: LeNet5Config):
        super().__init__()
        self.config = config
        c1, c3, c5 = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c1, 5), nn.Tanh(),  # C1: [B, 6, 28, 28]
            nn.AvgPool2d(2),  # S2: [B, 6, 14, 14]
            nn.Conv2d(c1, c3, 5), nn.Tanh(),  # C3: [B, 16, 10, 10]
            nn.AvgPool2d(2),  # S4: [B, 16, 5, 5]
            nn.Conv2d(c3, c5, 5), nn.Tanh(),  # C5: [B, 120, 1, 1]
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c5, config.hidden), nn.Tanh(),  # F6
                                        nn.Linear(config.hidden, config.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=IMAGE_SIZE, model="LeNet-5",
                    why="the size C5 needs: its 5x5 filters must cover the whole 5x5 map of S4")
        if tuple(x.shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"LeNet-5: input must be 32x32 (C5 maps S4's 5x5 map to 1x1), "
                             f"got {x.shape[2]}x{x.shape[3]}")
        return self.classifier(self.features(x))


@register("lenet5", LeNet5Config)
def build_lenet5(config: LeNet5Config) -> LeNet5:
    """LeNet-5 (LeCun et al., 1998) with full C3 connections and parameter-free average pooling."""
    return LeNet5(config)
