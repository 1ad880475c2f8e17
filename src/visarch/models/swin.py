r"""The Swin Transformer (Liu et al., 2021): self-attention inside local windows, shifted between blocks.

The image ``[B, C, H, W]`` is cut into :math:`p \times p` patches (a convolution with kernel and
stride p, then LayerNorm), giving a map of :math:`h \times w = H/p \times W/p` tokens of width C.
Each block attends only inside non-overlapping windows of :math:`M \times M` tokens, so its cost is
linear in the number of tokens :math:`hw` (the paper's eq. 1-2, in multiply-accumulates):

.. math::

    \Omega(\mathrm{MSA}) = 4hwC^2 + 2(hw)^2C, \qquad \Omega(\text{W-MSA}) = 4hwC^2 + 2M^2hwC .

Every second block moves the window grid by :math:`\lfloor M/2 \rfloor` tokens so information crosses
window borders; this is computed as a cyclic shift of the map (``torch.roll`` by :math:`-M/2`), the
ordinary window attention, and a mask that stops tokens from different regions of the unrolled map
from attending to each other.  Each window's logits get a learned bias
:math:`B[\Delta y, \Delta x]` per head from a table of :math:`(2M-1)^2` relative offsets:

.. math::

    \mathrm{Attention}(Q, K, V) = \mathrm{SoftMax}(QK^\top / \sqrt{d} + B + \text{mask})\,V .

Between stages *patch merging* concatenates each 2 x 2 group of tokens (4C channels), normalises it
and maps it linearly to 2C, halving the resolution.  The four stages give feature maps at strides
4, 8, 16 and 32 (a hierarchy like a CNN's).  Shapes (Swin-T, 224 x 224)::

    image                          [B, 3, 224, 224]
    patch embedding (conv 4/4), LN [B, 56, 56, 96]     (channels last inside the network)
    stage 1: 2 blocks              [B, 56, 56, 96]
    merge + stage 2: 2 blocks      [B, 28, 28, 192]
    merge + stage 3: 6 blocks      [B, 14, 14, 384]
    merge + stage 4: 2 blocks      [B, 7, 7, 768]
    LN, mean over positions, head  [B, 1000]

The input side must be a multiple of :math:`p \cdot 2^{S-1} \cdot M` (224 for Swin-T) so that the
merges halve exact sizes and every stage's map tiles into whole windows.  A stage whose map is a
single window does not shift (a shifted grid would be the same single window).  Swin-T has
28,288,354 parameters at 1000 classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.layers import check_image
from visarch.models.registry import register

__all__ = ["PatchMerging", "Swin", "SwinBlock", "SwinConfig", "WindowAttention", "relative_position_index",
           "shift_mask", "shift_regions", "window_partition", "window_reverse"]


@dataclass(frozen=True)
class SwinConfig:
    """Hyperparameters of the Swin Transformer.

    One field per choice; each field's comment says what it sets.
    """

    patch_size: int = 4  #: p; the patch embedding cuts p x p pixel patches (stride of stage 1)
    in_channels: int = 3  #: channels of the input image
    embed_dim: int = 96  #: C, the token width of stage 1 (doubled by every merge)
    depths: tuple[int, ...] = (2, 2, 6, 2)  #: blocks per stage (Swin-T)
    heads: tuple[int, ...] = (3, 6, 12, 24)  #: attention heads per stage (32 dimensions each in Swin-T)
    window_size: int = 7  #: M, for windows of M x M tokens
    mlp_ratio: float = 4.0  #: hidden width of each block's MLP as a multiple of the token width
    num_classes: int = 1000  #: outputs of the head
    eps: float = 1e-5  #: LayerNorm epsilon

    def __post_init__(self):
        for name in ("patch_size", "in_channels", "embed_dim", "window_size", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        check_real(self.mlp_ratio, "mlp_ratio", where=type(self).__name__, gt=0)
        if not self.depths or len(self.depths) != len(self.heads):
            raise ValueError(f"depths {self.depths} and heads {self.heads} must name the same (non-zero) "
                             "number of stages")
        for i, (d, k) in enumerate(zip(self.depths, self.heads, strict=True)):
            check_int(d, f"depth of stage {i + 1}", where=type(self).__name__, ge=1)
            check_int(k, f"heads of stage {i + 1}", where=type(self).__name__, ge=1)
            if self.width(i) % k:
                raise ValueError(f"stage {i + 1}: {k} heads do not divide the token width {self.width(i)}")

    def width(self, stage: int) -> int:
        """Token width of ``stage`` (0-based): C doubled by each merge before it."""
        return self.embed_dim * 2**stage

    @property
    def input_multiple(self) -> int:
        """The multiple the input side must be, patch size x 2^(stages - 1) x window size."""
        return self.patch_size * 2 ** (len(self.depths) - 1) * self.window_size


def window_partition(x: torch.Tensor, m: int) -> torch.Tensor:
    """The M x M windows of a channels-last map, ``[B, H, W, C] -> [B * (H/M) * (W/M), M*M, C]``, row by row.

    Args:
        x: the map ``[B, H, W, C]``, H and W multiples of M.
        m: M.

    Returns:
        The windows, each a sequence of M*M tokens in row-major order.
    """
    b, h, w, c = x.shape
    return x.view(b, h // m, m, w // m, m, c).transpose(2, 3).reshape(-1, m * m, c)


def window_reverse(windows: torch.Tensor, m: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`~visarch.models.swin.window_partition`, ``[B * (H/M) * (W/M), M*M, C] -> [B, H, W, C]``.

    Args:
        windows: the windows ``[B * (H/M) * (W/M), M*M, C]``.
        m: M.
        h: H.
        w: W.

    Returns:
        The map ``[B, H, W, C]``.
    """
    c = windows.shape[-1]
    return windows.view(-1, h // m, w // m, m, m, c).transpose(2, 3).reshape(-1, h, w, c)


def relative_position_index(m: int) -> torch.Tensor:
    r"""For every pair of tokens i, j of an M x M window, the row of the relative-position bias table.

    The offset :math:`(\Delta y, \Delta x) \in [-(M-1), M-1]^2` of the two tokens is stored in row
    :math:`(\Delta y + M-1)(2M-1) + \Delta x + M-1` of the :math:`(2M-1)^2`-row table.

    Args:
        m: M.

    Returns:
        The indices ``[M*M, M*M]`` (int64).
    """
    ys, xs = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, M*M]
    offsets = coords[:, :, None] - coords[:, None, :] + (m - 1)  # [2, M*M, M*M], entries 0..2M-2
    return offsets[0] * (2 * m - 1) + offsets[1]


