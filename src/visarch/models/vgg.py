r"""VGG (Simonyan and Zisserman, 2015): every configuration A-E of the paper's table 1 from one table.

Five stages of convolutions with ReLU, each closed by a 2 x 2 max pool with stride 2, so a
224 x 224 image leaves the last stage as a :math:`7 \times 7 \times 512` map (total stride
:math:`2^5 = 32`); three fully connected layers (4096, 4096, 1000 units, dropout 0.5 before the
second and third) classify it.  Almost every convolution is 3 x 3 with stride 1 and padding 1, so
a stage keeps the resolution and the depth comes from stacking: two 3 x 3 layers see a 5 x 5
window and three see 7 x 7, with :math:`2 \cdot 9C^2` and :math:`3 \cdot 9C^2` weights
against :math:`25C^2` and :math:`49C^2`.  Configuration C also has 1 x 1 convolutions (a
per-pixel linear map followed by ReLU), and A-LRN a local response normalisation (no
parameters) after its first layer::

    input                                         [B, 3, 224, 224]
    stage s = 1..5: n_s convs (3x3 or 1x1), ReLU   [B, C_s, H/2^(s-1), W/2^(s-1)]
                    max pool 2x2/2                 [B, C_s, H/2^s, W/2^s]
    adaptive average pool to 7x7                   [B, 512, 7, 7] -> [B, 25088]
    linear 25088 -> 4096, ReLU, dropout            [B, 4096]
    linear 4096 -> 4096, ReLU, dropout             [B, 4096]
    linear 4096 -> 1000                            [B, 1000]

with :math:`C_s = 64, 128, 256, 512, 512`.  Convolutions have biases and there is no batch norm,
as in the paper: 132,863,336, 133,047,848, 138,357,544 and 143,667,240 parameters for A (VGG-11),
B (VGG-13), D (VGG-16) and E (VGG-19), the counts torchvision publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["LRN", "VGG", "VGGConfig", "VGG_CONFIGURATIONS"]

LRN = "LRN"  #: local response normalisation, in A-LRN only


def _conv3(channels: int, count: int = 1) -> tuple[tuple[int, int], ...]:
    return ((3, channels),) * count


#: Table 1 of the paper, column by column; per stage, each layer as (filter size, channels) or LRN.
VGG_CONFIGURATIONS: dict[str, tuple[tuple, ...]] = {
    "A": (_conv3(64), _conv3(128), _conv3(256, 2), _conv3(512, 2), _conv3(512, 2)),
    "A-LRN": ((*_conv3(64), LRN), _conv3(128), _conv3(256, 2), _conv3(512, 2), _conv3(512, 2)),
    "B": (_conv3(64, 2), _conv3(128, 2), _conv3(256, 2), _conv3(512, 2), _conv3(512, 2)),
    "C": (_conv3(64, 2), _conv3(128, 2), (*_conv3(256, 2), (1, 256)), (*_conv3(512, 2), (1, 512)),
          (*_conv3(512, 2), (1, 512))),
    "D": (_conv3(64, 2), _conv3(128, 2), _conv3(256, 3), _conv3(512, 3), _conv3(512, 3)),
    "E": (_conv3(64, 2), _conv3(128, 2), _conv3(256, 4), _conv3(512, 4), _conv3(512, 4)),
}
TOTAL_STRIDE = 32  # five 2x2 max pools with stride 2


@dataclass(frozen=True)
class VGGConfig:
    """Hyperparameters of VGG (defaults: VGG-16, column D of the paper's table 1).

    One field per choice; each field's comment says what it sets.
    """

    configuration: str = "D"  #: column of the paper's table 1, one of "A", "A-LRN", "B", "C", "D" and "E"
    in_channels: int = 3  #: RGB
    num_classes: int = 1000  #: ImageNet classes
    hidden: int = 4096  #: units of the two hidden fully connected layers (FC-4096)
    pooled: int = 7  #: side of the map the classifier reads (7 x 7, what a 224 x 224 image gives)
    dropout: float = 0.5  #: dropout ratio of the first two fully connected layers (the paper's section 3.1)

    def __post_init__(self):
        if self.configuration not in VGG_CONFIGURATIONS:
            raise ValueError(f"configuration must be a column of table 1 ({', '.join(VGG_CONFIGURATIONS)}), "
                             f"got {self.configuration!r}")
        for name in ("in_channels", "num_classes", "hidden", "pooled"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_real(self.dropout, "dropout ratio", where=type(self).__name__, ge=0, lt=1)


class VGG(nn.Module):
    """VGG, any column of the paper's table 1: class scores ``[B, num_classes]`` for ``[B, C, H, W]``, ``H, W >= 32``.

    The features leave the five stages as ``[B, 512, H/32, W/32]`` and are averaged to ``[B, 512, 7, 7]``
    (repeated below 224 x 224 pixels) before the classifier.  Convolutions and linear layers are
    initialised as He et al. (2015) propose, biases at zero.

    Args:
        config: the column (``"A"`` ... ``"E"``), the classifier's sizes, dropout and class count.
    """

    def __init__(self, config: VGGConfig):
        super().__init__()
        self.config = config
        layers, channels = [], config.in_channels
        for stage in VGG_CONFIGURATIONS[config.configuration]:
            for layer in stage:
                if layer == LRN:
                    # Krizhevsky et al.'s k = 2, n = 5, alpha = 1e-4, beta = 0.75; torch divides alpha by n
                    layers.append(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
                    continue
                kernel, width = layer
                layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2, stride=2))
        self.features = nn.Sequential(*layers)  # [B, 512, H/32, W/32]
        self.avgpool = nn.AdaptiveAvgPool2d(config.pooled)  # 7x7 whatever the image size
        self.classifier = nn.Sequential(
            nn.Linear(channels * config.pooled**2, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # Without batch norm, torch's default initialisation shrinks the signal's variance
                # six-fold per layer; He et al.'s (2015) keeps it through the 19 ReLU layers of E.
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE,
                    model=f"VGG ({self.config.configuration})")
        z = self.avgpool(self.features(x))  # [B, 512, 7, 7]
        return self.classifier(z.flatten(1))  # [B, 25088] -> [B, num_classes]


@register("vgg19", VGGConfig, configuration="E")
@register("vgg16", VGGConfig, configuration="D")
@register("vgg13", VGGConfig, configuration="B")
@register("vgg11", VGGConfig, configuration="A")
def build_vgg(config: VGGConfig) -> VGG:
    """VGG (Simonyan and Zisserman, 2015): any column of table 1; the registered names are A, B, D and E."""
    return VGG(config)
