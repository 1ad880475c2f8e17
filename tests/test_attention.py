"""Scaled dot-product attention and multi-head self-attention of ``visarch`` agree with torch.

What this file proves, each time against a source independent of the code under test:

* ``scaled_dot_product_attention`` gives the output of ``torch.nn.functional.scaled_dot_product_attention``
  and the same gradients for query, key and value (torch's autograd through torch's function), with
  boolean masks, float masks (with -inf entries), causal masks, L != S, broadcast batch and head axes,
  and a given or default scale; rows whose keys are all masked out give torch's zeros; the same
  holds when the work is cut into blocks of a few logits (many blocks of entries and query rows);
* ``attention_weights`` is torch's softmax of the masked, scaled logits;
* ``chunked_attention`` gives torch's output and gradients to 1e-6 for every chunk size from 1 to
  beyond S, and stays finite (and equal to torch's) with logits of magnitude 1e4, where a softmax
  without the max subtraction overflows;
* ``MultiHeadSelfAttention`` and ``MultiHeadSelfAttention2d`` equal ``torch.nn.MultiheadAttention``
  (outputs and head-averaged weights) once weights are copied, both ways; the image module reads
  pixel (i, j) as token i W + j (checked with an explicit loop over pixels); the parameter count is
  4D^2 + 4D (4D^2 without bias), as torch's module counts too, and 4KdD + 3Kd + D for a general d;
* permuting the pixels permutes the output in the same way (flips, transposes, rolls and a random
  permutation matrix, built without the module's reshapes);
* bad arguments raise the documented exception with a message naming the violated condition.
"""

from __future__ import annotations

import dataclasses
import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visarch.functional import attention as attention_module
from visarch.functional.attention import attention_weights, chunked_attention, scaled_dot_product_attention
from visarch.nn import MultiHeadSelfAttention, MultiHeadSelfAttention2d

TOL = {"rtol": 1e-10, "atol": 1e-12}  # float64, sums of at most S = 9 terms: rounding only
CHUNK_TOL = {"rtol": 1e-6, "atol": 1e-6}  # the brief's tolerance for the chunked recurrence


# --------------------------------------------------------------------------- configurations


@dataclasses.dataclass(frozen=True)
class AttnCase:
    """Shapes of q [*bq, L, E], k [*bk, S, E], v [*bv, S, Ev]; the mask kind and shape; the scale."""

    q_batch: tuple[int, ...]
    k_batch: tuple[int, ...]
    v_batch: tuple[int, ...]
    length: int
    source: int
    e: int
    ev: int
    mask: str  # "none", "bool", "float", "causal"
    mask_shape: tuple[int, ...]
    scale: float | None
    seed: int

    def tensors(self, requires_grad=False, magnitude=1.0):
        gen = torch.Generator().manual_seed(self.seed)

        def randn(*shape):
            t = magnitude * torch.randn(*shape, generator=gen, dtype=torch.float64)
            return t.requires_grad_(requires_grad)

        q = randn(*self.q_batch, self.length, self.e)
        k = randn(*self.k_batch, self.source, self.e)
        v = torch.randn(*self.v_batch, self.source, self.ev, generator=gen, dtype=torch.float64)
        v.requires_grad_(requires_grad)
        kwargs = {"scale": self.scale}
        if self.mask == "causal":
            kwargs["is_causal"] = True
        elif self.mask == "bool":
            kwargs["attn_mask"] = torch.rand(self.mask_shape, generator=gen) < 0.7  # some rows all False
        elif self.mask == "float":
            values = torch.randn(self.mask_shape, generator=gen, dtype=torch.float64)
            kwargs["attn_mask"] = values.masked_fill(torch.rand(self.mask_shape, generator=gen) < 0.3, -math.inf)
        return q, k, v, kwargs, gen


