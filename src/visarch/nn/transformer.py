r"""The transformer of Vaswani et al. (2017): positional encoding, encoder and decoder blocks.

Positional encoding (fixed, sinusoidal): position t of a sequence of D-dimensional tokens gets

.. math::

    \mathrm{PE}(t, 2i) = \sin\big(t / 10000^{2i/D}\big), \qquad
    \mathrm{PE}(t, 2i + 1) = \cos\big(t / 10000^{2i/D}\big), \qquad i = 0, \dots, D/2 - 1,

added to the token embeddings; the table is :func:`sinusoidal_embeddings` (the ViT's fixed embeddings too).

Attention with h heads of size :math:`d_k = D/h` on queries :math:`x_q \in \mathbb{R}^{T_q \times D}` and
keys/values :math:`x_{kv} \in \mathbb{R}^{T_k \times D}` (self-attention: :math:`x_q = x_{kv}`):

.. math::

    \mathrm{head}_j = \operatorname{softmax}\!\Big(\frac{Q_j K_j^\top}{\sqrt{d_k}} + M\Big) V_j, \qquad
    y = [\mathrm{head}_1 \cdots \mathrm{head}_h] W^O,

where the mask M holds 0 for allowed pairs and :math:`-\infty` for forbidden ones (the decoder's causal mask
forbids key s > query t; a key padding mask forbids padded keys).

Encoder block on :math:`x \in \mathbb{R}^{T \times D}` (``[B, T, D]``), with FFN(x) = ReLU(x W_1 + b_1) W_2 + b_2:

* post-norm (the paper):  :math:`z = \mathrm{LN}(x + \mathrm{SA}(x))`, :math:`y = \mathrm{LN}(z + \mathrm{FFN}(z))`;
* pre-norm (Xiong et al., 2020): :math:`z = x + \mathrm{SA}(\mathrm{LN}(x))`,
  :math:`y = z + \mathrm{FFN}(\mathrm{LN}(z))`.

The decoder block adds, between causal self-attention and FFN, cross-attention CA whose queries come from
the decoder and keys/values from the encoder output (the memory).  Dropout is applied to each sub-layer's
output before the residual sum, to the attention weights and inside the FFN, as in ``torch.nn``'s layers,
whose parameter layout these blocks copy (``from_torch``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visarch.checks import check_int

__all__ = ["MultiHeadAttention", "SinusoidalPositionalEncoding", "TransformerDecoderBlock",
           "TransformerEncoderBlock", "TransformerSeq2Seq", "causal_mask", "sinusoidal_embeddings"]


def sinusoidal_embeddings(length: int, dim: int) -> torch.Tensor:
    r"""Vaswani et al.'s position table ``[length, dim]``, the Transformer's encoding and the ViT's fixed embeddings.

    Row t holds :math:`\sin` and :math:`\cos` of :math:`t / 10000^{2i/D}` in entries 2i and 2i + 1.
    Checked against the paper's formula, written entry by entry, in ``tests/test_transformer.py``.

    Args:
        length: T, the number of positions, at least 1.
        dim: D, even and at least 2.

    Returns:
        float32 ``[T, D]``, computed in float64.
    """
    check_int(length, "sequence length T", where="sinusoidal_embeddings", ge=1)
    check_int(dim, "dimension D", where="sinusoidal_embeddings", ge=2)
    if dim % 2:
        raise ValueError(f"sinusoidal embeddings need an even dimension D, got D={dim}")
    t = torch.arange(length, dtype=torch.float64)[:, None]  # [T, 1]
    frequencies = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # [D/2]
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(t * frequencies), torch.cos(t * frequencies)
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table (a buffer of ``max_len`` rows) to ``[B, T, D]`` embeddings.

    ``forward`` maps ``[..., T, D]`` to the same shape, T at most ``max_len``.

    Args:
        dim: D, even.
        max_len: the number of rows of the table, the longest sequence it takes.
    """

    def __init__(self, *, dim: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("table", sinusoidal_embeddings(max_len, dim), persistent=False)  # [L, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, dim = self.table.shape
        if x.dim() < 2 or x.shape[-1] != dim:
            raise ValueError(f"x must be [..., T, D] with D={dim}, got shape {tuple(x.shape)}")
        if x.shape[-2] > length:
            raise ValueError(f"sequence length T={x.shape[-2]} exceeds the positional table's max_len={length}")
        return x + self.table[: x.shape[-2]].to(x.dtype)


def causal_mask(length: int, *, device=None) -> torch.Tensor:
    """Boolean ``[T, T]`` mask, True where key s > query t (the future, forbidden).

    Args:
        length: T, the sequence length.
        device: where the mask is made (default: the CPU).
    """
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def _additive(mask: torch.Tensor | None, name: str, shape: tuple[int, ...], dtype) -> torch.Tensor | None:
    """A boolean (True = forbidden) or floating (added to the scores) mask as an additive float mask."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return torch.zeros(shape, dtype=dtype, device=mask.device).masked_fill(mask, -math.inf)
    if mask.is_floating_point():
        return mask.to(dtype)
    raise ValueError(f"{name} must be boolean (True = not allowed) or floating point (added to scores), "
                     f"got dtype {mask.dtype}")


class MultiHeadAttention(nn.Module):
    """h-head attention of queries ``[B, Tq, D]`` on keys/values ``[B, Tk, D]``, with optional masks.

    The parameter layout of ``torch.nn.MultiheadAttention``, whose weights
    :meth:`~visarch.nn.transformer.MultiHeadAttention.load_torch` copies; the blocks that use it are
    checked against torch's transformer layers in ``tests/test_transformer.py``.

    Args:
        dim: D, the model dimension.
        heads: h, which must divide D; each head has size d_k = D/h.
        dropout: probability of dropping an attention weight in training mode.
        bias: whether the four projections have biases.
    """

    def __init__(self, *, dim: int, heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        check_int(dim, "model dimension D (dim)", where=type(self).__name__, ge=1)
        check_int(heads, "number of heads h (heads)", where=type(self).__name__, ge=1)
        if dim % heads:
            raise ValueError(f"number of heads h={heads} does not divide model dimension D={dim}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.query, self.key, self.value = (nn.Linear(dim, dim, bias=bias) for _ in range(3))  # W^Q, W^K, W^V
        self.out = nn.Linear(dim, dim, bias=bias)  # W^O
        self.dropout = nn.Dropout(dropout)  # on the attention weights

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [B, T, D] -> [B, h, T, d_k]

    def forward(self, x_q, x_kv=None, *, attn_mask=None, key_padding_mask=None, need_weights=False):
        """Attention of the queries ``x_q`` on ``x_kv`` (self-attention when ``x_kv`` is ``None``).

        Args:
            x_q: queries ``[B, Tq, D]``.
            x_kv: keys and values ``[B, Tk, D]``, or ``None`` for ``x_q`` itself.
            attn_mask: ``[Tq, Tk]``, boolean (True = forbidden) or float (added to the scores), or ``None``.
            key_padding_mask: ``[B, Tk]``, boolean (True = a padded key) or float, or ``None``.
            need_weights: also return the attention weights.

        Returns:
            ``y`` ``[B, Tq, D]``, or with ``need_weights`` the pair ``(y, weights)``, weights ``[B, h, Tq, Tk]``.
        """
        x_kv = x_q if x_kv is None else x_kv
        for name, t in (("queries", x_q), ("keys/values", x_kv)):
            if t.dim() != 3 or t.shape[-1] != self.dim:
                raise ValueError(f"{name} must be [B, T, D] with D={self.dim}, got shape {tuple(t.shape)}")
        (b, t_q, _), t_k = x_q.shape, x_kv.shape[1]
        if x_kv.shape[0] != b:
            raise ValueError(f"queries and keys/values must share the batch size, got {b} and {x_kv.shape[0]}")
        q, k, v = self._split(self.query(x_q)), self._split(self.key(x_kv)), self._split(self.value(x_kv))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # [B, h, Tq, Tk]
        mask = _additive(attn_mask, "attn_mask", (t_q, t_k), scores.dtype)
        if mask is not None:
            scores = scores + mask
        padding = _additive(key_padding_mask, "key_padding_mask", (b, t_k), scores.dtype)
        if padding is not None:
            scores = scores + padding[:, None, None, :]
        weights = torch.softmax(scores, dim=-1)  # [B, h, Tq, Tk]
        y = self.out((self.dropout(weights) @ v).transpose(1, 2).flatten(-2))  # [B, Tq, D]
        return (y, weights) if need_weights else y

    def load_torch(self, mha: nn.MultiheadAttention) -> None:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (packed q, k, v rows) into this module."""
        with torch.no_grad():
            for proj, w in zip((self.query, self.key, self.value), mha.in_proj_weight.chunk(3), strict=True):
                proj.weight.copy_(w)
            self.out.weight.copy_(mha.out_proj.weight)
            if mha.in_proj_bias is not None:
                for proj, b in zip((self.query, self.key, self.value), mha.in_proj_bias.chunk(3), strict=True):
                    proj.bias.copy_(b)
                self.out.bias.copy_(mha.out_proj.bias)


def _check_torch_layer(layer) -> None:
    if layer.activation is not torch.nn.functional.relu and not isinstance(layer.activation, nn.ReLU):
        raise ValueError("only a torch.nn transformer layer with the ReLU activation is the paper's block")
    if layer.linear1.bias is None:
        raise ValueError("only a torch.nn transformer layer with biases (bias=True) is the paper's block")


class _Block(nn.Module):
    """Shared pieces: the FFN, norms and dropouts of one block."""

    def __init__(self, *, dim, heads, ffn_dim, dropout, norm_first, eps, sublayers):
        super().__init__()
        check_int(ffn_dim, "feed-forward width (ffn_dim)", where=type(self).__name__, ge=1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(dim=dim, heads=heads, dropout=dropout)
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)  # W_1, W_2
        self.ffn_dropout = nn.Dropout(dropout)  # inside the FFN, after the ReLU
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(sublayers))
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in range(sublayers))  # on each sub-layer output

    @classmethod
    def _shaped_like(cls, layer):
        """A block with the sizes, dtype and device of a torch layer, its self-attention weights copied."""
        _check_torch_layer(layer)
        block = cls(dim=layer.self_attn.embed_dim, heads=layer.self_attn.num_heads,
                    ffn_dim=layer.linear1.out_features, dropout=layer.dropout.p, norm_first=layer.norm_first,
                    eps=layer.norm1.eps).to(dtype=layer.linear1.weight.dtype, device=layer.linear1.weight.device)
        block.self_attn.load_torch(layer.self_attn)
        return block

    def ffn(self, x):
        return self.linear2(self.ffn_dropout(torch.relu(self.linear1(x))))

    def residual(self, x, index, sublayer):
        """Pre-norm: x + F(LN(x)); post-norm: LN(x + F(x)).  ``sublayer`` maps a tensor to (output, extra)."""
        norm, drop = self.norms[index], self.dropouts[index]
        if self.norm_first:
            out, extra = sublayer(norm(x))
            return x + drop(out), extra
        out, extra = sublayer(x)
        return norm(x + drop(out)), extra

    def _load_ffn_norms(self, layer, norms):
        with torch.no_grad():
            pairs = ((self.linear1, layer.linear1), (self.linear2, layer.linear2), *zip(self.norms, norms, strict=True))
            for mine, theirs in pairs:
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)


