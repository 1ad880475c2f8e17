r"""TimeSformer: a vision transformer for video, and the ways its attention can cover space and time
(Bertasius et al., 2021).

A clip ``[B, C, F, H, W]`` of F frames is cut into :math:`N = HW/p^2` patches per frame, each embedded
into D dimensions: :math:`NF` tokens ``[B, F, N, D]``, with a learnt spatial embedding (one per patch
position) plus a learnt temporal one (one per frame).  A block is pre-norm attention then an MLP, each
with a residual; the schemes differ in which tokens a query attends to:

* joint space-time (ST): all :math:`NF` tokens, one attention over sequences of length :math:`NF`;
* space only (S): the :math:`N` tokens of its own frame (frames never exchange information);
* divided (T+S): first the :math:`F` tokens at its own patch position (time), then, with separate
  weights, the :math:`N` tokens of its own frame (space);
* axial (T+W+H): time, then its row of width :math:`W/p`, then its column of height :math:`H/p`;
* sparse local-global (L+G): first the :math:`FN/4` tokens of its quarter of the clip (all frames, the
  :math:`H/2p \times W/2p` patches of its quadrant), then, with separate weights, the :math:`FN/8` tokens
  reached from it with a stride of 2 along time, height and width.

With projections counted, one attention over :math:`L` tokens costs :math:`4LD^2` multiply-accumulates
(MACs) for the query, key, value and output maps and :math:`2L^2D` for the scores and the weighted sum,
so per layer

.. math::

    \text{ST}: 4NFD^2 + 2(NF)^2 D, \qquad \text{T+S}: 8NFD^2 + 2NF(F + N)D, \qquad
    \text{S}: 4NFD^2 + 2N^2FD,

T+W+H costs :math:`12NFD^2 + 2NF(F + W/p + H/p)D` and L+G :math:`8NFD^2 + 2NF(NF/4 + NF/8)D`.
Divided attention replaces the :math:`(NF)^2` term by :math:`NF(F + N)`: for the paper's 8 frames of
224 x 224 with p = 16 the score term shrinks by a factor :math:`NF/(N+F) \approx 7.7`.

Here the clip is classified from the mean of the final tokens rather than from a class token, so every
attention acts on the ``[B, F, N, D]`` grid and the counts above hold exactly.  Parameters: the patch
embedding :math:`Cp^2D + D`, embeddings :math:`(N + F)D`, per block :math:`a(4D^2 + 6D) + 2rD^2 + (r + 3)D`
with :math:`a` attentions (1 for ST and S, 2 for T+S and L+G, 3 for T+W+H) and MLP ratio r, and the head
:math:`2D + DK + K` for K classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from visarch import cost
from visarch.checks import check_int
from visarch.functional.attention import scaled_dot_product_attention
from visarch.models.registry import register
from visarch.nn.attention import MultiHeadSelfAttention

__all__ = ["AXES", "LAYOUTS", "SCHEMES", "SpaceTimeAttention", "TimeSformer", "TimeSformerBlock",
           "TimeSformerConfig", "attention_macs", "build_timesformer", "space_time_mask"]

#: scheme -> the attentions of one block, in order
SCHEMES = {"joint": ("joint",), "space": ("space",), "divided": ("time", "space"),
           "axial": ("time", "width", "height"),
           "local_global": ("local", "global")}
#: How each grid dimension (F, H/p, W/p) enters one attention.  "seq" puts all of it in the attended sequence;
#: "batch", all of it in the batch (never attended across); "window", its two halves in the batch and the
#: positions inside a half in the sequence; "stride", the parity in the batch and every second token in the
#: sequence.  Folding the batch-side factors into the batch makes each attention one ordinary attention call.
LAYOUTS = {"joint": ("seq", "seq", "seq"), "space": ("batch", "seq", "seq"), "time": ("seq", "batch", "batch"),
           "width": ("batch", "batch", "seq"), "height": ("batch", "seq", "batch"),
           "local": ("seq", "window", "window"), "global": ("stride", "stride", "stride")}
#: the attentions a scheme can name (the keys of LAYOUTS)
AXES = tuple(LAYOUTS)
_SPLITS = {"seq": lambda n: ((n, "seq"),), "batch": lambda n: ((n, "batch"),),
           "window": lambda n: ((2, "batch"), (n // 2, "seq")), "stride": lambda n: ((n // 2, "seq"), (2, "batch"))}


def _check_axis(axis: str, frames: int, grid_h: int, grid_w: int) -> None:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    for role, name, n in zip(LAYOUTS[axis], ("frames F", "grid height H/p", "grid width W/p"),
                             (frames, grid_h, grid_w), strict=True):
        if role in ("window", "stride") and n % 2:
            raise ValueError(f"{axis} attention halves or strides the {name}, which must be even, got {n}")


@dataclass(frozen=True)
class TimeSformerConfig:
    """A small TimeSformer; the paper's base model is 8 frames of 224 x 224, p = 16, D = 768, 12 blocks."""

    image_size: int = 32  #: H = W, pixels of a frame
    frames: int = 2  #: F, frames per clip
    patch_size: int = 8  #: p, side of a square patch
    in_channels: int = 3  #: C
    dim: int = 64  #: D, token dimension
    depth: int = 2  #: number of blocks
    heads: int = 4  #: attention heads, must divide D
    mlp_ratio: int = 4  #: r, hidden width of the MLP is r D
    num_classes: int = 10  #: K
    attention: str = "divided"  #: one of SCHEMES

    def __post_init__(self):
        for name, value in (("image size H", self.image_size), ("number of frames F", self.frames),
                            ("patch size p", self.patch_size), ("input channels C", self.in_channels),
                            ("token dimension D", self.dim), ("depth", self.depth), ("heads", self.heads),
                            ("MLP ratio r", self.mlp_ratio), ("number of classes K", self.num_classes)):
            check_int(value, name, where=type(self).__name__, ge=1)
        if self.image_size % self.patch_size:
            raise ValueError(f"patch size p={self.patch_size} does not divide the frame size {self.image_size}")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} does not divide the token dimension D={self.dim}")
        if self.attention not in SCHEMES:
            raise ValueError(f"attention scheme must be one of {sorted(SCHEMES)}, got {self.attention!r}")
        for axis in SCHEMES[self.attention]:
            _check_axis(axis, self.frames, self.grid, self.grid)

    @property
    def grid(self) -> int:
        """H / p, patches along each side of a frame."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """N, patches per frame."""
        return self.grid ** 2


def space_time_mask(axis: str, frames: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Which tokens may attend to which under one attention ``axis``, as an ``[FN, FN]`` bool mask.

    Entry (query, key) is True where query token (t, i, j) (index t N + i W + j, with W the grid width) may
    attend to key token (t', i', j'): joint (all), space (t = t'), time ((i, j) = (i', j')), width
    ((t, i) = (t', i')), height ((t, j) = (t', j')), local (same quadrant of the frame, any frame), global
    ((t, i, j) = (t', i', j') modulo 2).

    Args:
        axis: one of :data:`~visarch.models.timesformer.AXES`.
        frames: F.
        grid_h: H/p.
        grid_w: W/p.

    Returns:
        The mask ``[FN, FN]``, ``N = (H/p)(W/p)``.
    """
    _check_axis(axis, frames, grid_h, grid_w)
    t, i, j = torch.meshgrid(torch.arange(frames), torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    t, i, j = t.flatten(), i.flatten(), j.flatten()  # [FN] coordinates of each token

    def same(*coords):
        return torch.stack([c[:, None] == c[None, :] for c in coords]).all(0)

    if axis == "joint":
        return torch.ones(len(t), len(t), dtype=torch.bool)
    return {"space": lambda: same(t), "time": lambda: same(i, j), "width": lambda: same(t, i),
            "height": lambda: same(t, j), "local": lambda: same(i // (grid_h // 2), j // (grid_w // 2)),
            "global": lambda: same(t % 2, i % 2, j % 2)}[axis]()


def attention_macs(scheme: str, *, patches: int, frames: int, dim: int, grid: tuple[int, int] | None = None
                   ) -> int:
    """Multiply-accumulates of one block's attention (projections included) on one clip.

    The closed forms of the module docstring: :func:`visarch.cost.attention_macs` of each attention of the
    scheme, the NF tokens attending along its axis.

    Args:
        scheme: one of :data:`~visarch.models.timesformer.SCHEMES`.
        patches: N, patches per frame.
        frames: F.
        dim: D.
        grid: ``(H/p, W/p)``, needed for the axial and local-global schemes.

    Returns:
        The count, an int.
    """
    n, f = patches, frames
    if scheme not in SCHEMES:
        raise ValueError(f"attention scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    if scheme in ("axial", "local_global") and (grid is None or grid[0] * grid[1] != n):
        raise ValueError(f"the {scheme} scheme needs grid (H/p, W/p) with product N={n}, got {grid}")
    if scheme == "local_global":
        _check_axis("global", f, *grid)
    # what each of the NF tokens attends to, one entry per attention of the scheme (module docstring)
    contexts = {"joint": [n * f], "space": [n], "divided": [f, n], "axial": [f, *(grid or ())],
                "local_global": [n * f // 4, n * f // 8]}[scheme]
    return sum(cost.attention_macs(n * f, s, dim) for s in contexts)


class SpaceTimeAttention(nn.Module):
    """Multi-head self-attention along one ``axis`` of the token grid, ``[B, F, Hp, Wp, D] -> [B, F, Hp, Wp, D]``.

    ``forward(x, mask=None)``: joint attention also takes an optional ``[FN, FN]`` bool mask (True = may
    attend), e.g. a sparse scheme from :func:`~visarch.models.timesformer.space_time_mask`.

    Args:
        dim: D.
        heads: attention heads, dividing D.
        axis: one of :data:`~visarch.models.timesformer.AXES`.
    """

    def __init__(self, dim: int, *, heads: int, axis: str):
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
        self.axis = axis
        self.attention = MultiHeadSelfAttention(embed_dim=dim, num_heads=heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"tokens must be [B, F, H/p, W/p, D], got shape {list(x.shape)}")
        b, f, h, w, d = x.shape
        _check_axis(self.axis, f, h, w)
        if mask is not None:
            if self.axis != "joint":
                raise ValueError(f"a mask applies to joint attention only, not to the {self.axis} axis")
            if mask.shape != (f * h * w, f * h * w) or mask.dtype != torch.bool:
                raise ValueError(f"mask must be bool [FN, FN] = [{f * h * w}, {f * h * w}], got {mask.dtype} "
                                 f"{list(mask.shape)}")
        # split F, H/p, W/p into factors, put the batch-side ones after B and the sequence-side ones before D
        factors, batch, seq = [b], [0], []
        for role, n in zip(LAYOUTS[self.axis], (f, h, w), strict=True):
            for size, side in _SPLITS[role](n):
                (batch if side == "batch" else seq).append(len(factors))
                factors.append(size)
        perm = [*batch, *seq, len(factors)]
        y = x.reshape(*factors, d).permute(perm)
        moved = y.shape
        sequences = y.reshape(-1, math.prod(factors[k] for k in seq), d)  # [B', L, D]
        if mask is None:
            sequences = self.attention(sequences)
        else:
            a = self.attention
            q, k, v = (a._split_heads(proj(sequences)) for proj in (a.query, a.key, a.value))  # [B', K, L, d]
            sequences = a.out(scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(-3, -2).flatten(-2))
        inverse = torch.argsort(torch.tensor(perm)).tolist()
        return sequences.reshape(moved).permute(inverse).reshape(x.shape)


class TimeSformerBlock(nn.Module):
    """A TimeSformer block, ``[B, F, Hp, Wp, D] -> [B, F, Hp, Wp, D]``.

    For each attention of the scheme, x + Attn(LN(x)) with its own weights, then x + MLP(LN(x)).

    Args:
        dim: D.
        heads: attention heads.
        mlp_ratio: r; the MLP's hidden width is r D.
        scheme: one of :data:`~visarch.models.timesformer.SCHEMES`.
    """

    def __init__(self, dim: int, *, heads: int, mlp_ratio: int, scheme: str):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in SCHEMES[scheme])
        self.attentions = nn.ModuleList(SpaceTimeAttention(dim, heads=heads, axis=axis) for axis in SCHEMES[scheme])
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, attention in zip(self.norms, self.attentions, strict=True):
            x = x + attention(norm(x))
        return x + self.mlp(x)


class TimeSformer(nn.Module):
    """TimeSformer: class scores ``[B, K]`` for clips ``[B, C, F, H, W]``.

    Patch embedding with space and time embeddings, blocks of the configured attention scheme, then a
    LayerNorm and a linear head on the mean of the final tokens.

    Args:
        config: clip and patch sizes, widths, depth and the attention scheme; None for the small default.
    """

    def __init__(self, config: TimeSformerConfig | None = None):
        super().__init__()
        self.config = c = config or TimeSformerConfig()
        self.embed = nn.Conv2d(c.in_channels, c.dim, c.patch_size, c.patch_size)  # one patch -> one token
        self.space_embedding = nn.Parameter(torch.randn(c.grid, c.grid, c.dim) * 0.02)  # [Hp, Wp, D]
        self.time_embedding = nn.Parameter(torch.randn(c.frames, 1, 1, c.dim) * 0.02)  # [F, 1, 1, D]
        self.blocks = nn.Sequential(*(TimeSformerBlock(c.dim, heads=c.heads, mlp_ratio=c.mlp_ratio, scheme=c.attention)
                                      for _ in range(c.depth)))
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The clip's tokens, ``[B, C, F, H, W] -> [B, F, H/p, W/p, D]``: patch, space and time embeddings summed."""
        c = self.config
        if x.dim() != 5 or x.shape[1] != c.in_channels:
            raise ValueError(f"TimeSformer: input must be a clip [B, {c.in_channels}, F, H, W], got {tuple(x.shape)}")
        if x.shape[2] != c.frames:
            raise ValueError(f"TimeSformer: clip has {x.shape[2]} frames, the time embedding has F={c.frames}")
        if tuple(x.shape[3:]) != (c.image_size, c.image_size):
            raise ValueError(f"TimeSformer: frames are {x.shape[3]}x{x.shape[4]}, expected "
                             f"{c.image_size}x{c.image_size} (p={c.patch_size} must tile them)")
        b, f = x.shape[0], x.shape[2]
        frames = x.transpose(1, 2).flatten(0, 1)  # [B F, C, H, W]
        t = self.embed(frames).unflatten(0, (b, f)).permute(0, 1, 3, 4, 2)  # [B, F, Hp, Wp, D]
        return t + self.space_embedding + self.time_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.blocks(self.tokens(x))  # [B, F, Hp, Wp, D]
        return self.head(self.norm(t.flatten(1, 3).mean(1)))  # mean of the N F tokens -> [B, K]


@register("timesformer_small", TimeSformerConfig)
def build_timesformer(config: TimeSformerConfig) -> TimeSformer:
    """The builder of the registered ``timesformer_small``, a :class:`~visarch.models.timesformer.TimeSformer`.

    With the default config it has 2 frames of 32 x 32, p = 8, D = 64 and 2 divided-attention blocks,
    147,786 parameters.

    Args:
        config: the model's config.
    """
    return TimeSformer(config)