@st.composite
def attn_cases(draw, masks=("none", "bool", "float", "causal")):
    """Random shapes; batch axes of q, k, v (same rank) broadcast against each other, as torch allows."""
    rank = draw(st.integers(0, 2))
    full = [draw(st.integers(1, 3)) for _ in range(rank)]

    def batch():  # each axis: the full size or a broadcast 1
        return tuple(n if draw(st.booleans()) else 1 for n in full)

    q_batch, k_batch, v_batch = batch(), batch(), batch()
    if rank:  # at least one of them has each full size
        q_batch = tuple(full)
    length, source = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    mask = draw(st.sampled_from(masks))
    mask_rank = draw(st.integers(0, rank))  # a mask may leave out leading batch axes
    mask_batch = tuple(n if draw(st.booleans()) else 1 for n in full[rank - mask_rank:])
    rows = length if draw(st.booleans()) else 1  # a [.., 1, S] mask is a per-key (padding) mask
    return AttnCase(
        q_batch=q_batch, k_batch=k_batch, v_batch=v_batch, length=length, source=source,
        e=draw(st.integers(1, 5)), ev=draw(st.integers(1, 5)), mask=mask,
        mask_shape=(*mask_batch, rows, source),
        scale=draw(st.one_of(st.none(), st.floats(0.05, 3.0))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def assert_matches_torch(fn, case, tol=TOL, magnitude=1.0):
    """``fn`` gives torch's output and torch's gradients of q, k, v for a random upstream gradient."""
    q, k, v, kwargs, gen = case.tensors(requires_grad=True, magnitude=magnitude)
    expected = F.scaled_dot_product_attention(q, k, v, **kwargs)
    actual = fn(q, k, v, **kwargs)
    assert actual.shape == expected.shape
    assert_close(actual, expected, **tol)
    grad_out = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    expected_grads = torch.autograd.grad(expected, (q, k, v), grad_out)
    actual_grads = torch.autograd.grad(actual, (q, k, v), grad_out)
    for name, got, want in zip("qkv", actual_grads, expected_grads, strict=True):
        assert_close(got, want, **tol, msg=lambda m, name=name: f"gradient wrt {name}: {m}")


# --------------------------------------------------------------------------- exact attention


@settings(max_examples=300, deadline=None)
@given(case=attn_cases())
def test_sdpa_matches_torch(case):
    assert_matches_torch(scaled_dot_product_attention, case)


@settings(max_examples=100, deadline=None)
@given(case=attn_cases(masks=("none", "bool", "float", "causal")))
def test_attention_weights_are_torch_softmax(case):
    q, k, _, kwargs, _ = case.tensors()
    tau = 1 / math.sqrt(case.e) if case.scale is None else case.scale
    logits = tau * q @ k.transpose(-2, -1)
    if kwargs.get("is_causal"):
        keep = torch.ones(case.length, case.source, dtype=torch.bool).tril()
        logits = logits.masked_fill(~keep, -math.inf)
    elif "attn_mask" in kwargs:
        mask = kwargs["attn_mask"]
        logits = logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask
    expected = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # torch's softmax: nan on all-masked rows
    assert_close(attention_weights(q, k, **kwargs), expected, **TOL)


@settings(max_examples=150, deadline=None)
@given(case=attn_cases(), block=st.sampled_from([1, 2, 5, 13, 40]))
def test_sdpa_in_small_blocks_matches_torch(case, block):
    """With blocks of a few logits the batch and the query rows are cut into many pieces
    (in the cases above everything fits in one block); the result must not change."""
    with mock.patch.object(attention_module, "_BLOCK_LOGITS", block):
        assert_matches_torch(scaled_dot_product_attention, case)


def test_all_masked_rows_give_zeros_like_torch():
    q, k, v = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64), \
        torch.randn(2, 5, 6, dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    for attn_mask in (mask, torch.zeros(3, 5, dtype=torch.float64).masked_fill(~mask, -math.inf)):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        assert torch.equal(expected[:, 1], torch.zeros(2, 6, dtype=torch.float64))  # torch's own convention
        for out in (scaled_dot_product_attention(q, k, v, attn_mask=attn_mask),
                    chunked_attention(q, k, v, attn_mask=attn_mask, chunk_size=2)):
            assert_close(out, expected, **TOL)


# --------------------------------------------------------------------------- chunked attention


@settings(max_examples=200, deadline=None)
@given(case=attn_cases(), data=st.data())
def test_chunked_matches_torch(case, data):
    chunk = data.draw(st.integers(1, case.source + 3), label="chunk_size")  # 1 ... beyond S
    assert_matches_torch(lambda q, k, v, **kw: chunked_attention(q, k, v, chunk_size=chunk, **kw),
                         case, tol=CHUNK_TOL)
    q, k, v, kwargs, _ = case.tensors()
    assert_close(chunked_attention(q, k, v, chunk_size=chunk, **kwargs),
                 scaled_dot_product_attention(q, k, v, **kwargs), **CHUNK_TOL)


@pytest.mark.parametrize("chunk", [1, 3, 16, 64, 100])
@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_chunked_on_longer_sequences(chunk, mask):
    case = AttnCase(q_batch=(2, 3), k_batch=(2, 3), v_batch=(1, 3), length=37, source=64, e=8, ev=5,
                    mask=mask, mask_shape=(37, 64), scale=None, seed=chunk)
    assert_matches_torch(lambda q, k, v, **kw: chunked_attention(q, k, v, chunk_size=chunk, **kw),
                         case, tol=CHUNK_TOL)


@pytest.mark.parametrize("fn", [
    pytest.param(scaled_dot_product_attention, id="exact"),
    pytest.param(lambda q, k, v, **kw: chunked_attention(q, k, v, chunk_size=3, **kw), id="chunked-3"),
    pytest.param(lambda q, k, v, **kw: chunked_attention(q, k, v, chunk_size=1, **kw), id="chunked-1"),
])
@pytest.mark.parametrize("mask", ["none", "bool", "causal"])
def test_large_logits_are_stable(fn, mask):
    """Logits of magnitude 1e4: finite, and equal to torch's float64 result where torch is finite."""
    case = AttnCase(q_batch=(2,), k_batch=(2,), v_batch=(2,), length=6, source=11, e=4, ev=3, mask=mask,
                    mask_shape=(6, 11), scale=None, seed=7)
    q, k, v, kwargs, _ = case.tensors(magnitude=100.0)  # q.k / sqrt(4) ~ 1e4
    logits = q @ k.transpose(-2, -1) / 2
    assert logits.abs().max() > 1e4
    assert torch.exp(logits).isinf().any(), "without the max subtraction the softmax would overflow"
    for dtype in (torch.float64, torch.float32):
        args = [t.to(dtype) for t in (q, k, v)]
        out = fn(*args, **kwargs)
        assert torch.isfinite(out).all()
        expected = F.scaled_dot_product_attention(*args, **kwargs)
        finite = torch.isfinite(expected)
        assert finite.all()
        tol = TOL if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
        assert_close(out[finite], expected[finite], **tol)
    assert_matches_torch(fn, case, tol=CHUNK_TOL, magnitude=100.0)  # gradients too


# --------------------------------------------------------------------------- modules


@st.composite
def module_cases(draw):
    heads = draw(st.integers(1, 4))
    return {"embed_dim": heads * draw(st.integers(1, 4)), "num_heads": heads, "bias": draw(st.booleans()),
            "n": draw(st.integers(1, 3)), "h": draw(st.integers(1, 4)), "w": draw(st.integers(1, 4)),
            "seed": draw(st.integers(0, 2**32 - 1))}


def random_image_module(case):
    torch.manual_seed(case["seed"])
    module = MultiHeadSelfAttention2d(embed_dim=case["embed_dim"], num_heads=case["num_heads"], bias=case["bias"])
    module = module.double()
    with torch.no_grad():  # torch's MultiheadAttention starts with zero biases: make them count
        for p in module.parameters():
            p.normal_()
    x = torch.randn(case["n"], case["embed_dim"], case["h"], case["w"], dtype=torch.float64)
    return module, x


def tokens_by_loop(x):
    """[N, C, H, W] -> [N, HW, C] with token i W + j = pixel (i, j), one pixel at a time."""
    n, _, h, w = x.shape
    return torch.stack([torch.stack([x[b, :, i, j] for i in range(h) for j in range(w)]) for b in range(n)])


@settings(max_examples=60, deadline=None)
@given(case=module_cases())
def test_image_module_equals_torch_multihead_attention(case):
    module, x = random_image_module(case)
    mha = module.to_torch()
    assert isinstance(mha, torch.nn.MultiheadAttention) and mha.batch_first
    tokens = tokens_by_loop(x)
    expected, expected_weights = mha(tokens, tokens, tokens)  # weights averaged over heads
    y, weights = module(x, need_weights=True)
    assert y.shape == x.shape
    assert_close(tokens_by_loop(y), expected, **TOL)
    assert_close(weights, expected_weights, **TOL)
    assert_close(module.attention(tokens), expected, **TOL)
    assert_close(module(x[0]), y[0], **TOL)  # unbatched [C, H, W]

    back = MultiHeadSelfAttention2d.from_torch(mha)  # and the other way round
    assert_close(back(x), y, **TOL)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("embed_dim, num_heads", [(1, 1), (8, 2), (12, 3), (64, 8)])
def test_parameter_count(embed_dim, num_heads, bias):
    d = embed_dim
    module = MultiHeadSelfAttention2d(embed_dim=d, num_heads=num_heads, bias=bias)
    count = sum(p.numel() for p in module.parameters())
    assert count == (4 * d * d + 4 * d if bias else 4 * d * d)
    torch_count = sum(p.numel() for p in torch.nn.MultiheadAttention(d, num_heads, bias=bias).parameters())
    assert count == torch_count


@pytest.mark.parametrize("embed_dim, num_heads, head_dim", [(6, 4, 5), (8, 3, 2), (5, 1, 7)])
def test_parameter_count_general_head_dim(embed_dim, num_heads, head_dim):
    """The notes allow K d != D: 3K(Dd + d) projections in, KdD + D out."""
    module = MultiHeadSelfAttention(embed_dim=embed_dim, num_heads=num_heads, head_dim=head_dim)
    big_d, k, d = embed_dim, num_heads, head_dim
    assert sum(p.numel() for p in module.parameters()) == 4 * k * d * big_d + 3 * k * d + big_d
    x = torch.randn(2, 5, embed_dim)
    assert module(x).shape == x.shape


def test_head_split_is_the_notes_per_head_formula():
    """Head h uses rows h d ... (h+1) d - 1 of each projection and scale 1/sqrt(d), d = D/K (not D)."""
    torch.manual_seed(3)
    big_d, k = 12, 3
    d = big_d // k
    module = MultiHeadSelfAttention(embed_dim=big_d, num_heads=k).double()
    x = torch.randn(7, big_d, dtype=torch.float64)  # one sequence [T, D]
    heads = []
    for h in range(k):
        rows = slice(h * d, (h + 1) * d)
        q, kk, v = ((x @ p.weight[rows].T + p.bias[rows]) for p in (module.query, module.key, module.value))
        heads.append(torch.softmax(q @ kk.T / math.sqrt(d), dim=-1) @ v)  # [T, d]
    expected = torch.cat(heads, dim=-1) @ module.out.weight.T + module.out.bias  # [T, Kd] V + b
    assert_close(module(x), expected, **TOL)


@pytest.mark.parametrize("h, w", [(3, 3), (2, 5)])
def test_permutation_equivariance_over_pixels(h, w):
    torch.manual_seed(0)
    module = MultiHeadSelfAttention2d(embed_dim=6, num_heads=2).double()
    x = torch.randn(2, 6, h, w, dtype=torch.float64)
    y = module(x)
    assert_close(module(x.flip(-1)), y.flip(-1), **TOL)
    assert_close(module(x.flip(-2)), y.flip(-2), **TOL)
    assert_close(module(x.transpose(-1, -2)), y.transpose(-1, -2), **TOL)  # a W x H image
    assert_close(module(x.roll((1, 2), dims=(-2, -1))), y.roll((1, 2), dims=(-2, -1)), **TOL)
    # an arbitrary permutation of the HW pixels, as a permutation matrix P[a, b] = 1 if a = perm(b)
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(1))
    p = torch.zeros(h * w, h * w, dtype=torch.float64)
    p[perm, torch.arange(h * w)] = 1.0

    def permute(image):  # moves pixel perm(b) to position b, with explicit pixel indexing
        out = torch.empty_like(image)
        for b in range(h * w):
            a = int((p[:, b] == 1).nonzero())
            out[..., b // w, b % w] = image[..., a // w, a % w]
        return out

    assert_close(module(permute(x)), permute(y), **TOL)
    assert not torch.allclose(permute(y), y)


# --------------------------------------------------------------------------- bad arguments


def zeros(*shape, dtype=torch.float64):
    return torch.zeros(shape, dtype=dtype)


# A valid call, which each case breaks in one way: q [2, 3, 4], k [2, 5, 4], v [2, 5, 6].
VALID = {"query": zeros(2, 3, 4), "key": zeros(2, 5, 4), "value": zeros(2, 5, 6)}


@dataclasses.dataclass(frozen=True)
class BadCase:
    id: str
    changes: dict
    exc: type[Exception]
    match: str
    # whether torch rejects it too: torch broadcasts unequal ranks, and accepts a float32 mask
    # with float64 queries (promoting silently), where we ask for the query's dtype
    torch_raises: bool = True


BAD_CASES = [
    BadCase("mask-rows-not-L", {"attn_mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError,
            r"attn_mask of shape \(4, 5\) is not broadcastable to \[\.\.\., L, S\] = \[2, 3, 5\]"),
    BadCase("mask-cols-not-S", {"attn_mask": zeros(3, 4)}, ValueError,
            r"attn_mask of shape \(3, 4\) is not broadcastable to \[\.\.\., L, S\] = \[2, 3, 5\]"),
    BadCase("mask-extra-batch-axis", {"attn_mask": zeros(3, 2, 3, 5)}, ValueError,
            r"attn_mask of shape \(3, 2, 3, 5\) is not broadcastable", torch_raises=False),
    BadCase("mask-batch-mismatch", {"attn_mask": zeros(4, 3, 5)}, ValueError,
            r"attn_mask of shape \(4, 3, 5\) is not broadcastable"),
    BadCase("mask-integer", {"attn_mask": torch.ones(3, 5, dtype=torch.int64)}, TypeError,
            r"attn_mask must be bool or floating point, got torch.int64"),
    BadCase("mask-float32", {"attn_mask": zeros(3, 5, dtype=torch.float32)}, TypeError,
            r"dtypes must match \(query: torch.float64, attn_mask: torch.float32\)", torch_raises=False),
    BadCase("mask-list", {"attn_mask": [[True] * 5] * 3}, TypeError, r"attn_mask must be a torch.Tensor, got list"),
    BadCase("causal-and-mask", {"attn_mask": torch.ones(3, 5, dtype=torch.bool), "is_causal": True}, ValueError,
            r"is_causal=True and an explicit attn_mask exclude each other"),
    BadCase("is-causal-int", {"is_causal": 1}, TypeError, r"is_causal must be a bool, got int", torch_raises=False),
    BadCase("scale-string", {"scale": "0.5"}, TypeError, r"scale must be a real number, got str"),
    BadCase("rank-mismatch", {"key": zeros(5, 4), "value": zeros(5, 6)}, ValueError,
            r"must have one rank >= 2, got ranks \{'query': 3, 'key': 2, 'value': 2\}", torch_raises=False),
    BadCase("rank-1", {"query": zeros(4), "key": zeros(4), "value": zeros(6)}, ValueError,
            r"must have one rank >= 2, got ranks \{'query': 1, 'key': 1, 'value': 1\}"),
    BadCase("feature-size-mismatch", {"key": zeros(2, 5, 3)}, ValueError,
            r"query and key must have the same feature size E, got 4 and 3"),
    BadCase("token-count-mismatch", {"value": zeros(2, 4, 6)}, ValueError,
            r"key and value must have the same number of tokens S, got 5 and 4"),
    BadCase("batch-not-broadcastable", {"key": zeros(3, 5, 4), "value": zeros(3, 5, 6)}, ValueError,
            r"batch axes of query \(2,\), key \(3,\) and value \(3,\) do not broadcast"),
    BadCase("dtype-mismatch", {"key": zeros(2, 5, 4, dtype=torch.float32)}, TypeError,
            r"dtypes must match \(query: torch.float64, key: torch.float32, value: torch.float64\)"),
    BadCase("integer-query", {"query": zeros(2, 3, 4, dtype=torch.int64)}, TypeError,
            r"query must have a floating-point dtype, got torch.int64"),
    BadCase("value-list", {"value": [[0.0]]}, TypeError, r"value must be a torch.Tensor, got list"),
]


def chunked_3(query, key, value, **kwargs):
    return chunked_attention(query, key, value, chunk_size=3, **kwargs)


@pytest.mark.parametrize("fn", [scaled_dot_product_attention, chunked_3], ids=["exact", "chunked"])
@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.id)
def test_bad_input_raises(fn, case):
    args = {**VALID, **case.changes}
    with pytest.raises(case.exc, match=case.match):
        fn(**args)
    if case.torch_raises:  # the call is invalid for torch as well, not only for us
        with pytest.raises((RuntimeError, TypeError, ValueError, IndexError)):
            F.scaled_dot_product_attention(**args)


@pytest.mark.parametrize("chunk_size, exc, match", [
    (0, ValueError, r"chunk_size must be >= 1, got 0"),
    (-2, ValueError, r"chunk_size must be >= 1, got -2"),
    (2.0, TypeError, r"chunk_size must be an int, got float"),
    (True, TypeError, r"chunk_size must be an int, got bool"),
])
def test_bad_chunk_size_raises(chunk_size, exc, match):
    with pytest.raises(exc, match=match):
        chunked_attention(**VALID, chunk_size=chunk_size)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"embed_dim": 10, "num_heads": 3}, ValueError, r"number of heads K=3 does not divide embedding dimension D=10"),
    ({"embed_dim": 0, "num_heads": 1}, ValueError, r"embedding dimension D \(embed_dim\) must be >= 1, got 0"),
    ({"embed_dim": 4, "num_heads": 0}, ValueError, r"number of heads K \(num_heads\) must be >= 1, got 0"),
    ({"embed_dim": 4, "num_heads": 2, "head_dim": 0}, ValueError, r"head dimension d \(head_dim\) must be >= 1"),
    ({"embed_dim": 4.0, "num_heads": 2}, TypeError, r"embedding dimension D \(embed_dim\) must be an int, got float"),
])
def test_bad_module_arguments_raise(kwargs, exc, match):
    for cls in (MultiHeadSelfAttention, MultiHeadSelfAttention2d):
        with pytest.raises(exc, match=match):
            cls(**kwargs)