class TransformerEncoderBlock(_Block):
    r"""Self-attention and FFN, each with a residual; ``norm_first`` selects pre-norm (True) or post-norm.

    ``forward`` maps ``[B, T, D]`` to ``[B, T, D]``.  The layout of ``torch.nn.TransformerEncoderLayer``
    (``batch_first=True``, ReLU), against which it is checked, forward and backward, in
    ``tests/test_transformer.py``.

    Args:
        dim: D, the model dimension.
        heads: h, which must divide D.
        ffn_dim: the width of the FFN's hidden layer.
        dropout: probability of the dropouts on the attention weights, inside the FFN and on each
            sub-layer's output, in [0, 1).
        norm_first: pre-norm (True, Xiong et al.) or post-norm (False, the paper).
        eps: :math:`\epsilon` of the layer norms.
    """

    def __init__(self, *, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0, norm_first: bool = False,
                 eps: float = 1e-5):
        super().__init__(dim=dim, heads=heads, ffn_dim=ffn_dim, dropout=dropout, norm_first=norm_first, eps=eps,
                         sublayers=2)

    def forward(self, x, *, attn_mask=None, key_padding_mask=None, need_weights=False):
        """The block on ``x`` ``[B, T, D]``, to ``[B, T, D]``.

        ``attn_mask`` (``[T, T]``) and ``key_padding_mask`` (``[B, T]``) go to the self-attention, as for
        :meth:`~visarch.nn.transformer.MultiHeadAttention.forward`; with ``need_weights`` the result is the
        pair ``(y, weights)``, the self-attention weights ``[B, h, T, T]``.
        """
        x, weights = self.residual(x, 0, lambda u: self.self_attn(
            u, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=True))
        x, _ = self.residual(x, 1, lambda u: (self.ffn(u), None))
        return (x, weights) if need_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> TransformerEncoderBlock:
        """This block with copies of a ``torch.nn.TransformerEncoderLayer``'s weights (ReLU activation)."""
        block = cls._shaped_like(layer)
        block._load_ffn_norms(layer, (layer.norm1, layer.norm2))
        return block


