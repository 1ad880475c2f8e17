r"""GoogLeNet, the Inception-v1 network (Szegedy et al., 2015), in the layout torchvision publishes.

An Inception module runs four branches on the same input ``[B, C, H, W]`` and concatenates their
outputs along the channels, ``[B, n_1 + n_3 + n_5 + n_p, H, W]``:

* a 1 x 1 convolution to :math:`n_1` channels;
* a 1 x 1 *reduction* to :math:`r_3` channels, then a 3 x 3 convolution to :math:`n_3`;
* a 1 x 1 reduction to :math:`r_5`, then a 5 x 5 convolution to :math:`n_5`;
* a 3 x 3 max pool with stride 1, then a 1 x 1 *projection* to :math:`n_p`.

Every convolution is "same"-padded and followed by batch norm and ReLU (batch norm was added after
the paper, in the version whose weights torchvision ports).  With weights only,
a module holds :math:`C(n_1 + r_3 + r_5 + n_p) + 9 r_3 n_3 + 25 r_5 n_5` of them; the
reductions are what keep the 3 x 3 and 5 x 5 filters from reading all :math:`C` channels.

The network (shapes for a 224 x 224 image)::

    stem: conv 7x7/2 3 -> 64, max pool 3x3/2, conv 1x1 64 -> 64,
          conv 3x3 64 -> 192, max pool 3x3/2                       [B, 192, 28, 28]
    3a, 3b, max pool 3x3/2                                        [B, 480, 14, 14]
    4a (aux head 1), 4b, 4c, 4d (aux head 2), 4e, max pool 2x2/2  [B, 832, 7, 7]
    5a, 5b                                                        [B, 1024, 7, 7]
    global average pool, dropout, linear 1024 -> 1000             [B, 1000]

An auxiliary head (training only) reads the output of 4a or 4d: average pooling to 4 x 4, a 1 x 1
convolution to 128 channels (with batch norm and ReLU), a linear layer 2048 -> 1024 with ReLU,
dropout 0.7 and a linear layer to the classes.  The paper pools with a 5 x 5 window and stride 3,
which on the 14 x 14 map of 4a and 4d gives 4 x 4 as well; adaptive pooling also accepts smaller
images.  With ``aux_logits`` the model returns ``(main, aux1, aux2)`` in training mode and the
main logits alone in evaluation mode; :func:`googlenet_loss` weights the auxiliary losses by 0.3,
as the paper does.

torchvision's "5x5" branch uses a 3 x 3 filter, a bug kept for the weights trained with it
(pytorch/vision issue 906): 6,624,904 parameters without the auxiliary heads and 13,004,888 with
them.  ``kernel_5x5=5`` builds the paper's module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import check_image, conv_bn_act
from visarch.models.registry import register

__all__ = ["AuxiliaryHead", "GoogLeNet", "GoogLeNetConfig", "INCEPTION_MODULES", "Inception", "googlenet_loss"]

#: The paper's table 1, module -> (input channels C, n_1, r_3, n_3, r_5, n_5, n_p)
INCEPTION_MODULES: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
AUX_TAPS = ("4a", "4d")  # modules whose outputs feed the auxiliary heads
TOTAL_STRIDE = 32  # conv 7x7/2 and four max pools with stride 2


@dataclass(frozen=True)
class GoogLeNetConfig:
    """Hyperparameters of GoogLeNet (Inception v1).

    One field per choice; each field's comment says what it sets.
    """

    in_channels: int = 3  #: RGB
    num_classes: int = 1000  #: ImageNet classes
    aux_logits: bool = False  #: add the two auxiliary heads on 4a and 4d (used in training only)
    kernel_5x5: int = 3  #: filter of the "5x5" branch; 3 reproduces torchvision's count and weights, 5 the paper
    dropout: float = 0.2  #: before the final linear layer (torchvision; the paper's table 1 has 40 %)
    aux_dropout: float = 0.7  #: in each auxiliary head (the paper's "70 % ratio of dropped outputs")
    eps: float = 1e-3  #: batch-norm epsilon of the ported weights

    def __post_init__(self):
        for name in ("in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if check_int(self.kernel_5x5, "kernel_5x5", where=type(self).__name__, ge=1) % 2 == 0:
            raise ValueError(f"{type(self).__name__}: kernel_5x5 must be odd (a same-padded filter), "
                             f"got {self.kernel_5x5}")
        for name in ("dropout", "aux_dropout"):
            check_real(getattr(self, name), f"{name} probability", where=type(self).__name__, ge=0, lt=1)
        if not self.eps > 0:
            raise ValueError(f"batch-norm eps must be > 0, got {self.eps!r}")


class Inception(nn.Module):
    """An Inception module, ``[B, C, H, W] -> [B, n_1 + n_3 + n_5 + n_p, H, W]``: four branches, concatenated.

    The branches are a 1 x 1 convolution; a 1 x 1 reduction and a 3 x 3 convolution; a 1 x 1 reduction and
    a "5x5" convolution; a 3 x 3 max pool (stride 1) and a 1 x 1 projection.  Every convolution is followed
    by batch norm and ReLU.

    Args:
        in_channels: C.
        n1: n_1, channels of the 1 x 1 branch.
        r3: r_3, channels of the reduction before the 3 x 3 convolution.
        n3: n_3, channels of the 3 x 3 convolution.
        r5: r_5, channels of the reduction before the "5x5" convolution.
        n5: n_5, channels of the "5x5" convolution.
        pool_proj: n_p, channels of the projection after the max pool.
        kernel_5x5: filter size of the "5x5" branch (torchvision's layout uses 3).
        eps: batch norm's epsilon.
    """

    def __init__(self, in_channels: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool_proj: int, *,
                 kernel_5x5: int = 5, eps: float = 1e-3):
        super().__init__()
        self.branch1 = conv_bn_act(in_channels, n1, 1, eps=eps)
        self.branch2 = nn.Sequential(conv_bn_act(in_channels, r3, 1, eps=eps), conv_bn_act(r3, n3, 3, eps=eps))
        self.branch3 = nn.Sequential(conv_bn_act(in_channels, r5, 1, eps=eps),
                                     conv_bn_act(r5, n5, kernel_5x5, eps=eps))
        # the paper's order: pool first, then the 1x1 "pool proj" shrinks the pooled map to n_p channels
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     conv_bn_act(in_channels, pool_proj, 1, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxiliaryHead(nn.Module):
    """An auxiliary classifier on an intermediate map, ``[B, C, H, W] -> [B, num_classes]``.

    Average pooling to 4 x 4, a 1 x 1 convolution to 128 channels (batch norm, ReLU), a linear layer
    2048 -> 1024 with ReLU, dropout, and a linear layer to the classes.

    Args:
        in_channels: C, the channels of the map it reads (512 or 528 after 4a and 4d).
        num_classes: outputs of the last linear layer.
        dropout: probability of dropping a unit before it.
        eps: batch norm's epsilon.
    """

    def __init__(self, in_channels: int, *, num_classes: int, dropout: float = 0.7, eps: float = 1e-3):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)  # [B, C, 4, 4]
        self.conv = conv_bn_act(in_channels, 128, 1, eps=eps)  # [B, 128, 4, 4]
        self.fc1 = nn.Linear(128 * 16, 1024)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(self.pool(x)).flatten(1)  # [B, 2048]
        return self.fc2(self.dropout(torch.relu(self.fc1(z))))


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1): class scores ``[B, num_classes]`` for images ``[B, C, H, W]``, ``H, W >= 32``.

    With ``aux_logits``, in training mode, it returns the tuple ``(main, aux1, aux2)`` of three
    ``[B, num_classes]`` score tensors instead (see :func:`~visarch.models.googlenet.googlenet_loss`).

    Args:
        config: input channels, classes, auxiliary heads, the "5x5" filter size, dropouts and epsilon.
    """

    def __init__(self, config: GoogLeNetConfig):
        super().__init__()
        self.config = config
        eps = config.eps
        self.stem = nn.Sequential(  # [B, 3, 224, 224] -> [B, 192, 28, 28]
            conv_bn_act(config.in_channels, 64, 7, stride=2, eps=eps),  # [B, 64, 112, 112]
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # [B, 64, 56, 56]
            conv_bn_act(64, 64, 1, eps=eps),
            conv_bn_act(64, 192, 3, eps=eps),  # [B, 192, 56, 56]
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # [B, 192, 28, 28]
        )
        blocks = {}
        for name, widths in INCEPTION_MODULES.items():
            blocks[name] = Inception(*widths, kernel_5x5=config.kernel_5x5, eps=eps)
            if name == "3b":
                blocks["pool3"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 28 -> 14
            elif name == "4e":
                blocks["pool4"] = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 14 -> 7 (the paper: 3x3/2)
        self.blocks = nn.ModuleDict(blocks)
        self.aux = nn.ModuleDict({tap: AuxiliaryHead(self._out_channels(tap), num_classes=config.num_classes,
                                                     dropout=config.aux_dropout, eps=eps)
                                  for tap in (AUX_TAPS if config.aux_logits else ())})
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(self._out_channels("5b"), config.num_classes)

    @staticmethod
    def _out_channels(name: str) -> int:
        _, n1, _, n3, _, n5, n_p = INCEPTION_MODULES[name]
        return n1 + n3 + n5 + n_p

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        check_image(x, in_channels=self.config.in_channels, min_size=TOTAL_STRIDE, model="GoogLeNet")
        x = self.stem(x)
        aux = []
        for name, block in self.blocks.items():
            x = block(x)
            if name in self.aux and self.training:  # the heads are discarded at inference
                aux.append(self.aux[name](x))
        logits = self.fc(self.dropout(x.mean((2, 3))))  # global average pool: [B, 1024] -> [B, num_classes]
        return (logits, *aux) if aux else logits


def googlenet_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                   aux_weight: float = 0.3) -> torch.Tensor:
    """Cross-entropy of the main logits plus ``aux_weight`` times that of each auxiliary head (the paper's 0.3).

    A ``loss_fn`` for :func:`visarch.train.loop.fit`.  Plain cross-entropy when the model returns one tensor (no
    heads, or evaluation mode).

    Args:
        model: a :class:`~visarch.models.googlenet.GoogLeNet`, or any classifier.
        images: the batch ``[B, C, H, W]``.
        labels: class indices ``[B]``.
        aux_weight: the weight of each auxiliary head's loss.

    Returns:
        The scalar loss.
    """
    out = model(images)
    if isinstance(out, torch.Tensor):
        return F.cross_entropy(out, labels)
    main, *aux = out
    return F.cross_entropy(main, labels) + aux_weight * sum(F.cross_entropy(a, labels) for a in aux)


@register("googlenet_aux", GoogLeNetConfig, aux_logits=True)
@register("googlenet", GoogLeNetConfig)
def build_googlenet(config: GoogLeNetConfig) -> GoogLeNet:
    """GoogLeNet (Szegedy et al., 2015) with batch norm, as torchvision publishes it."""
    return GoogLeNet(config)