def test_bad_module_inputs_raise():
    module = MultiHeadSelfAttention2d(embed_dim=4, num_heads=2)
    with pytest.raises(ValueError, match=r"x has C=3 channels, expected embed_dim C=4"):
        module(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"x must have rank 4 \[N, C, H, W\] \(or 3 \[C, H, W\]\), got rank 2"):
        module(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"x has embedding dimension 3, expected D=4"):
        module.attention(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match=r"torch's MultiheadAttention needs K d = D, got K=2, d=3, D=4"):
        MultiHeadSelfAttention(embed_dim=4, num_heads=2, head_dim=3).to_torch()
    with pytest.raises(ValueError, match=r"dropout 0"):
        MultiHeadSelfAttention.from_torch(torch.nn.MultiheadAttention(4, 2, dropout=0.1))
    with pytest.raises(TypeError, match=r"mha must be a torch.nn.MultiheadAttention, got Linear"):
        MultiHeadSelfAttention.from_torch(torch.nn.Linear(4, 4))


def test_valid_args_are_valid():
    """The base call of the table works, so each case fails for the one change it makes."""
    expected = F.scaled_dot_product_attention(**VALID)
    assert_close(scaled_dot_product_attention(**VALID), expected)
    assert_close(chunked_3(**VALID), expected)
