r"""CvT, the Convolutional vision Transformer (Wu et al., 2021): convolutions inside a hierarchical ViT.

A CvT is a stack of stages, each with two changes to the ViT.

*Convolutional token embedding.*  A stage reshapes its input tokens into a map ``[B, C, H, W]`` and
applies an *overlapping* strided convolution (kernel :math:`k_e` larger than the stride :math:`s_e`,
padding :math:`p_e`), then LayerNorm over the channels.  The map shrinks and widens from stage to stage
like a CNN's:

.. math::

    H_{i} = \left\lfloor \frac{H_{i-1} + 2p_e - k_e}{s_e} \right\rfloor + 1 ,

which for CvT-13 at 224 pixels (7x7 stride 4 padding 2, then twice 3x3 stride 2 padding 1) gives
56 x 56, 28 x 28 and 14 x 14 tokens of widths 64, 192 and 384.

*Convolutional projection.*  In every block the linear maps to queries, keys and values are replaced
by a depthwise separable convolution on the token map: a depthwise :math:`3 \times 3` convolution
(no bias, since batch norm follows), batch norm, and a pointwise (linear) map with bias,

.. math::

    Q = \mathrm{Linear}_Q\big(\mathrm{BN}(\mathrm{DWConv}_{s_q}(x))\big), \quad
    K = \mathrm{Linear}_K\big(\mathrm{BN}(\mathrm{DWConv}_{s_{kv}}(x))\big), \quad
    V = \mathrm{Linear}_V\big(\mathrm{BN}(\mathrm{DWConv}_{s_{kv}}(x))\big),

with stride :math:`s_q = 1` for the queries and :math:`s_{kv} = 2` for keys and values (the
"squeezed" projection): :math:`HW` queries attend to :math:`\lceil H/2 \rceil \lceil W/2 \rceil`
keys, a quarter as many, which divides the cost of the two attention products by about 4.  The rest
of a block is the pre-norm ViT block (multi-head attention, MLP of ratio 4, residuals).  There are no
position embeddings: the zero-padded convolutions tell the tokens where they are, so one set of
weights runs at any resolution.  A class token joins the sequence in the last stage only; it skips
the depthwise convolution (it is not on the map) but goes through the pointwise maps.  Its final
state, layer-normalised, feeds the linear head, so the depthwise query kernel and batch norm of the very
last block, which act only on map tokens that nothing reads afterwards, never reach the output (4,224
parameters of CvT-13, present in the released model too).  Shapes (CvT-13, 224 x 224)::

    image                                    [B, 3, 224, 224]
    stage 1: conv 7/4 + LN, 1 block          [B, 64, 56, 56]     (3136 tokens; keys 28 x 28)
    stage 2: conv 3/2 + LN, 2 blocks         [B, 192, 28, 28]    (784 tokens; keys 14 x 14)
    stage 3: conv 3/2 + LN, class token,     [B, 384, 14, 14]    (1 + 196 tokens; keys 1 + 7 x 7)
             10 blocks
    LN of the class token, head              [B, 1000]

CvT-13 has 19,997,480 parameters (the paper's "20M") and costs 4.566 G multiply-accumulates at 224 pixels
(the paper: 4.5 G) and 16.269 G at 384 (16.3 G).  Two
details of the reference implementation (microsoft/CvT) are not followed because they change no
count: it scales the attention logits by :math:`1/\sqrt{C}` instead of :math:`1/\sqrt{C/K}` (the
same in single-head stage 1), and uses the sigmoid approximation of GELU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["CvT", "CvTBlock", "CvTConfig", "CvTStage", "ConvAttention", "ConvEmbedding", "ConvProjection"]

_STAGE_FIELDS = ("dims", "depths", "heads", "embed_kernels", "embed_strides", "embed_paddings")


@dataclass(frozen=True)
class CvTConfig:
    """Hyperparameters of the Convolutional vision Transformer (defaults: CvT-13).

    One field per choice; each field's comment says what it sets.
    """

    dims: tuple[int, ...] = (64, 192, 384)  #: token width C of each stage (CvT-13)
    depths: tuple[int, ...] = (1, 2, 10)  #: transformer blocks per stage (CvT-13)
    heads: tuple[int, ...] = (1, 3, 6)  #: attention heads per stage (64 dimensions each in CvT-13)
    embed_kernels: tuple[int, ...] = (7, 3, 3)  #: k_e, kernel of each stage's convolutional token embedding
    embed_strides: tuple[int, ...] = (4, 2, 2)  #: s_e, its stride (smaller than k_e, so patches overlap)
    embed_paddings: tuple[int, ...] = (2, 1, 1)  #: p_e, its zero padding (as the reference implementation)
    qkv_kernel: int = 3  #: kernel of the depthwise convolution in the convolutional projection (odd)
    kv_stride: int = 2  #: stride of the keys' and values' projection (the "squeeze"; 1 = none)
    mlp_ratio: float = 4.0  #: hidden width of each block's MLP as a multiple of the token width
    in_channels: int = 3  #: channels of the input image
    num_classes: int = 1000  #: outputs of the head on the class token
    image_size: int = 224  #: the side the published model was trained at (any side >= total stride runs)
    eps: float = 1e-5  #: LayerNorm and BatchNorm epsilon

    def __post_init__(self):
        for name in ("qkv_kernel", "kv_stride", "in_channels", "num_classes", "image_size"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_real(self.mlp_ratio, "mlp_ratio", where=type(self).__name__, gt=0)
        lengths = {name: len(getattr(self, name)) for name in _STAGE_FIELDS}
        if len(set(lengths.values())) != 1 or not self.dims:
            raise ValueError(f"dims, depths, heads and the embedding kernels, strides and paddings must name the "
                             f"same (non-zero) number of stages, got {lengths}")
        for i in range(len(self.dims)):
            for name in _STAGE_FIELDS[:-1]:
                check_int(getattr(self, name)[i], f"{name} of stage {i + 1}", where=type(self).__name__, ge=1)
            check_int(self.embed_paddings[i], f"embed_paddings of stage {i + 1}", where=type(self).__name__, ge=0)
            if self.dims[i] % self.heads[i]:
                raise ValueError(f"stage {i + 1}: {self.heads[i]} heads do not divide the token width {self.dims[i]}")
        if self.qkv_kernel % 2 == 0:
            raise ValueError(f"the convolutional projection's kernel must be odd so that padding it by "
                             f"kernel // 2 keeps the query map's size, got {self.qkv_kernel}")

    @property
    def total_stride(self) -> int:
        """Product of the embedding strides (16 in CvT-13), the smallest input side the model accepts."""
        return math.prod(self.embed_strides)

    def map_sizes(self, side: int | None = None) -> list[int]:
        """Side of each stage's token map for a ``side`` x ``side`` image (default ``image_size``).

        Args:
            side: the image side; None for ``image_size``.

        Returns:
            One side per stage, ``floor((H + 2 p_e - k_e) / s_e) + 1`` applied stage after stage.
        """
        sizes, h = [], self.image_size if side is None else side
        for k, s, p in zip(self.embed_kernels, self.embed_strides, self.embed_paddings, strict=True):
            h = (h + 2 * p - k) // s + 1
            sizes.append(h)
        return sizes


class ConvEmbedding(nn.Module):
    """CvT's convolutional token embedding, ``[B, C, H, W] -> [B, C', H', W']``.

    An overlapping strided convolution, then LayerNorm over the channels of each position;
    ``H' = floor((H + 2 p_e - k_e) / s_e) + 1``.

    Args:
        c_in: C.
        c_out: C', the stage's token width.
        kernel_size: k_e.
        stride: s_e.
        padding: p_e.
        eps: LayerNorm epsilon.
    """

    def __init__(self, c_in: int, c_out: int, *, kernel_size: int, stride: int, padding: int, eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # [B, C', H', W']
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvProjection(nn.Module):
    """CvT's convolutional projection, the token map ``[B, C, H, W]`` -> tokens ``[B, H'W', C]``.

    Depthwise convolution (stride S, no bias), batch norm, then a pointwise linear map with bias, with
    ``H' = ceil(H/S)``.  ``forward(x, cls=None)``: a class token ``[B, 1, C]``, if given, skips the
    convolution (it is not on the map), is put in front and goes through the linear map, giving
    ``[B, 1 + H'W', C]``.

    Args:
        dim: C.
        kernel_size: side of the depthwise kernel, odd (padded by ``kernel_size // 2``).
        stride: S, 1 for the queries, 2 for the squeezed keys and values.
        eps: batch norm epsilon.
    """

    def __init__(self, dim: int, *, kernel_size: int, stride: int, eps: float = 1e-5):
        super().__init__()
        self.depthwise = nn.Conv2d(dim, dim, kernel_size, stride, kernel_size // 2, groups=dim, bias=False)
        self.norm = nn.BatchNorm2d(dim, eps=eps)
        self.pointwise = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        z = self.norm(self.depthwise(x)).flatten(2).transpose(1, 2)  # [B, H'W', C]
        if cls is not None:
            z = torch.cat([cls, z], dim=1)  # [B, 1 + H'W', C]
        return self.pointwise(z)


class ConvAttention(nn.Module):
    """Multi-head self-attention with convolutional projections on the tokens of a map, ``[B, T, C] -> [B, T, C]``.

    ``forward(x, h, w, with_cls=False)`` reads ``T = HW`` tokens (``1 + HW`` with a class token in front),
    and its ``T`` queries attend to the ``ceil(H/S) ceil(W/S)`` (+ 1) squeezed keys and values.

    Args:
        dim: C.
        heads: K, dividing C.
        kernel_size: side of the depthwise kernels of the projections.
        kv_stride: S, the stride of the keys' and values' projections.
        eps: batch norm epsilon.
    """

    def __init__(self, dim: int, *, heads: int, kernel_size: int = 3, kv_stride: int = 2, eps: float = 1e-5):
        super().__init__()
        self.heads = heads
        self.q = ConvProjection(dim, kernel_size=kernel_size, stride=1, eps=eps)
        self.k = ConvProjection(dim, kernel_size=kernel_size, stride=kv_stride, eps=eps)
        self.v = ConvProjection(dim, kernel_size=kernel_size, stride=kv_stride, eps=eps)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int, *, with_cls: bool = False) -> torch.Tensor:
        b, t, c = x.shape
        cls, tokens = (x[:, :1], x[:, 1:]) if with_cls else (None, x)
        grid = tokens.transpose(1, 2).reshape(b, c, h, w)  # [B, C, H, W]
        q, k, v = (p(grid, cls).view(b, -1, self.heads, c // self.heads).transpose(1, 2)  # [B, K, T or T', d]
                   for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # [B, K, T, d]
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class CvTBlock(nn.Module):
    """CvT's pre-norm block on the tokens of an H x W map, ``[B, T, C] -> [B, T, C]``.

    Convolutional attention, then a GELU MLP, each residual; ``forward(x, h, w, with_cls=False)`` takes
    ``T = HW`` tokens, or ``1 + HW`` with the class token in front.

    Args:
        dim: C.
        heads: K.
        mlp_ratio: hidden width of the MLP over C.
        kernel_size: side of the depthwise kernels of the projections.
        kv_stride: stride of the keys' and values' projections.
        eps: LayerNorm and batch norm epsilon.
    """

    def __init__(self, dim: int, *, heads: int, mlp_ratio: float, kernel_size: int = 3, kv_stride: int = 2,
                 eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = ConvAttention(dim, heads=heads, kernel_size=kernel_size, kv_stride=kv_stride, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, h: int, w: int, *, with_cls: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w, with_cls=with_cls)
        return x + self.mlp(self.norm2(x))


class CvTStage(nn.Module):
    """A CvT stage, ``[B, C, H, W] -> ([B, C', H', W'], class token [B, 1, C'] or None)``.

    The convolutional token embedding, then the stage's blocks on the flattened map (with a learned class
    token in front in the last stage); the map tokens are returned as a map again.

    Args:
        c_in: C, the channels of the input map (the image's in the first stage).
        config: the model's config.
        i: the stage's index in it, from 0.
        with_cls: add a class token (the last stage).
    """

    def __init__(self, c_in: int, *, config: CvTConfig, i: int, with_cls: bool):
        super().__init__()
        c = config
        self.embedding = ConvEmbedding(c_in, c.dims[i], kernel_size=c.embed_kernels[i], stride=c.embed_strides[i],
                                       padding=c.embed_paddings[i], eps=c.eps)
        self.class_token = nn.Parameter(torch.zeros(1, 1, c.dims[i])) if with_cls else None
        self.blocks = nn.ModuleList(CvTBlock(c.dims[i], heads=c.heads[i], mlp_ratio=c.mlp_ratio,
                                             kernel_size=c.qkv_kernel, kv_stride=c.kv_stride, eps=c.eps)
                                    for _ in range(c.depths[i]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.embedding(x)
        b, c, h, w = x.shape
        z = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        with_cls = self.class_token is not None
        if with_cls:
            z = torch.cat([self.class_token.expand(b, -1, -1), z], dim=1)  # [B, 1 + HW, C]
        for block in self.blocks:
            z = block(z, h, w, with_cls=with_cls)
        cls, tokens = (z[:, :1], z[:, 1:]) if with_cls else (None, z)
        return tokens.transpose(1, 2).reshape(b, c, h, w), cls


class CvT(nn.Module):
    """The Convolutional vision Transformer: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``.

    Stages of convolutional token embedding and convolutional-projection blocks; a LayerNorm and a linear
    head on the class token.  Any ``H, W`` at least ``config.total_stride`` runs (no position embeddings).

    Args:
        config: widths, depths, heads and embedding convolutions per stage; the defaults are CvT-13.
    """

    def __init__(self, config: CvTConfig):
        super().__init__()
        self.config = c = config
        widths = (c.in_channels, *c.dims)
        last = len(c.dims) - 1
        self.stages = nn.ModuleList(CvTStage(widths[i], config=c, i=i, with_cls=i == last) for i in range(len(c.dims)))
        self.norm = nn.LayerNorm(c.dims[-1], eps=c.eps)
        self.head = nn.Linear(c.dims[-1], c.num_classes)

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The token map of every stage, ``[B, C_i, H_i, W_i]``, and the final class token ``[B, C]``.

        Args:
            x: images ``[B, C_in, H, W]``.

        Returns:
            ``(maps, cls)``: the list of stage maps, and the last stage's class token before the LayerNorm.
        """
        c = self.config
        check_image(x, in_channels=c.in_channels, min_size=c.total_stride, model="CvT",
                    why=f"the product of the token embeddings' strides, {c.total_stride}")
        maps = []
        for stage in self.stages:
            x, cls = stage(x)
            maps.append(x)
        return maps, cls[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, cls = self.features(x)
        return self.head(self.norm(cls))  # [B, num_classes]


# A small CvT for the 8 x 8 digits: 3x3 embeddings (stride 1, then 2 and 2) give 8 x 8, 4 x 4 and 2 x 2 maps.
SMALL = {"dims": (16, 32, 64), "depths": (1, 1, 2), "heads": (1, 2, 4), "embed_kernels": (3, 3, 3),
         "embed_strides": (1, 2, 2), "embed_paddings": (1, 1, 1), "in_channels": 1, "num_classes": 10,
         "image_size": 8}


@register("cvt_13", CvTConfig)
@register("cvt_small", CvTConfig, **SMALL)
def build_cvt(config: CvTConfig) -> CvT:
    """CvT (Wu et al., 2021): ``cvt_13`` is the paper's CvT-13; ``cvt_small`` a version for the 8 x 8 digits."""
    return CvT(config)
