r"""Scaled dot-product attention from scratch (Building blocks, section "Attention on images").

Notation: queries :math:`Q \in \mathbb{R}^{L \times E}`, keys :math:`K \in \mathbb{R}^{S \times E}`,
values :math:`V \in \mathbb{R}^{S \times E_v}`, with any number of leading batch axes (batch,
heads) that broadcast against each other, as in :func:`torch.nn.functional.scaled_dot_product_attention`.
With a scale :math:`\tau` (default :math:`1/\sqrt{E}`, E the feature size of one query, that is the
*per-head* dimension d of the notes) and an additive mask :math:`M \in (\mathbb{R} \cup \{-\infty\})^{L
\times S}`, row i of the output is

.. math::

    s_{ij} = \tau\, q_i \cdot k_j + M_{ij}, \qquad
    o_i = \sum_{j=0}^{S-1} \frac{e^{s_{ij} - m_i}}{\ell_i}\, v_j, \qquad
    m_i = \max_j s_{ij}, \quad \ell_i = \sum_j e^{s_{ij} - m_i}.

Subtracting the row maximum :math:`m_i` changes nothing mathematically (it cancels between
numerator and :math:`\ell_i`) but keeps every exponent :math:`\le 0`, so no logit, however
large, overflows.  A boolean mask means :math:`M_{ij} = 0` where it is True (key j takes part)
and :math:`-\infty` where it is False; ``is_causal`` is the boolean mask ``j <= i`` of an
:math:`L \times S` matrix aligned at the top-left corner, as in torch.  A row whose keys are
all masked out has :math:`\ell_i = 0`; torch returns zeros there (and zero gradients), and so
do these functions.

**Online softmax.**  :func:`chunked_attention` never forms the :math:`L \times S` matrix.  It
visits the keys in blocks :math:`B_1, B_2, \dots` of at most ``chunk_size`` keys and keeps, per
query, a running maximum :math:`m`, a running normaliser :math:`\ell` and an unnormalised output
:math:`a` (Milakov and Gimelshein, 2018; Rabe and Staats, 2021; the recurrence of
FlashAttention).  For block :math:`B`:

.. math::

    m' = \max\big(m, \max_{j \in B} s_{ij}\big), \quad
    \ell' = e^{m - m'}\,\ell + \sum_{j \in B} e^{s_{ij} - m'}, \quad
    a' = e^{m - m'}\,a + \sum_{j \in B} e^{s_{ij} - m'}\, v_j,

starting from :math:`m = -\infty, \ell = 0, a = 0`; after the last block :math:`o_i = a/\ell`.
By induction :math:`\ell = \sum_{j \text{ seen}} e^{s_{ij} - m}` and :math:`a = \sum_{j \text{
seen}} e^{s_{ij} - m} v_j` after every block, so the result is exactly the softmax above, and
every exponent is again :math:`\le 0`.  Memory is :math:`O(L \cdot \text{chunk} + L E_v)`
instead of :math:`O(L S)`.

**Blocks of queries.**  :func:`scaled_dot_product_attention` computes the softmax above row by
row, exactly, but not all rows at once: each row needs only its own logits, so the queries are
cut into blocks of rows (and the batch into blocks of entries) holding about ``_BLOCK_LOGITS``
logits, and each block runs from logits to output before the next one starts.  Nothing about
the result changes; what changes is that one block's logits (4 MiB in float32) stay in the
processor's caches between the matrix product that writes them, the softmax that reads and
rewrites them and the product with V that reads them last, instead of hundreds of MiB making
the round trip through memory three times.  Cutting along the *keys* instead, as :func:`chunked_attention`
does, is what needs the online softmax, since a row's normaliser is only known once all its
keys have been seen.
"""

from __future__ import annotations

import torch

from visarch.checks import check_bool, check_floating, check_int, check_real

__all__ = ["scaled_dot_product_attention", "attention_weights", "chunked_attention"]

