r"""The Vision Transformer (Dosovitskiy et al., 2021), as the notes build it and in the published layouts.

An image ``[B, C, H, W]`` is cut into :math:`H'W'` patches of :math:`p \times p` pixels
(:math:`H' = H/p`, :math:`W' = W/p`); each flattened patch, a vector of :math:`Cp^2` numbers, is
mapped linearly to D dimensions.  That linear map on non-overlapping patches *is* a convolution
with kernel size and stride p, which is how it is computed here.  A learned class token is put in
front of the sequence, position embeddings are added, and L pre-norm encoder blocks follow:

.. math::

    z \leftarrow x + \mathrm{MHSA}(\mathrm{LN}(x)), \qquad
    y \leftarrow z + \mathrm{MLP}(\mathrm{LN}(z)), \qquad
    \mathrm{MLP}(z) = W_2\,\mathrm{GELU}(W_1 z + b_1) + b_2 .

The class token's final state, layer-normalised, goes through a linear head.  Shapes::

    image                      [B, C, H, W]
    patch embedding (conv p/p) [B, D, H', W'] -> [B, H'W', D]
    class token prepended      [B, 1 + H'W', D]   (+ position embeddings)
    L encoder blocks           [B, 1 + H'W', D]
    head on the class token    [B, num_classes]

The notes add *sinusoidal* position embeddings and normalise the embedded sequence once
(``pos_embedding="sinusoidal", embed_norm=True``, the ``vit`` preset); the published ViT-B/16,
ViT-L/16 and ViT-H/14 learn their position embeddings and have 86,567,656, 304,326,632 and
632,045,800 parameters at 224 x 224 pixels and 1000 classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, pair
from visarch.models.registry import register
from visarch.nn.transformer import sinusoidal_embeddings

__all__ = ["EncoderBlock", "ViT", "ViTConfig", "resize_position_embedding", "sinusoidal_embeddings"]


@dataclass(frozen=True)
class ViTConfig:
    """Hyperparameters of the Vision Transformer.

    One field per choice; each field's comment says what it sets.
    """

    image_size: int = 32  #: H = W of the input image, divisible by patch_size
    patch_size: int = 4  #: p, the side of the square patches of p x p pixels
    in_channels: int = 3  #: C
    dim: int = 192  #: D, the embedding size
    depth: int = 6  #: L, encoder blocks
    heads: int = 3  #: K; each head has D / K dimensions
    mlp_dim: int = 768  #: hidden size of each block's MLP (4 D, as in the paper)
    num_classes: int = 10  #: outputs of the head on the class token
    pos_embedding: str = "sinusoidal"  #: "sinusoidal" (the notes, no parameters) or "learned" (the paper)
    embed_norm: bool = True  #: the notes' LayerNorm on the embedded sequence before the first block
    eps: float = 1e-6  #: LayerNorm epsilon of the published models

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "dim", "depth", "heads", "mlp_dim", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not divisible by the patch size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"embedding size D={self.dim} is not divisible by the number of heads K={self.heads}")
        if self.pos_embedding not in ("sinusoidal", "learned"):
            raise ValueError(f"pos_embedding must be 'sinusoidal' or 'learned', got {self.pos_embedding!r}")
        if self.pos_embedding == "sinusoidal" and self.dim % 2:
            raise ValueError(f"sinusoidal position embeddings pair a sine with a cosine: D={self.dim} must be even")

    @property
    def tokens(self) -> int:
        """Sequence length T = 1 + H'W', the class token and the H'W' patches."""
        return 1 + (self.image_size // self.patch_size) ** 2


class EncoderBlock(nn.Module):
    """One pre-norm transformer encoder block, ``[B, T, D] -> [B, T, D]``.

    ``z = x + MHSA(LN(x))`` then ``z + MLP(LN(z))``, with a GELU MLP of one hidden layer (the module
    docstring's formulas).

    Args:
        dim: D, the token width.
        heads: K, attention heads, each of D / K dimensions.
        mlp_dim: hidden width of the MLP.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, *, heads: int, mlp_dim: int, eps: float = 1e-6):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.qkv = nn.Linear(dim, 3 * dim)  # queries, keys and values of all heads at once
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def attention(self, x: torch.Tensor, *, weights: bool = False):
        """Multi-head self-attention of ``x`` ``[B, T, D]``; with ``weights``, also the maps ``[B, K, T, T]``.

        Args:
            x: the normalised tokens ``[B, T, D]``.
            weights: also return the attention maps (computed explicitly instead of by
                ``F.scaled_dot_product_attention``).

        Returns:
            ``(out, maps)``: the projected output ``[B, T, D]``, and the softmax attention weights
            ``[B, K, T, T]`` or None.
        """
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [B, K, T, d]
        if weights:
            maps = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # [B, K, T, T]
            out = maps @ v
        else:
            maps, out = None, F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d)), maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x + self.attention(self.norm1(x))[0]  # [B, T, D]
        return z + self.mlp(self.norm2(z))


