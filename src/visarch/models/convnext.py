r"""ConvNeXt, and the path from ResNet-50 to it (Liu et al., 2022, "A ConvNet for the 2020s").

A ConvNeXt block keeps :math:`C` channels on its residual path and computes

.. math::

    y = x + \mathrm{DropPath}\big(\boldsymbol\gamma \odot W_2\, \mathrm{GELU}(W_1\, \mathrm{LN}(\mathrm{DW}_7(x)))\big),

with a 7 x 7 depthwise convolution (one filter per channel), a layer norm over the channels of
each pixel, a pointwise expansion :math:`W_1 \in \mathbb{R}^{4C \times C}`, GELU, a pointwise
projection :math:`W_2 \in \mathbb{R}^{C \times 4C}`, and a learnable per-channel *layer scale*
:math:`\boldsymbol\gamma \in \mathbb{R}^C` initialised to :math:`10^{-6}` so that each block starts
close to the identity.  Its cost per pixel is :math:`49C + 8C^2` multiply-accumulates: the
depthwise filter is a small share of it (:math:`49/(8C)`, 6 % at C = 96), which is why its size
could grow from 3 to 7 at almost no cost.

ConvNeXt-T (input ``[B, 3, 224, 224]``)::

    stem: 4x4 conv stride 4, 96; LN        [B, 96, 56, 56]
    stage 1: 3 blocks, C = 96              [B, 96, 56, 56]
    LN; 2x2 conv stride 2                  [B, 192, 28, 28]
    stage 2: 3 blocks, C = 192             [B, 192, 28, 28]
    LN; 2x2 conv stride 2                  [B, 384, 14, 14]
    stage 3: 9 blocks, C = 384             [B, 384, 14, 14]
    LN; 2x2 conv stride 2                  [B, 768, 7, 7]
    stage 4: 3 blocks, C = 768             [B, 768, 7, 7]
    global average pool, LN                [B, 768]
    linear                                 [B, 1000]

28,589,128 parameters, the count torchvision publishes for ``convnext_tiny``.

The same configuration spans the paper's "modernisation" of ResNet-50 (its figure 2), one field per
step: ``depths`` (stage ratio 3:4:6:3 to 3:3:9:3), ``stem`` (7x7 stride-2 convolution and max pool,
or a 4x4 stride-4 "patchify" convolution), ``depthwise`` and ``widths`` (ResNeXt-ify), ``hidden_ratio``
(bottleneck 1/4 to inverted bottleneck 4), ``spatial_first`` (the depthwise convolution moved up),
``kernel_size``, ``act``, ``activations`` and ``norms`` (one per block instead of one per layer),
``norm`` (batch norm to layer norm) and ``downsample`` (strided first blocks with projection
shortcuts, or separate downsampling layers).  :data:`MODERNISATION` lists the steps in order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import StochasticDepth, check_image
from visarch.models.registry import register

__all__ = ["MODERNISATION", "ConvNeXt", "ConvNeXtBlock", "ConvNeXtConfig", "LayerNorm2d", "modernisation_configs"]

_ACTS = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Hyperparameters of ConvNeXt (defaults: ConvNeXt-T).

    One field per choice; each field's comment says what it sets.
    """

    depths: tuple[int, ...] = (3, 3, 9, 3)  #: blocks per stage (ConvNeXt-T; ResNet-50 has 3, 4, 6, 3)
    widths: tuple[int, ...] = (96, 192, 384, 768)  #: C_i, channels on the residual path of stage i
    hidden_ratio: float = 4  #: channels between the two 1x1 layers / C_i (4, inverted bottleneck; 1/4, ResNet's)
    kernel_size: int = 7  #: K of the spatial (K x K) convolution of a block (3 in ResNet)
    depthwise: bool = True  #: the spatial convolution has one filter per channel; False makes it dense, as in ResNet
    spatial_first: bool = True  #: spatial conv first, at C_i channels; False puts it between the 1x1s, at hidden width
    stem: str = "patchify"  #: "patchify" (4x4 conv stride 4, norm) or "resnet" (7x7 conv stride 2, norm, act, max pool)
    stem_width: int | None = None  #: channels out of the stem (None = widths[0])
    act: str = "gelu"  #: "gelu" or "relu"
    norm: str = "layer"  #: "layer" (layer norm over the channels of each pixel) or "batch" (batch norm)
    activations: str = "one"  #: "one" (only between the 1x1 layers) or "all" (after every layer and the sum, as ResNet)
    norms: str = "one"  #: "one" (only after the spatial convolution) or "all" (after every convolution, as ResNet)
    #: "separate" (norm + 2x2 stride-2 conv between stages, and norms after the stem and before the head) or
    #: "in_block" (the first block of a stage strides and has a projection shortcut)
    downsample: str = "separate"
    layer_scale: float | None = 1e-6  #: initial gamma of the per-channel layer scale; None for no layer scale
    drop_path: float = 0.0  #: stochastic depth rate of the last block, rising linearly from 0 (0.1 for the paper's T)
    in_channels: int = 3  #: colour channels of the input image
    num_classes: int = 1000  #: classes of the linear classifier
    eps: float = 1e-6  #: epsilon of the layer norms

    def __post_init__(self):
        choices = {"stem": ("patchify", "resnet"), "act": tuple(_ACTS), "norm": ("layer", "batch"),
                   "activations": ("one", "all"), "norms": ("one", "all"), "downsample": ("separate", "in_block")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.depths or len(self.depths) != len(self.widths):
            raise ValueError(f"depths and widths must be non-empty and name the same stages, got {self.depths!r} "
                             f"and {self.widths!r}")
        for i, (d, w) in enumerate(zip(self.depths, self.widths, strict=True)):
            check_int(d, f"depth of stage {i + 1}", where=type(self).__name__, ge=1)
            check_int(w, f"width C_{i + 1}", where=type(self).__name__, ge=1)
        check_real(self.hidden_ratio, "hidden ratio", where=type(self).__name__, gt=0)
        for i, w in enumerate(self.widths):
            if (w * self.hidden_ratio) % 1:
                raise ValueError(f"hidden ratio {self.hidden_ratio} times width C_{i + 1} = {w} is not a whole number "
                                 "of channels")
        check_int(self.kernel_size, "kernel size K", where=type(self).__name__, ge=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel size K must be odd so that the filter has a centre, got {self.kernel_size}")
        for name in ("stem_width", "in_channels", "num_classes"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if self.layer_scale is not None:
            check_real(self.layer_scale, "layer scale gamma init", where=type(self).__name__, gt=0)
        check_real(self.drop_path, "drop path rate", where=type(self).__name__, ge=0, lt=1)
        check_real(self.eps, "layer norm eps", where=type(self).__name__, gt=0)

    def hidden(self, width: int) -> int:
        """Channels between the two 1x1 layers of a block of width ``width``."""
        return int(width * self.hidden_ratio)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the C channels of each pixel separately, ``[B, C, H, W] -> [B, C, H, W]``.

    ``nn.LayerNorm`` applied with the channels moved last and back; its arguments are ``nn.LayerNorm``'s.

    Args:
        normalized_shape: C.
        eps: added to the variance.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # via [B, H, W, C]


def _norm(config: ConvNeXtConfig, channels: int) -> nn.Module:
    return LayerNorm2d(channels, eps=config.eps) if config.norm == "layer" else nn.BatchNorm2d(channels)


class ConvNeXtBlock(nn.Module):
    """A ConvNeXt block, or a step of ResNet's bottleneck towards it: ``[B, C_in, H, W] -> [B, C_out, H/S, W/S]``.

    A spatial convolution and two 1x1 layers in the order, with the norms and activations, that ``config``
    says; then the layer scale, stochastic depth, the shortcut (identity, or a strided 1x1 projection with
    a norm when the shape changes) and, with ``activations="all"``, an activation after the sum.  With
    the default config it is ConvNeXt's block of the module docstring.

    Args:
        config: the design choices (kernel, order, norms, activations, hidden ratio, layer scale).
        c_in: C_in.
        c_out: C_out; the hidden width is ``config.hidden(c_out)``.
        stride: S, of the spatial convolution and the projection.
        drop_path: stochastic depth probability of the residual branch.
    """

    def __init__(self, c_in: int, c_out: int, *, config: ConvNeXtConfig, stride: int = 1, drop_path: float = 0.0):
        super().__init__()
        hidden, k = config.hidden(c_out), config.kernel_size
        spatial_width = c_in if config.spatial_first else hidden
        if config.spatial_first:
            shapes = [(c_in, c_in, k, stride), (c_in, hidden, 1, 1), (hidden, c_out, 1, 1)]
        else:
            shapes = [(c_in, hidden, 1, 1), (hidden, hidden, k, stride), (hidden, c_out, 1, 1)]
        spatial = 0 if config.spatial_first else 1
        batch = config.norm == "batch"
        layers = []
        for n, (ci, co, kk, s) in enumerate(shapes):
            normed = config.norms == "all" or n == spatial
            groups = spatial_width if (n == spatial and config.depthwise) else 1
            # a bias just before batch norm would be cancelled by its shift
            layers.append(nn.Conv2d(ci, co, kk, s, kk // 2, groups=groups, bias=not (normed and batch)))
            if normed:
                layers.append(_norm(config, co))
            if config.activations == "all" and n < 2 or config.activations == "one" and n == 1:
                layers.append(_ACTS[config.act]())
        self.body = nn.Sequential(*layers)
        self.gamma = None if config.layer_scale is None else nn.Parameter(torch.full((c_out,), config.layer_scale))
        self.drop_path = StochasticDepth(drop_path)
        if (c_in, stride) == (c_out, 1):
            self.shortcut = nn.Identity()
        else:  # ResNet's projection shortcut
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=not batch), _norm(config, c_out))
        self.post = _ACTS[config.act]() if config.activations == "all" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(x)  # [B, C_out, H/S, W/S]
        if self.gamma is not None:
            z = z * self.gamma[:, None, None]
        return self.post(self.shortcut(x) + self.drop_path(z))


class ConvNeXt(nn.Module):
    """ConvNeXt, or a step from ResNet-50 to it: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``.

    Stem, stages of blocks (with downsampling between them), global average pool, a layer norm with
    separate downsampling, and a linear classifier.  The image must be at least the total stride on each
    side, 32 with four stages.

    Args:
        config: the stages and every design choice of the modernisation; the defaults are ConvNeXt-T.
    """

    def __init__(self, config: ConvNeXtConfig):
        super().__init__()
        self.config = config
        stem_width = config.stem_width or config.widths[0]
        if config.stem == "patchify":
            self.stem = nn.Sequential(nn.Conv2d(config.in_channels, stem_width, 4, 4), _norm(config, stem_width))
        else:
            self.stem = nn.Sequential(nn.Conv2d(config.in_channels, stem_width, 7, 2, 3, bias=config.norm != "batch"),
                                      _norm(config, stem_width), _ACTS[config.act](), nn.MaxPool2d(3, 2, 1))
        separate = config.downsample == "separate"
        total = sum(config.depths)
        rates = [config.drop_path * i / max(total - 1, 1) for i in range(total)]
        stages, channels, index = [], stem_width, 0
        for i, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True)):
            layers = []
            if separate and i > 0:
                layers += [_norm(config, channels), nn.Conv2d(channels, width, 2, 2)]
                channels = width
            for b in range(depth):
                stride = 2 if not separate and i > 0 and b == 0 else 1
                layers.append(ConvNeXtBlock(channels, width, config=config, stride=stride, drop_path=rates[index]))
                channels, index = width, index + 1
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head_norm = nn.LayerNorm(channels, eps=config.eps) if separate else nn.Identity()
        self.fc = nn.Linear(channels, config.num_classes)
        self.min_size = 4 * 2 ** (len(config.depths) - 1)  # the total stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, in_channels=self.config.in_channels, min_size=self.min_size, model="ConvNeXt")
        x = self.stages(self.stem(x))  # [B, C_last, H/32, W/32]
        return self.fc(self.head_norm(x.mean((2, 3))))  # [B, num_classes]


_RESNET50 = dict(depths=(3, 4, 6, 3), widths=(256, 512, 1024, 2048), hidden_ratio=0.25, kernel_size=3,
                 depthwise=False, spatial_first=False, stem="resnet", stem_width=64, act="relu", norm="batch",
                 activations="all", norms="all", downsample="in_block", layer_scale=None)

#: The paper's steps from ResNet-50 to ConvNeXt-T, as (name, fields changed from the previous step).
MODERNISATION: tuple[tuple[str, dict], ...] = (
    ("ResNet-50", _RESNET50),
    ("stage ratio 3:3:9:3", dict(depths=(3, 3, 9, 3))),
    ("patchify stem", dict(stem="patchify")),
    ("depthwise conv", dict(depthwise=True)),
    ("width 64 -> 96", dict(widths=(384, 768, 1536, 3072), stem_width=96)),
    ("inverted bottleneck", dict(widths=(96, 192, 384, 768), hidden_ratio=4, stem_width=None)),
    ("move up depthwise conv", dict(spatial_first=True)),
    ("kernel 7x7", dict(kernel_size=7)),
    ("ReLU -> GELU", dict(act="gelu")),
    ("fewer activations", dict(activations="one")),
    ("fewer norms", dict(norms="one")),
    ("BN -> LN", dict(norm="layer")),
    ("separate downsampling", dict(downsample="separate")),
    ("layer scale (= ConvNeXt-T)", dict(layer_scale=1e-6)),
)


def modernisation_configs() -> list[tuple[str, ConvNeXtConfig]]:
    """Each step of :data:`~visarch.models.convnext.MODERNISATION` as a full config, the changes accumulated.

    Returns:
        ``(name, config)`` pairs, from ResNet-50 to ConvNeXt-T.
    """
    fields, out = {}, []
    for name, change in MODERNISATION:
        fields.update(change)
        out.append((name, dataclasses.replace(ConvNeXtConfig(), **fields)))
    return out


@register("convnext_tiny", ConvNeXtConfig)
def build_convnext(config: ConvNeXtConfig) -> ConvNeXt:
    """The builder of the registered ``convnext_tiny``, a :class:`~visarch.models.convnext.ConvNeXt`."""
    return ConvNeXt(config)