# Logits per block of scaled_dot_product_attention: 2**20 float32 numbers are 4 MiB, small enough
# to stay in the processor's caches from one operation of a block to the next.  Chosen with
# ``python -m benchmarks --keep-freed-memory attention``: 2**18 and 2**22 were slower at T = 1024.
_BLOCK_LOGITS = 2**20


def _check_attention(query, key, value, attn_mask, is_causal, scale, *, where):
    """Validate the arguments; return ``(batch, L, S)`` with ``batch`` the broadcast batch shape."""
    check_floating(where=where, query=query, key=key, value=value)
    ranks = {"query": query.dim(), "key": key.dim(), "value": value.dim()}
    if min(ranks.values()) < 2 or len(set(ranks.values())) > 1:
        raise ValueError(f"query [..., L, E], key [..., S, E] and value [..., S, E_v] must have one rank >= 2, "
                         f"got ranks {ranks}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must have the same feature size E, got {query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key and value must have the same number of tokens S, got {key.shape[-2]} and "
                         f"{value.shape[-2]}")
    try:
        batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"batch axes of query {tuple(query.shape[:-2])}, key {tuple(key.shape[:-2])} and value "
                         f"{tuple(value.shape[:-2])} do not broadcast") from None
    check_bool(is_causal, "is_causal", where=where)
    if scale is not None:
        check_real(scale, "scale", where=where)
    length, source = query.shape[-2], key.shape[-2]
    if attn_mask is not None:
        if is_causal:
            raise ValueError("is_causal=True and an explicit attn_mask exclude each other (as in torch)")
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a torch.Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype != torch.bool:
            if not attn_mask.is_floating_point():
                raise TypeError(f"attn_mask must be bool or floating point, got {attn_mask.dtype}")
            check_floating(where=where, query=query, attn_mask=attn_mask)
        target = (*batch, length, source)
        try:
            fits = torch.broadcast_shapes(attn_mask.shape, target) == target
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} is not broadcastable to [..., L, S] = "
                             f"{list(target)}")
    return batch, length, source


def _scaled(query, scale):
    """``tau * query`` with tau = 1/sqrt(E) by default, E the size of one query (one head's d); scaling
    the [L, E] queries rather than the [L, S] logits saves S/E of the multiplications."""
    return query * (query.shape[-1] ** -0.5 if scale is None else scale)


def _logits(query, key, attn_mask, is_causal, query_offset=0, key_offset=0):
    """Masked logits of the (already scaled) queries ``query_offset, ...`` against keys ``key_offset, ...``."""
    logits = query @ key.transpose(-2, -1)  # [..., L_block, S_block]
    if is_causal:
        rows = torch.arange(query_offset, query_offset + query.shape[-2], device=query.device)
        cols = torch.arange(key_offset, key_offset + key.shape[-2], device=query.device)
        attn_mask = rows[:, None] >= cols[None, :]  # [L_block, S_block], top-left aligned as torch
    if attn_mask is None:
        return logits
    full = torch.broadcast_shapes(logits.shape, attn_mask.shape)
    if full != logits.shape:  # the mask (or the values) bring batch axes that q and k lack
        logits = logits.expand(full).contiguous()
    # in place: a fresh [L, S] matrix per step would cost time and memory, and autograd
    # never needs a matrix product's output
    if attn_mask.dtype == torch.bool:
        return logits.masked_fill_(~attn_mask, float("-inf"))
    return logits.add_(attn_mask)


def _safe_max(logits):
    """Row maxima ``[..., L, 1]``, detached (the result does not depend on them), 0 for all-masked rows."""
    m = logits.detach().amax(-1, keepdim=True)
    return m.masked_fill(m == float("-inf"), 0.0)  # -inf - (-inf) would be nan


def _stable_exp(query, key, attn_mask, is_causal, query_offset=0):
    """``exp(s - m)`` and its row sums ``l`` for scaled queries: the unnormalised softmax, every exponent <= 0."""
    logits = _logits(query, key, attn_mask, is_causal, query_offset)  # [..., L, S]
    p = logits.sub_(_safe_max(logits)).exp_()  # [..., L, S], in place (see _logits)
    return p, p.sum(-1, keepdim=True)  # [..., L, S], [..., L, 1]


