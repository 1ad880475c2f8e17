r"""Multi-head self-attention, on token sequences and on images (Building blocks, "Attention on images").

:class:`MultiHeadSelfAttention` is the notes' ``AttnOriginal`` (appendix B.3, after Vaswani et
al., 2017).  A sequence :math:`x \in \mathbb{R}^{T \times D}` goes through K heads of dimension d;
head h has its own projections :math:`U^{z,h} \in \mathbb{R}^{D \times d}`, :math:`b^{z,h} \in
\mathbb{R}^d` for z in {query, key, value}:

.. math::

    q^{(h)} = x U^{\mathrm{query},h} + b^{\mathrm{query},h}, \quad \dots, \qquad
    a^{(h)} = \operatorname{softmax}\!\Big(\frac{q^{(h)} k^{(h)\top}}{\sqrt d}\Big) v^{(h)}
    \in \mathbb{R}^{T \times d}, \qquad
    y = [a^{(1)} \cdots a^{(K)}]\, V + b \in \mathbb{R}^{T \times D},

with :math:`V \in \mathbb{R}^{Kd \times D}`.  The K projections of one kind are stored as one
``nn.Linear(D, K d)`` whose output columns ``h d ... (h + 1) d - 1`` are head h, so splitting into
heads is a reshape.  Parameters: :math:`3K(Dd + d) + KdD + D = 4KdD + 3Kd + D`, which is
:math:`4D^2 + 4D` for the usual :math:`d = D/K` (with biases; :math:`4D^2` without).  Dropout of
the notes' ``Drop_{0.1}`` is left out: this is the module in evaluation mode.

:class:`MultiHeadSelfAttention2d` is the notes' image attention (section 1.5): an image
:math:`x \in \mathbb{R}^{C \times H \times W}` becomes :math:`HW` tokens of dimension C,
:math:`x_{\mathrm{txt}} = x.\mathrm{view}(C, HW)^\top`, pixel (i, j) being token :math:`iW + j`;
``AttnOriginal`` runs with D = C, and :math:`y = (y_{\mathrm{txt}}^\top).\mathrm{view}(C, H, W)`.
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_int
from visarch.functional.attention import attention_weights, scaled_dot_product_attention

__all__ = ["MultiHeadSelfAttention", "MultiHeadSelfAttention2d"]


class MultiHeadSelfAttention(nn.Module):
    """The notes' ``AttnOriginal``: K-head self-attention on ``[N, T, D]`` (or ``[T, D]``) sequences.

    ``forward`` maps ``[N, T, D]`` (or ``[T, D]``) to the same shape.  With d = D/K it computes what
    ``torch.nn.MultiheadAttention`` computes (dropout 0), against which it is checked in
    ``tests/test_attention.py``; :meth:`~visarch.nn.attention.MultiHeadSelfAttention.to_torch` and
    :meth:`~visarch.nn.attention.MultiHeadSelfAttention.from_torch` copy the weights across.

    Args:
        embed_dim: D, the size of each token.
        num_heads: K, the number of heads.
        head_dim: the notes' d, the size of one head; by default d = D/K, which needs K to divide D
            (torch's ``nn.MultiheadAttention`` always uses that d).
        bias: whether the four projections have biases.
    """

    def __init__(self, *, embed_dim: int, num_heads: int, head_dim: int | None = None, bias: bool = True):
        super().__init__()
        check_int(embed_dim, "embedding dimension D (embed_dim)", where=type(self).__name__, ge=1)
        check_int(num_heads, "number of heads K (num_heads)", where=type(self).__name__, ge=1)
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(f"number of heads K={num_heads} does not divide embedding dimension D={embed_dim}")
            head_dim = embed_dim // num_heads
        check_int(head_dim, "head dimension d (head_dim)", where=type(self).__name__, ge=1)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        inner = num_heads * head_dim  # K d
        self.query = nn.Linear(embed_dim, inner, bias=bias)  # [U^{query,1} ... U^{query,K}], transposed
        self.key = nn.Linear(embed_dim, inner, bias=bias)
        self.value = nn.Linear(embed_dim, inner, bias=bias)
        self.out = nn.Linear(inner, embed_dim, bias=bias)  # V^T and b

    def _split_heads(self, t):
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)  # [..., T, K d] -> [..., K, T, d]

    def forward(self, x, *, need_weights: bool = False):
        """Self-attention of the tokens ``x``, ``[N, T, D]`` or ``[T, D]``, to a result of the same shape.

        With ``need_weights`` the result is a pair ``(y, weights)``, the attention weights averaged
        over the heads, ``[N, T, T]`` (as torch's ``average_attn_weights``).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(f"x must have rank 3 [N, T, D] (or 2 [T, D]), got rank {x.dim()}")
        if x.shape[-1] != self.embed_dim:
            raise ValueError(f"x has embedding dimension {x.shape[-1]}, expected D={self.embed_dim}")
        q, k, v = (self._split_heads(proj(x)) for proj in (self.query, self.key, self.value))  # [..., K, T, d]
        a = scaled_dot_product_attention(q, k, v)  # [..., K, T, d]; scale 1/sqrt(d), d per head
        y = self.out(a.transpose(-3, -2).flatten(-2))  # [..., T, K d] -> [..., T, D]
        if need_weights:
            return y, attention_weights(q, k).mean(-3)  # [..., T, T]
        return y

    def to_torch(self) -> nn.MultiheadAttention:
        """A ``torch.nn.MultiheadAttention(batch_first=True)`` holding copies of these weights."""
        if self.num_heads * self.head_dim != self.embed_dim:
            raise ValueError(f"torch's MultiheadAttention needs K d = D, got K={self.num_heads}, "
                             f"d={self.head_dim}, D={self.embed_dim}")
        bias = self.out.bias is not None
        weight = self.out.weight
        mha = nn.MultiheadAttention(self.embed_dim, self.num_heads, bias=bias, batch_first=True,
                                    dtype=weight.dtype, device=weight.device)
        projections = (self.query, self.key, self.value)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))  # [3D, D]: q, k, v rows
            mha.out_proj.weight.copy_(self.out.weight)
            if bias:
                mha.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
                mha.out_proj.bias.copy_(self.out.bias)
        return mha

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadSelfAttention:
        """This module with copies of the weights of a ``torch.nn.MultiheadAttention``.

        ``mha`` must be the notes' ``AttnOriginal``: kdim = vdim = embed_dim, no ``add_bias_kv``, no
        ``add_zero_attn`` and dropout 0.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn or mha.dropout:
            raise ValueError("only a MultiheadAttention with kdim = vdim = embed_dim, no add_bias_kv, "
                             "no add_zero_attn and dropout 0 is the notes' AttnOriginal")
        bias = mha.in_proj_bias is not None
        module = cls(embed_dim=mha.embed_dim, num_heads=mha.num_heads, bias=bias)
        module.to(dtype=mha.in_proj_weight.dtype, device=mha.in_proj_weight.device)
        projections = (module.query, module.key, module.value)
        with torch.no_grad():
            for p, w in zip(projections, mha.in_proj_weight.chunk(3), strict=True):
                p.weight.copy_(w)
            module.out.weight.copy_(mha.out_proj.weight)
            if bias:
                for p, b in zip(projections, mha.in_proj_bias.chunk(3), strict=True):
                    p.bias.copy_(b)
                module.out.bias.copy_(mha.out_proj.bias)
        return module


class MultiHeadSelfAttention2d(nn.Module):
    """The notes' image self-attention (section 1.5): ``AttnOriginal`` over the H W pixels of ``[N, C, H, W]``.

    ``forward`` maps ``[N, C, H, W]`` (or ``[C, H, W]``) to the same shape, each pixel a token of
    dimension C.  Checked against ``torch.nn.MultiheadAttention`` on the tokens in ``tests/test_attention.py``.

    Args:
        embed_dim: the number of channels C (the notes' D = C).
        num_heads: K, the number of heads.
        head_dim: d, by default C/K, as for :class:`~visarch.nn.attention.MultiHeadSelfAttention`.
        bias: whether the four projections have biases.
    """

    def __init__(self, *, embed_dim: int, num_heads: int, head_dim: int | None = None, bias: bool = True):
        super().__init__()
        self.attention = MultiHeadSelfAttention(embed_dim=embed_dim, num_heads=num_heads, head_dim=head_dim,
                                                bias=bias)

    def forward(self, x, *, need_weights: bool = False):
        """Self-attention between the pixels of ``x``, ``[N, C, H, W]`` or ``[C, H, W]``, to a result of the same shape.

        With ``need_weights`` the result is a pair ``(y, weights)``, the head-averaged weights
        ``[N, HW, HW]`` between pixels, row-major (pixel (i, j) is i W + j).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (3, 4):
            raise ValueError(f"x must have rank 4 [N, C, H, W] (or 3 [C, H, W]), got rank {x.dim()}")
        if x.shape[-3] != self.attention.embed_dim:
            raise ValueError(f"x has C={x.shape[-3]} channels, expected embed_dim C={self.attention.embed_dim}")
        height, width = x.shape[-2:]
        tokens = x.flatten(-2).transpose(-2, -1)  # x.view(C, HW)^T: [..., HW, C]
        result = self.attention(tokens, need_weights=need_weights)
        y_txt = result[0] if need_weights else result  # [..., HW, C]
        # (y_txt^T).view(C, H, W): [..., C, H, W].  contiguous(): the transpose is a channels-last view, and a
        # convolution after it would convert its weights to channels-last on every call (half a U-Net step).
        y = y_txt.transpose(-2, -1).unflatten(-1, (height, width)).contiguous()
        return (y, result[1]) if need_weights else y

    def to_torch(self) -> nn.MultiheadAttention:
        """The ``torch.nn.MultiheadAttention(batch_first=True)`` that computes the same on the tokens."""
        return self.attention.to_torch()

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadSelfAttention2d:
        """This module with copies of the weights of a ``torch.nn.MultiheadAttention``."""
        inner = MultiHeadSelfAttention.from_torch(mha)
        module = cls(embed_dim=inner.embed_dim, num_heads=inner.num_heads, bias=inner.out.bias is not None)
        module.attention = inner
        return module
