r"""The notes' U-Net (after labml.ai's DDPM U-Net; Ronneberger et al., 2015; Ho et al., 2020).

*Descent* alternates residual blocks with stride-2 convolutions, so the image becomes deeper and
smaller; *ascent* alternates residual blocks with stride-2 transposed convolutions back to the
input size, each residual block taking the channel-wise concatenation of the current image and
the matching image of the descent (the "horizontal" skip connections).  At the two lowest
resolutions every residual block is followed by the notes' image self-attention ``Attn``
(:class:`visarch.nn.attention.MultiHeadSelfAttention2d`, which replaces its input; labml's version adds
it back).  A context embedding :math:`u \in \mathbb{R}^d` enters every residual block:

.. math::

    z_1 = \mathrm{Conv}_{3\times3}(\mathrm{swish}(\mathrm{GN}(x))), \quad
    z_2 = z_1 + (U\,\mathrm{swish}(u) + b)_{[C', 1, 1]}, \quad
    z_3 = \mathrm{Conv}_{3\times3}(\mathrm{Drop}(\mathrm{swish}(\mathrm{GN}(z_2)))), \quad
    y = z_3 + x'

with :math:`x'` the input, or its 1 x 1 convolution when the channel count changes, and
:math:`\mathrm{swish}(x) = x\,\sigma(x)`.  For the notes' 3 x 32 x 32 images and the default
config, the descent keeps twelve images (channels x side)::

    z1 64x32  z2 z3 64x32  z4 64x16  z5 z6 128x16  z7 128x8  z8 z9 256x8 (+Attn)  z10 256x4
    z11 z12 1024x4 (+Attn)

and the ascent runs a middle block (ResBlock, Attn, ResBlock at 1024 x 4 x 4), then at each
resolution three residual blocks, consuming z12 ... z1, with a transposed convolution
(F = 4, S = 2, P = 1) between resolutions, and a final GroupNorm, swish and 3 x 3 convolution
to 3 channels.  The notes omit attention dropout, and so does this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.registry import register
from visarch.nn import MultiHeadSelfAttention2d

__all__ = ["ResBlockU", "UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyperparameters of the notes' U-Net.

    One field per choice; each field's comment says what it sets.
    """

    in_channels: int = 3  #: channels of the image, and of the output
    base_channels: int = 64  #: C of the first convolution
    channels: tuple[int, ...] = (64, 128, 256, 1024)  #: C' of the residual blocks at each resolution (the notes')
    attention: tuple[bool, ...] = (False, False, True, True)  #: Attn after the blocks of each resolution
    blocks: int = 2  #: residual blocks per resolution in the descent (the ascent has one more)
    embed_dim: int = 256  #: d, the size of the context embedding u
    groups: int = 32  #: groups of every GroupNorm (the notes assume G = 32)
    heads: int = 1  #: K of the attention (labml's default; the notes leave it open)
    dropout: float = 0.1  #: the notes' Drop_0.1 inside each residual block

    def __post_init__(self):
        if len(self.channels) != len(self.attention) or not self.channels:
            raise ValueError(f"channels and attention need one entry per resolution, got {len(self.channels)} "
                             f"and {len(self.attention)}")
        for name in ("in_channels", "base_channels", "blocks", "embed_dim", "groups", "heads"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        for c in (self.base_channels, *self.channels):
            if c % self.groups:
                raise ValueError(f"{c} channels are not divisible by the {self.groups} groups of GroupNorm")
        check_real(self.dropout, "dropout", where=type(self).__name__, ge=0, lt=1)


class ResBlockU(nn.Module):
    """The notes' ResBlock^U: ``forward(x, u)`` maps ``x`` ``[B, C, H, W]`` and ``u`` ``[B, d]`` to ``[B, C', H, W]``.

    GroupNorm, swish and a 3 x 3 convolution to C'; the context ``u``, through swish and a linear map to C',
    added to every pixel; GroupNorm, swish, dropout and a second 3 x 3 convolution; plus the input, or its
    1 x 1 convolution when ``C != C'`` (the module docstring's formula).

    Args:
        in_channels: C, divisible by ``groups``.
        out_channels: C', divisible by ``groups``.
        embed_dim: d, the size of the context embedding.
        groups: groups of both GroupNorms.
        dropout: probability of dropping a unit before the second convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, *, embed_dim: int, groups: int, dropout: float):
        super().__init__()
        if in_channels % groups:
            raise ValueError(f"{in_channels} input channels are not divisible by the {groups} groups of GroupNorm")
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.context = nn.Linear(embed_dim, out_channels)  # U, b
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        z = self.conv1(F.silu(self.norm1(x)))  # [B, C', H, W]; silu is swish
        z = z + self.context(F.silu(u))[:, :, None, None]  # (U swish(u) + b).view(C', 1, 1)
        z = self.conv2(self.dropout(F.silu(self.norm2(z))))
        return z + self.shortcut(x)


class _Stage(nn.Module):
    """A residual block, followed by the notes' Attn at the low resolutions."""

    def __init__(self, in_channels, out_channels, attention, config):
        super().__init__()
        self.res = ResBlockU(in_channels, out_channels, embed_dim=config.embed_dim, groups=config.groups,
                             dropout=config.dropout)
        self.attn = MultiHeadSelfAttention2d(embed_dim=out_channels, num_heads=config.heads) if attention else None

    def forward(self, x, u):
        x = self.res(x, u)
        return x if self.attn is None else self.attn(x)


class UNet(nn.Module):
    """The notes' U-Net: ``forward(x, u)``, an image ``[B, C, H, W]`` and a context ``[B, d]``, gives ``[B, C, H, W]``.

    H and W must be divisible by ``2^(R - 1)`` for R resolutions (8 for the default four); the context
    embedding ``u`` enters every residual block.

    Args:
        config: channels and attention per resolution, blocks, context size, groups, heads and dropout.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        self.conv_in = nn.Conv2d(c.in_channels, c.base_channels, 3, padding=1)  # z1
        self.down, skips, ch = nn.ModuleList(), [c.base_channels], c.base_channels
        for level, (out, attn) in enumerate(zip(c.channels, c.attention, strict=True)):
            for _ in range(c.blocks):
                self.down.append(_Stage(ch, out, attn, c))
                ch = out
                skips.append(ch)
            if level < len(c.channels) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))  # halves the resolution
                skips.append(ch)
        self.middle = nn.ModuleList([_Stage(ch, ch, True, c), ResBlockU(ch, ch, embed_dim=c.embed_dim,
                                                                         groups=c.groups, dropout=c.dropout)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(c.channels))):
            out, attn = c.channels[level], c.attention[level]
            for b in range(c.blocks + 1):
                target = out if b < c.blocks else (c.channels[level - 1] if level else out)
                self.up.append(_Stage(ch + skips.pop(), target, attn, c))  # input: y (+) z_i
                ch = target
            if level:
                self.up.append(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))  # doubles the resolution
        self.norm_out = nn.GroupNorm(c.groups, ch)
        self.conv_out = nn.Conv2d(ch, c.in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        c = self.config
        factor = 2 ** (len(c.channels) - 1)
        if x.dim() != 4 or x.shape[1] != c.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x must be [B, {c.in_channels}, H, W] with H and W divisible by {factor}, "
                             f"got {tuple(x.shape)}")
        if u.shape != (x.shape[0], c.embed_dim):
            raise ValueError(f"u must be [B, d] = [{x.shape[0]}, {c.embed_dim}], got {tuple(u.shape)}")
        z = self.conv_in(x)
        skips = [z]  # z1 ... z12
        for module in self.down:
            z = module(z, u) if isinstance(module, _Stage) else module(z)
            skips.append(z)
        y = self.middle[1](self.middle[0](z, u), u)  # y13
        for module in self.up:
            y = module(torch.cat([y, skips.pop()], dim=1), u) if isinstance(module, _Stage) else module(y)
        return self.conv_out(F.silu(self.norm_out(y)))  # [B, C, H, W]


@register("unet", UNetConfig)
def build_unet(config: UNetConfig) -> UNet:
    """The notes' U-Net for 3 x 32 x 32 images with a 256-dimensional context embedding."""
    return UNet(config)