class TransformerDecoderBlock(_Block):
    r"""Causal self-attention, cross-attention on the encoder output (memory), FFN; pre- or post-norm.

    ``forward`` maps decoder tokens ``[B, T, D]`` and the memory ``[B, S, D]`` to ``[B, T, D]``.  The
    layout of ``torch.nn.TransformerDecoderLayer`` (``batch_first=True``, ReLU), against which it is
    checked, forward and backward, in ``tests/test_transformer.py``.

    Args:
        dim: D, the model dimension.
        heads: h, which must divide D.
        ffn_dim: the width of the FFN's hidden layer.
        dropout: probability of every dropout, in [0, 1).
        norm_first: pre-norm (True) or post-norm (False, the paper).
        eps: :math:`\epsilon` of the layer norms.
    """

    def __init__(self, *, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0, norm_first: bool = False,
                 eps: float = 1e-5):
        super().__init__(dim=dim, heads=heads, ffn_dim=ffn_dim, dropout=dropout, norm_first=norm_first, eps=eps,
                         sublayers=3)
        self.cross_attn = MultiHeadAttention(dim=dim, heads=heads, dropout=dropout)

    def forward(self, x, memory, *, causal=True, tgt_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, need_weights=False):
        """Decoder tokens ``x`` ``[B, T, D]`` and encoder output ``memory`` ``[B, S, D]`` -> ``[B, T, D]``.

        ``causal`` adds the causal mask to ``tgt_mask`` (if any); with ``need_weights``, also the
        cross-attention weights ``[B, h, T, S]``.  The masks are as for
        :meth:`~visarch.nn.transformer.MultiHeadAttention.forward`: ``tgt_mask`` ``[T, T]``,
        ``tgt_key_padding_mask`` ``[B, T]``, ``memory_key_padding_mask`` ``[B, S]``.
        """
        if causal:
            future = causal_mask(x.shape[1], device=x.device)
            if tgt_mask is None:
                tgt_mask = future
            else:
                tgt_mask = _additive(tgt_mask, "tgt_mask", tuple(future.shape), x.dtype) + _additive(
                    future, "causal mask", tuple(future.shape), x.dtype)
        x, _ = self.residual(x, 0, lambda u: (self.self_attn(
            u, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask), None))
        # the memory is used as it comes: only the decoder's own stream is normalised (as in torch.nn)
        x, weights = self.residual(x, 1, lambda u: self.cross_attn(
            u, memory, key_padding_mask=memory_key_padding_mask, need_weights=True))
        x, _ = self.residual(x, 2, lambda u: (self.ffn(u), None))
        return (x, weights) if need_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> TransformerDecoderBlock:
        """This block with copies of a ``torch.nn.TransformerDecoderLayer``'s weights (ReLU activation)."""
        block = cls._shaped_like(layer)
        block.cross_attn.load_torch(layer.multihead_attn)
        block._load_ffn_norms(layer, (layer.norm1, layer.norm2, layer.norm3))
        return block