def shift_regions(h: int, w: int, m: int, s: int, device=None) -> torch.Tensor:
    """Labels 0..8 of the regions of the rolled map, ``[H, W]``.

    Tokens that were neighbours before the cyclic shift by ``-s`` share a label; the wrapped-around strips
    get their own.

    Args:
        h: H, the map's height in tokens.
        w: W, its width.
        m: M, the window size.
        s: the shift, ``M // 2`` in Swin.
        device: where to create the labels.

    Returns:
        The float labels ``[H, W]``.
    """
    labels = torch.zeros(h, w, device=device)
    bands = (slice(0, h - m), slice(h - m, h - s), slice(h - s, h)), (slice(0, w - m), slice(w - m, w - s),
                                                                     slice(w - s, w))
    for i, rows in enumerate(bands[0]):
        for j, cols in enumerate(bands[1]):
            labels[rows, cols] = 3 * i + j
    return labels


def shift_mask(h: int, w: int, m: int, s: int, device=None) -> torch.Tensor:
    """Additive attention mask of shifted windows, ``[nW, M*M, M*M]``.

    It is 0 where two tokens of a window come from one region of
    :func:`~visarch.models.swin.shift_regions` and ``-inf`` otherwise, so that tokens brought together
    only by the cyclic shift do not attend to each other.

    Args:
        h: H, the map's height in tokens.
        w: W, its width.
        m: M, the window size.
        s: the shift.
        device: where to create the mask.

    Returns:
        The mask ``[nW, M*M, M*M]``, with ``nW = (H/M)(W/M)`` windows per image.
    """
    regions = window_partition(shift_regions(h, w, m, s, device)[None, :, :, None], m)[..., 0]  # [nW, M*M]
    different = regions[:, :, None] != regions[:, None, :]
    return torch.zeros(different.shape, device=device).masked_fill(different, float("-inf"))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window with relative position bias, ``[B * nW, N, C] -> [B * nW, N, C]``.

    ``forward(x, mask=None)`` takes windows of ``N = M*M`` tokens and, for shifted windows, the mask
    ``[nW, N, N]`` of :func:`~visarch.models.swin.shift_mask`, the same for every image of the batch.

    Args:
        dim: C, the token width.
        heads: K.
        window_size: M.
    """

    def __init__(self, dim: int, *, heads: int, window_size: int):
        super().__init__()
        self.heads, self.window_size = heads, window_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.empty((2 * window_size - 1) ** 2, heads).normal_(std=0.02))
        self.register_buffer("bias_index", relative_position_index(window_size), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """The bias of every head for every pair of tokens, ``[K, M*M, M*M]``, looked up from the table."""
        n = self.window_size**2
        return self.bias_table[self.bias_index.flatten()].view(n, n, self.heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # [B*nW, K, N, d]
        logits = q @ k.transpose(-2, -1) / math.sqrt(c // self.heads) + self.position_bias()  # [B*nW, K, N, N]
        if mask is not None:  # [nW, N, N], the same for every image of the batch
            logits = (logits.view(-1, mask.shape[0], self.heads, n, n) + mask[None, :, None]).view(b, -1, n, n)
        out = torch.softmax(logits, dim=-1) @ v  # [B*nW, K, N, d]
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    """Swin's pre-norm block, ``[B, H, W, C] -> [B, H, W, C]``: (shifted) window attention, then an MLP, each residual.

    A map that is a single window is not shifted.

    Args:
        dim: C.
        heads: K.
        window_size: M; H and W must be multiples of it.
        shift: the cyclic shift, 0 or ``M // 2``.
        mlp_ratio: hidden width of the MLP over C.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, *, heads: int, window_size: int, shift: int, mlp_ratio: float, eps: float = 1e-5):
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, heads=heads, window_size=window_size)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        m = self.window_size
        s = self.shift if min(h, w) > m else 0  # a single window has nothing to shift against
        z = self.norm1(x)
        mask = None
        if s:
            z = torch.roll(z, shifts=(-s, -s), dims=(1, 2))
            mask = shift_mask(h, w, m, s, device=x.device)
        z = window_reverse(self.attn(window_partition(z, m), mask), m, h, w)  # [B, H, W, C]
        if s:
            z = torch.roll(z, shifts=(s, s), dims=(1, 2))
        x = x + z
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Swin's patch merging, ``[B, H, W, C] -> [B, H/2, W/2, 2C]``, which halves the resolution.

    Each 2 x 2 group of tokens is concatenated (4C channels), layer-normalised and mapped linearly to 2C.

    Args:
        dim: C.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, *, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class Swin(nn.Module):
    """The Swin Transformer: class scores ``[B, num_classes]`` for images ``[B, C, H, W]``.

    Patch embedding, stages of (shifted) window blocks with patch merging between them, LayerNorm, mean
    over the positions and a linear head.  H and W must be multiples of ``config.input_multiple``.

    Args:
        config: patch and window sizes, widths, depths and heads per stage; the defaults are Swin-T.
    """

    def __init__(self, config: SwinConfig):
        super().__init__()
        self.config = c = config
        self.patch_embedding = nn.Conv2d(c.in_channels, c.embed_dim, c.patch_size, stride=c.patch_size)
        self.patch_norm = nn.LayerNorm(c.embed_dim, eps=c.eps)
        self.merges = nn.ModuleList(PatchMerging(c.width(i - 1), eps=c.eps) for i in range(1, len(c.depths)))
        self.stages = nn.ModuleList(
            nn.Sequential(*(SwinBlock(c.width(i), heads=c.heads[i], window_size=c.window_size,
                                      shift=(j % 2) * (c.window_size // 2), mlp_ratio=c.mlp_ratio, eps=c.eps)
                            for j in range(d)))
            for i, d in enumerate(c.depths))
        self.norm = nn.LayerNorm(c.width(len(c.depths) - 1), eps=c.eps)
        self.head = nn.Linear(c.width(len(c.depths) - 1), c.num_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, ``[B, C * 2^i, H / (p 2^i), W / (p 2^i)]`` (strides 4, 8, 16, 32 in Swin-T).

        Args:
            x: images ``[B, C, H, W]``.

        Returns:
            One channels-first map per stage, without the final LayerNorm.
        """
        c = self.config
        n = c.input_multiple
        check_image(x, in_channels=c.in_channels, min_size=n, model="Swin",
                    why=f"patch size x 2^(stages - 1) x window size = {n}")
        if x.shape[2] % n or x.shape[3] % n:
            raise ValueError(f"Swin: input {x.shape[2]}x{x.shape[3]} is not a multiple of patch size x "
                             f"2^(stages - 1) x window size = {n}, so the windows would not tile every stage")
        z = self.patch_norm(self.patch_embedding(x).permute(0, 2, 3, 1))  # [B, H/p, W/p, C]
        maps = []
        for i, stage in enumerate(self.stages):
            if i:
                z = self.merges[i - 1](z)  # [B, H/2, W/2, 2C]
            z = stage(z)
            maps.append(z.permute(0, 3, 1, 2))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)[-1].permute(0, 2, 3, 1)  # [B, h, w, 8C]
        return self.head(self.norm(z).mean(dim=(1, 2)))  # [B, num_classes]


@register("swin_t", SwinConfig)
def build_swin(config: SwinConfig) -> Swin:
    """Swin Transformer (Liu et al., 2021); the default config is Swin-T."""
    return Swin(config)