def _divide(numerator, normaliser):
    """``numerator / l``, with 0 for rows whose every key is masked out (l = 0), as torch returns."""
    return numerator / normaliser.masked_fill(normaliser == 0, 1.0)


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    r"""The attention weights ``softmax(scale * Q K^T + M)``, ``[..., L, S]`` (zero rows where all keys are masked).

    Checked against ``torch.softmax`` of the masked logits in ``tests/test_attention.py``.

    Args:
        query: ``[..., L, E]``.
        key: ``[..., S, E]``; its batch axes broadcast against those of ``query``.
        attn_mask: boolean (True where key j takes part) or additive float mask, broadcastable to
            ``[..., L, S]``; or ``None``.
        is_causal: mask out every key j > i (top-left aligned); excludes ``attn_mask``.
        scale: the factor :math:`\tau`, by default :math:`1/\sqrt{E}`.

    Returns:
        ``[..., L, S]``, each row summing to one (or zero where every key is masked).
    """
    # no values: key stands in for them
    _check_attention(query, key, key, attn_mask, is_causal, scale, where="attention_weights")
    p, l = _stable_exp(_scaled(query, scale), key, attn_mask, is_causal)
    return _divide(p, l)


def _attend(query, key, value, attn_mask, is_causal, query_offset):
    """One block of exact attention for scaled queries: ``softmax(logits) V``, zeros on all-masked rows.

    ``torch.softmax`` subtracts each row's maximum before exponentiating, as
    :func:`_stable_exp` does, and fuses the three passes (maximum, exponentials and their sum,
    division) into one sweep over each row.
    """
    logits = _logits(query, key, attn_mask, is_causal, query_offset)  # [..., L, S]
    if attn_mask is None:  # no row is all -inf (causal row i keeps keys 0 ... i)
        return torch.softmax(logits, -1) @ value  # [..., L, E_v]
    dead = logits.detach().amax(-1, keepdim=True) == float("-inf")  # [..., L, 1] rows without a key
    if not dead.any():
        return torch.softmax(logits, -1) @ value
    # a row of -inf has no softmax (nan); give it uniform weights, then zero its output and so its gradient
    return (torch.softmax(logits.masked_fill(dead, 0.0), -1) @ value).masked_fill(dead, 0.0)