class TransformerSeq2Seq(nn.Module):
    """A small encoder-decoder on token ids: embeddings + PE, N encoder and N decoder blocks, a linear read-out.

    ``forward(src, tgt)`` maps source ids ``[B, S]`` and shifted target ids ``[B, T]`` to logits
    ``[B, T, vocab]``.  Source and target share one embedding table; a pre-norm stack ends with a
    layer norm.

    Args:
        vocab: the vocabulary size, at least 2.
        dim: D, the model dimension.
        heads: h, which must divide D.
        ffn_dim: the width of the FFN's hidden layer.
        layers: N, the number of encoder blocks and of decoder blocks.
        dropout: probability of every dropout, in [0, 1).
        norm_first: pre-norm blocks (True) or post-norm.
        max_len: the longest sequence the positional table covers.
        pad: the padding id, whose source positions are never attended to, or ``None``.
    """

    def __init__(self, *, vocab: int, dim: int = 64, heads: int = 4, ffn_dim: int = 128, layers: int = 2,
                 dropout: float = 0.0, norm_first: bool = True, max_len: int = 64, pad: int | None = None):
        super().__init__()
        check_int(vocab, "vocabulary size", where=type(self).__name__, ge=2)
        check_int(layers, "number of layers N", where=type(self).__name__, ge=1)
        self.dim, self.pad = dim, pad  # pad: the padding id, whose source positions are never attended to
        self.embed = nn.Embedding(vocab, dim)  # shared by source and target
        self.position = SinusoidalPositionalEncoding(dim=dim, max_len=max_len)
        kw = {"dim": dim, "heads": heads, "ffn_dim": ffn_dim, "dropout": dropout, "norm_first": norm_first}
        self.encoder = nn.ModuleList(TransformerEncoderBlock(**kw) for _ in range(layers))
        self.decoder = nn.ModuleList(TransformerDecoderBlock(**kw) for _ in range(layers))
        # pre-norm stacks end with a norm, since their residual stream is never normalised
        self.final_norms = nn.ModuleList(nn.LayerNorm(dim) if norm_first else nn.Identity() for _ in range(2))
        self.head = nn.Linear(dim, vocab)

    def _tokens(self, ids):
        # no sqrt(D) factor: nn.Embedding starts at unit variance, the scale of the table's entries
        return self.position(self.embed(ids))  # [B, T, D]

    def _padding(self, src):
        return None if self.pad is None else src == self.pad  # [B, S], True = padding

    def encode(self, src):
        """The memory ``[B, S, D]``: source ids ``[B, S]`` through the encoder (and its final norm)."""
        x, padding = self._tokens(src), self._padding(src)
        for block in self.encoder:
            x = block(x, key_padding_mask=padding)
        return self.final_norms[0](x)  # [B, S, D]

    def decode(self, tgt, memory, *, src=None, need_weights=False):
        """Logits ``[B, T, vocab]`` of target ids ``tgt`` ``[B, T]`` given the ``memory`` ``[B, S, D]``.

        ``src`` (the source ids ``[B, S]``) gives the padding mask of the memory.  With ``need_weights``
        the result is the pair ``(logits, maps)``, ``maps`` the list of each decoder block's cross-attention
        weights ``[B, h, T, S]``.
        """
        x, maps = self._tokens(tgt), []
        padding = None if src is None else self._padding(src)
        for block in self.decoder:
            x, w = block(x, memory, memory_key_padding_mask=padding, need_weights=True)
            maps.append(w)
        logits = self.head(self.final_norms[1](x))
        return (logits, maps) if need_weights else logits

    def forward(self, src, tgt):
        return self.decode(tgt, self.encode(src), src=src)

    @torch.no_grad()
    def greedy_decode(self, src, *, start: int, steps: int):
        """Autoregressive decoding: feed back the most likely token ``steps`` times.

        Args:
            src: source ids ``[B, S]``.
            start: the id every output begins with.
            steps: the number of tokens generated.

        Returns:
            int64 ids ``[B, 1 + steps]``, ``start`` first.
        """
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), start, dtype=torch.long, device=src.device)
        for _ in range(steps):
            nxt = self.decode(out, memory, src=src)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
        return out