class ViT(nn.Module):
    """The Vision Transformer: patch embedding, class token, position embeddings, encoder blocks, head.

    Maps images ``[B, C, H, W]`` (``H = W = image_size``) to class scores ``[B, num_classes]``; the module
    docstring lists the shapes in between.

    Args:
        config: sizes of the image, patches, tokens and blocks, and the kind of position embedding.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        c = config
        self.patch_embedding = nn.Conv2d(c.in_channels, c.dim, c.patch_size, stride=c.patch_size)  # U, b
        self.class_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        if c.pos_embedding == "learned":
            self.pos_embedding = nn.Parameter(torch.empty(1, c.tokens, c.dim).normal_(std=0.02))
        else:
            self.register_buffer("pos_embedding", sinusoidal_embeddings(c.tokens, c.dim)[None], persistent=False)
        self.embed_norm = nn.LayerNorm(c.dim, eps=c.eps) if c.embed_norm else nn.Identity()
        self.blocks = nn.ModuleList(EncoderBlock(c.dim, heads=c.heads, mlp_dim=c.mlp_dim, eps=c.eps)
                                    for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=c.eps)
        self.head = nn.Linear(c.dim, c.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The image ``[B, C, H, W]`` as the encoder's input sequence ``[B, 1 + H'W', D]``.

        The patches are embedded, the prefix tokens put in front, the position embeddings added and, with
        ``embed_norm``, the sequence layer-normalised.  A subclass with more prefix tokens (DeiT's) gets
        ``[B, P + H'W', D]``.
        """
        c = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"input must be [B, {c.in_channels}, {c.image_size}, {c.image_size}], "
                             f"got {tuple(x.shape)}")
        patches = self.patch_embedding(x).flatten(2).transpose(1, 2)  # [B, H'W', D]
        tokens = torch.cat([self.prefix_tokens(x.shape[0]), patches], dim=1)  # [B, T, D]
        return self.embed_norm(tokens + self.pos_embedding)

    def prefix_tokens(self, batch: int) -> torch.Tensor:
        """The learned tokens placed before the patches: the class token, ``[B, 1, D]``."""
        return self.class_token.expand(batch, -1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        for block in self.blocks:
            z = block(z)  # [B, T, D]
        return self.head(self.norm(z[:, 0]))  # the class token: [B, num_classes]


def resize_position_embedding(pos_embedding: torch.Tensor, grid: int | tuple[int, int], *,
                              prefix_tokens: int = 1) -> torch.Tensor:
    r"""Learned ViT position embeddings moved to another patch grid, as the paper fine-tunes at a higher resolution.

    The patch size stays, the grid grows, and each grid embedding is interpolated from its neighbours at
    the same relative place in the image.  ``pos_embedding`` is ``[1, P + g^2, D]``: ``P = prefix_tokens``
    learned tokens (the class token; DeiT adds a distillation token), then a square ``g x g`` grid of
    patches in row-major order.  The prefix embeddings are kept; the grid ``[D, g, g]`` is resized to
    ``grid`` by bilinear interpolation with the corner patches aligned, which is
    ``scipy.ndimage.zoom(order=1)`` in the authors' code.

    Args:
        pos_embedding: the trained embeddings ``[1, P + g^2, D]``.
        grid: the new grid, ``G`` for ``G x G`` or ``(G_h, G_w)``.
        prefix_tokens: P, the tokens before the grid, kept as they are.

    Returns:
        The embeddings for the new grid, ``[1, P + G_h G_w, D]``.
    """
    if not isinstance(pos_embedding, torch.Tensor) or pos_embedding.dim() != 3 or pos_embedding.shape[0] != 1:
        shape = tuple(pos_embedding.shape) if isinstance(pos_embedding, torch.Tensor) else type(pos_embedding)
        raise ValueError(f"pos_embedding must be a tensor [1, P + g^2, D], got {shape}")
    check_int(prefix_tokens, "prefix_tokens", where="resize_position_embedding", ge=0)
    new = pair(grid, "grid", where="resize_position_embedding", ge=1)
    patches = pos_embedding.shape[1] - prefix_tokens
    g = math.isqrt(max(patches, 0))
    if patches < 1 or g * g != patches:
        raise ValueError(f"{pos_embedding.shape[1]} embeddings minus {prefix_tokens} prefix tokens leave {patches} "
                         "grid embeddings, not a positive square number")
    prefix, cells = pos_embedding[:, :prefix_tokens], pos_embedding[:, prefix_tokens:]
    square = cells.transpose(1, 2).reshape(1, -1, g, g)  # [1, D, g, g]
    resized = F.interpolate(square, size=new, mode="bilinear", align_corners=True)  # [1, D, G_h, G_w]
    return torch.cat([prefix, resized.flatten(2).transpose(1, 2)], dim=1)


# The published layouts (Dosovitskiy et al., 2021, table 1): learned position embeddings, no
# normalisation of the embedded sequence, 224 x 224 images, 1000 classes.
PUBLISHED = {"pos_embedding": "learned", "embed_norm": False, "image_size": 224, "num_classes": 1000}


@register("vit", ViTConfig)
@register("vit_b_16", ViTConfig, patch_size=16, dim=768, depth=12, heads=12, mlp_dim=3072, **PUBLISHED)
@register("vit_l_16", ViTConfig, patch_size=16, dim=1024, depth=24, heads=16, mlp_dim=4096, **PUBLISHED)
@register("vit_h_14", ViTConfig, patch_size=14, dim=1280, depth=32, heads=16, mlp_dim=5120, **PUBLISHED)
def build_vit(config: ViTConfig) -> ViT:
    """ViT (Dosovitskiy et al., 2021): ``vit`` is the notes' small version for 32 x 32 images."""
    return ViT(config)