def scaled_dot_product_attention(query, key, value, attn_mask=None, is_causal=False, scale=None):
    r"""Exact attention ``softmax(scale * Q K^T + M) V``, computed in cache-sized blocks of query rows.

    The arguments of :func:`torch.nn.functional.scaled_dot_product_attention` without dropout
    (``dropout_p`` is 0) and checked against it in ``tests/test_attention.py``.  The batch axes are
    flattened into one axis of B entries and the work runs in blocks of entries and query rows
    (see "Blocks of queries" above).

    Args:
        query: ``[..., L, E]``.
        key: ``[..., S, E]``.
        value: ``[..., S, E_v]``; the batch axes of the three broadcast against each other.
        attn_mask: boolean (True where key j takes part) or additive float mask, broadcastable to
            ``[..., L, S]``; or ``None``.
        is_causal: mask out every key j > i (top-left aligned); excludes ``attn_mask``.
        scale: the factor :math:`\tau`, by default :math:`1/\sqrt{E}`.

    Returns:
        ``[..., L, E_v]``, zeros in the rows whose keys are all masked.
    """
    batch, length, source = _check_attention(query, key, value, attn_mask, is_causal, scale,
                                             where="scaled_dot_product_attention")
    e, e_v = query.shape[-1], value.shape[-1]
    # reshape copies only a tensor that broadcasts along a batch axis (a mask shared by all
    # heads of one image, say); everything else is a view
    q = _scaled(query, scale).expand(*batch, length, e).reshape(-1, length, e)  # [B, L, E]
    k = key.expand(*batch, source, e).reshape(-1, source, e)  # [B, S, E]
    v = value.expand(*batch, source, e_v).reshape(-1, source, e_v)  # [B, S, E_v]
    mask = None if attn_mask is None else attn_mask.expand(*batch, length, source).reshape(-1, length, source)
    entries = max(1, _BLOCK_LOGITS // max(1, length * source))  # whole entries per block while they fit,
    rows = length if entries > 1 else max(1, _BLOCK_LOGITS // max(1, source))  # else row slices of one
    if entries >= q.shape[0] and rows >= length:  # one block: no copy into an output buffer
        return _attend(q, k, v, mask, is_causal, 0).view(*batch, length, e_v)
    out = q.new_empty(q.shape[0], length, e_v)  # [B, L, E_v]
    for first in range(0, q.shape[0], entries):
        b = slice(first, first + entries)
        for row in range(0, length, rows):
            r = slice(row, row + rows)
            out[b, r] = _attend(q[b, r], k[b], v[b], None if mask is None else mask[b, r], is_causal, row)
    return out.view(*batch, length, e_v)


def chunked_attention(query, key, value, *, chunk_size=256, attn_mask=None, is_causal=False, scale=None):
    r"""Memory-efficient attention: the same result, keys visited ``chunk_size`` at a time (online softmax).

    Peak extra memory is ``O(L * chunk_size)`` per batch entry instead of ``O(L * S)``.  Checked
    against :func:`torch.nn.functional.scaled_dot_product_attention` and
    :func:`~visarch.functional.attention.scaled_dot_product_attention` in ``tests/test_attention.py``.

    Args:
        query: ``[..., L, E]``.
        key: ``[..., S, E]``.
        value: ``[..., S, E_v]``; the batch axes of the three broadcast against each other.
        chunk_size: the number of keys per block, at least 1.
        attn_mask: boolean (True where key j takes part) or additive float mask, broadcastable to
            ``[..., L, S]``; or ``None``.
        is_causal: mask out every key j > i (top-left aligned); excludes ``attn_mask``.
        scale: the factor :math:`\tau`, by default :math:`1/\sqrt{E}`.

    Returns:
        ``[..., L, E_v]``, as :func:`~visarch.functional.attention.scaled_dot_product_attention`.
    """
    batch, length, source = _check_attention(query, key, value, attn_mask, is_causal, scale, where="chunked_attention")
    check_int(chunk_size, "chunk_size", where="chunked_attention", ge=1)
    if attn_mask is not None:
        attn_mask = attn_mask.expand(*batch, length, source)  # a view: nothing is copied
    query = _scaled(query, scale)  # [..., L, E], once for all blocks
    kw = {"dtype": query.dtype, "device": query.device}
    m = torch.full((*batch, length, 1), float("-inf"), **kw)  # running maximum
    l = torch.zeros((*batch, length, 1), **kw)  # running normaliser
    acc = torch.zeros((*batch, length, value.shape[-1]), **kw)  # running unnormalised output
    for start in range(0, source, chunk_size):
        block = slice(start, start + chunk_size)
        mask = None if attn_mask is None else attn_mask[..., block]
        logits = _logits(query, key[..., block, :], mask, is_causal, key_offset=start)  # [..., L, c]
        m_new = torch.maximum(m, logits.detach().amax(-1, keepdim=True))
        m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # no key seen yet: avoid -inf - (-inf)
        correction = (m - m_safe).exp()  # e^{m - m'}, 0 while m = -inf
        p = logits.sub_(m_safe).exp_()  # [..., L, c], in place (see _logits)
        l = correction * l + p.sum(-1, keepdim=True)
        # in place (correction carries no gradient, so autograd keeps no copy of acc): no second [L, E_v]
        acc = acc.mul_(correction).add_(p @ value[..., block, :])  # [..., L, E_v]
        m = m_new
        del logits, p  # free this block before the next one is allocated: one block alive at a time
    return _divide(acc, l)
