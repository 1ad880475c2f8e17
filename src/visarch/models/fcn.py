r"""Fully convolutional networks: classifiers rewritten as convolutions, bilinear upsampling by transposed
convolution, and the skip fusion of FCN-32s, -16s and -8s (Long et al., 2015).

*Convolutionalisation.*  A linear layer that reads a flattened map :math:`\mathbf{z} \in
\mathbb{R}^{C \times H \times W}`, :math:`y_o = \sum_{c,i,j} W_{o,(c,i,j)} z_{c,i,j} + b_o`, is a
convolution with the :math:`C \times H \times W` kernel :math:`W_{o,c,:,:}` evaluated at the one
position where it fits; every later linear layer reads a vector and is a 1 x 1 convolution.  On a
larger map :math:`C \times H' \times W'` the convolutional network returns an
:math:`(H' - H + 1) \times (W' - W + 1)` map of scores: the classifier slid over every window.

*Bilinear upsampling.*  A transposed convolution with stride :math:`f`, kernel :math:`K = 2f - f
\bmod 2`, padding :math:`P = \lceil (f - 1)/2 \rceil` maps :math:`n` inputs to :math:`(n - 1)f - 2P +
K = nf` outputs.  With the separable kernel :math:`w(a, b) = h(a)h(b)`, :math:`h(a) = 1 - |a -
\gamma|/f`, :math:`\gamma = (K - 1)/2`, output pixel :math:`o` gets weight :math:`1 - |x_o - i|` from
input :math:`i`, where :math:`x_o = (o + \tfrac12)/f - \tfrac12` is the source coordinate of
half-pixel-centred bilinear interpolation (``align_corners=False``).  The two agree wherever
:math:`0 \le x_o \le n - 1`; the first and last :math:`\lfloor f/2 \rfloor` outputs of each row and
column fall outside, where interpolation repeats the edge value and the transposed convolution
lets the missing neighbour count as zero: it is bilinear interpolation of the image framed by one
pixel of zeros, with ``f`` outputs dropped at each end.  The geometry is the one documented with
Caffe's bilinear filler, the framework of the authors' release.

*Skip fusion* (shapes for a VGG-16 backbone and a ``[B, 3, H, W]`` image, ``H, W`` multiples of 32)::

    pool3                              [B, 256, H/8,  W/8]
    pool4                              [B, 512, H/16, W/16]
    pool5 -> fc6 (7x7), fc7 (1x1)      [B, 4096, H/32, W/32]
    score_fr (1x1)                     [B, K, H/32, W/32]    FCN-32s: upsample x32 -> [B, K, H, W]
    + score_pool4 (1x1 on pool4)       [B, K, H/16, W/16]    after a learned x2 upsampling of score_fr;
                                                             FCN-16s: upsample x16
    + score_pool3 (1x1 on pool3)       [B, K, H/8,  W/8]     after a second learned x2; FCN-8s: x8

As in the paper, the x2 upsamplings start bilinear and are learned; the final one stays bilinear.
The authors' code pads the first convolution by 100 pixels and crops after every fusion so that
any image size works; here fc6 is padded to keep the map at ``H/32`` and the image side must be a
multiple of 32, so no cropping is needed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from visarch.checks import check_int
from visarch.models.layers import check_image

__all__ = ["FCN", "bilinear_kernel", "convolutionalize", "upsampling_geometry"]

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)
VARIANTS = {"32s": 32, "16s": 16, "8s": 8}  # name -> stride of the finest score map


def upsampling_geometry(factor: int) -> tuple[int, int, int]:
    """``(kernel, stride, padding)`` of the transposed convolution that upsamples by ``factor``.

    They are ``2f - f % 2``, ``f`` and ``ceil((f - 1) / 2)``, so that ``n`` inputs give exactly ``n f`` outputs.

    Args:
        factor: f, a positive int.

    Returns:
        ``(kernel, stride, padding)``.
    """
    check_int(factor, "upsampling factor f", where="upsampling_geometry", ge=1)
    return 2 * factor - factor % 2, factor, factor // 2  # f // 2 = ceil((f - 1) / 2)


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """The weight of a ``ConvTranspose2d`` that upsamples every channel on its own by bilinear interpolation.

    Channel c reads only channel c, through the separable hat :math:`h(a)h(b)` of the module docstring.

    Args:
        channels: input and output channels of the transposed convolution.
        factor: f, the upsampling factor.

    Returns:
        The weight ``[channels, channels, K, K]``, with K from
        :func:`~visarch.models.fcn.upsampling_geometry`.
    """
    check_int(channels, "channels", where="bilinear_kernel", ge=1)
    kernel, _, _ = upsampling_geometry(factor)
    centre = (kernel - 1) / 2
    h = 1 - (torch.arange(kernel, dtype=torch.float32) - centre).abs() / factor  # the 1D hat, [K]
    weight = torch.zeros(channels, channels, kernel, kernel)
    weight[range(channels), range(channels)] = h[:, None] * h[None, :]  # no mixing between channels
    return weight


def convolutionalize(classifier: nn.Module, feature_shape: tuple[int, int, int], *, same: bool = False
                     ) -> nn.Sequential:
    """The convolutional twin of ``classifier``, which reads a feature map ``[B, C, H, W]`` flattened.

    The first ``Linear`` becomes a ``Conv2d`` with an ``H x W`` kernel, later ones 1 x 1 convolutions,
    with the same weights; elementwise layers are kept.  The twin maps a ``[B, C, H', W']`` map to
    ``[B, K, H' - H + 1, W' - W + 1]`` scores (``[B, K, 1, 1]``, the classifier's output, for
    ``H' = H, W' = W``); ``same=True`` pads the first convolution by ``(H - 1) / 2`` so the map keeps its
    size ``H' x W'`` (odd ``H, W`` only).

    Args:
        classifier: a ``Linear``, or a ``Sequential`` of an optional ``Flatten``, ``Linear`` layers and
            elementwise layers (activations, dropout).
        feature_shape: ``(C, H, W)``, the map the classifier was built for.
        same: pad the first convolution to keep the map's size.

    Returns:
        A ``Sequential`` of ``Conv2d`` and the elementwise layers.
    """
    if len(feature_shape) != 3:
        raise ValueError(f"feature_shape must be (C, H, W), got {feature_shape!r}")
    for name, value in zip(("C", "H", "W"), feature_shape, strict=True):
        check_int(value, f"feature map {name}", where="convolutionalize", ge=1)
    c, h, w = feature_shape
    if same and (h % 2 == 0 or w % 2 == 0):
        raise ValueError(f"same padding needs an odd kernel, got the feature map {h}x{w}")
    modules = list(classifier) if isinstance(classifier, nn.Sequential) else [classifier]
    layers, seen_linear = [], False
    for module in modules:
        if isinstance(module, nn.Flatten):
            if seen_linear:
                raise ValueError("a Flatten after the first Linear has no convolutional equivalent here")
        elif isinstance(module, nn.Linear):
            if not seen_linear:
                if module.in_features != c * h * w:
                    raise ValueError(f"the first Linear reads {module.in_features} features, but the feature map "
                                     f"{c}x{h}x{w} flattens to {c * h * w}")
                conv = nn.Conv2d(c, module.out_features, (h, w), padding=(h // 2, w // 2) if same else 0,
                                 bias=module.bias is not None, device=module.weight.device)
                shape = (module.out_features, c, h, w)  # flatten(1) orders a map as (c, i, j)
            else:
                conv = nn.Conv2d(module.in_features, module.out_features, 1, bias=module.bias is not None,
                                 device=module.weight.device)
                shape = (module.out_features, module.in_features, 1, 1)
            with torch.no_grad():
                conv.weight.copy_(module.weight.reshape(shape))
                if module.bias is not None:
                    conv.bias.copy_(module.bias)
            layers.append(conv)
            seen_linear = True
        elif isinstance(module, _ELEMENTWISE):
            layers.append(module)
        else:
            raise ValueError(f"cannot convolutionalize a {type(module).__name__}: only Flatten, Linear and "
                             f"elementwise layers have a convolutional twin here")
    if not seen_linear:
        raise ValueError("the classifier has no Linear layer to convolutionalize")
    return nn.Sequential(*layers)


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    kernel, stride, padding = upsampling_geometry(factor)
    up = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, factor))
    return up


class FCN(nn.Module):
    """FCN-32s, -16s or -8s on a VGG-style backbone: class scores ``[B, K, H, W]`` for images ``[B, C, H, W]``.

    The image sides must be multiples of 32.  The scores at stride 32 (and, for -16s and -8s, the fused
    ones at strides 16 and 8) are upsampled to the image's size by a fixed bilinear transposed convolution.
    :meth:`~visarch.models.fcn.FCN.from_vgg` builds the paper's network from a
    :class:`~visarch.models.vgg.VGG`.

    Args:
        features (torch.nn.Sequential): the backbone, with five ``MaxPool2d`` layers (pool1 ... pool5, stride 32).
        head (torch.nn.Module): reads pool5; typically the convolutionalised fc6 and fc7 of the classifier.
        head_channels: the head's output channels (4096 for VGG-16).
        num_classes: K (21 for PASCAL VOC).
        variant: ``"32s"``, ``"16s"`` or ``"8s"``.
    """

    def __init__(self, features: nn.Sequential, head: nn.Module, head_channels: int, *, num_classes: int = 21,
                 variant: str = "8s"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        check_int(num_classes, "num_classes", where=type(self).__name__, ge=1)
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        if len(pools) != 5:
            raise ValueError(f"the backbone must downsample by 32 through five max pools, found {len(pools)}")
        widths = [next(m.out_channels for m in reversed(features[:p]) if isinstance(m, nn.Conv2d)) for p in pools]
        self.variant, self.num_classes = variant, num_classes
        self.in_channels = next(m.in_channels for m in features if isinstance(m, nn.Conv2d))
        self.to_pool3 = features[:pools[2] + 1]  # [B, C3, H/8, W/8]
        self.to_pool4 = features[pools[2] + 1:pools[3] + 1]  # [B, C4, H/16, W/16]
        self.to_pool5 = features[pools[3] + 1:pools[4] + 1]  # [B, C5, H/32, W/32]
        self.head = head
        self.score_fr = nn.Conv2d(head_channels, num_classes, 1)
        stride = VARIANTS[variant]
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
            self.upscore2 = _upsampler(num_classes, 2)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
            self.upscore_pool4 = _upsampler(num_classes, 2)
        self.register_buffer("final_kernel", bilinear_kernel(num_classes, stride))  # fixed, not learned

    def score_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The class scores at each stride this variant computes, coarsest first, before the final upsampling.

        Args:
            x: images ``[B, C, H, W]``, ``H`` and ``W`` multiples of 32.

        Returns:
            ``{"stride 32": [B, K, H/32, W/32]}``, plus ``"stride 16"`` ``[B, K, H/16, W/16]`` for -16s and -8s
            and ``"stride 8"`` ``[B, K, H/8, W/8]`` for -8s.
        """
        check_image(x, in_channels=self.in_channels, min_size=32, model=f"FCN-{self.variant}")
        if x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"FCN-{self.variant}: image sides must be multiples of the total stride 32 "
                             f"(no cropping here), got {x.shape[2]}x{x.shape[3]}")
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        maps = {"stride 32": self.score_fr(self.head(self.to_pool5(pool4)))}  # [B, K, H/32, W/32]
        if self.variant != "32s":
            maps["stride 16"] = self.score_pool4(pool4) + self.upscore2(maps["stride 32"])  # [B, K, H/16, W/16]
        if self.variant == "8s":
            maps["stride 8"] = self.score_pool3(pool3) + self.upscore_pool4(maps["stride 16"])  # [B, K, H/8, W/8]
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        finest = list(self.score_maps(x).values())[-1]
        _, stride, padding = upsampling_geometry(VARIANTS[self.variant])
        return F.conv_transpose2d(finest, self.final_kernel, stride=stride, padding=padding)  # [B, K, H, W]

    @classmethod
    def from_vgg(cls, vgg: nn.Module, *, num_classes: int = 21, variant: str = "8s") -> FCN:
        """The paper's construction: VGG's convolutions, its fc6 and fc7 convolutionalised, fc8 replaced.

        fc6 is padded to keep the map at ``H/32``; the 1000-way fc8 gives way to 1 x 1 score layers.  The
        new network shares the modules of ``vgg.features`` (and so their weights); fc6 and fc7 are copies.

        Args:
            vgg: a :class:`~visarch.models.vgg.VGG`, usually trained.
            num_classes: K.
            variant: ``"32s"``, ``"16s"`` or ``"8s"``.
        """
        width = next(m.out_channels for m in reversed(vgg.features) if isinstance(m, nn.Conv2d))
        head = convolutionalize(vgg.classifier[:-1], (width, vgg.config.pooled, vgg.config.pooled), same=True)
        return cls(vgg.features, head, vgg.classifier[-1].in_features, num_classes=num_classes, variant=variant)
