"""Transformer blocks checked against torch.nn's layers; positional encoding against the paper's formula."""

import math

import pytest
import torch
from torch import nn

from visarch.nn import (
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    TransformerSeq2Seq,
    causal_mask,
    sinusoidal_embeddings,
)

B, S, T, D, H, F = 3, 7, 5, 16, 4, 24


def paper_pe(length, dim):
    """Vaswani et al. (2017), section 3.5, written entry by entry."""
    return torch.tensor([[math.sin(t / 10000 ** (j / dim)) if j % 2 == 0 else math.cos(t / 10000 ** ((j - 1) / dim))
                          for j in range(dim)] for t in range(length)])


def test_positional_encoding_is_the_papers():
    for length, dim in [(1, 2), (10, 8), (50, 32)]:
        assert torch.allclose(sinusoidal_embeddings(length, dim), paper_pe(length, dim).float(), atol=1e-6)


def test_positional_encoding_errors():
    with pytest.raises(ValueError, match="even dimension D, got D=7"):
        sinusoidal_embeddings(4, 7)
    with pytest.raises(ValueError, match="sequence length T must be >= 1, got 0"):
        sinusoidal_embeddings(0, 8)
    with pytest.raises(TypeError, match="dimension D must be an int, got float"):
        sinusoidal_embeddings(4, 8.0)
    pe = SinusoidalPositionalEncoding(dim=8, max_len=4)
    assert torch.equal(pe(torch.zeros(2, 3, 8)), sinusoidal_embeddings(3, 8).expand(2, 3, 8))
    with pytest.raises(ValueError, match="T=5 exceeds the positional table's max_len=4"):
        pe(torch.zeros(1, 5, 8))


def _torch_name(name):
    """The torch.nn layer's parameter holding (part of) ours: q, k, v are packed there as in_proj rows."""
    for mine, theirs in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
        for p in ("query", "key", "value"):
            name = name.replace(f"{mine}.{p}.", f"{theirs}.in_proj_")
        name = name.replace(f"{mine}.out.", f"{theirs}.out_proj.")
    for i in range(3):
        name = name.replace(f"norms.{i}.", f"norm{i + 1}.")
    return name


def check_same_gradients(block, ref, inputs, y, y_ref):
    """Forward outputs, input gradients and every weight gradient agree (q, k, v re-packed as torch does)."""
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y)
    names, params = zip(*block.named_parameters(), strict=True)
    g_mine = torch.autograd.grad(y, [*inputs, *params], g)
    ref_names, ref_params = zip(*ref.named_parameters(), strict=True)
    g_ref = torch.autograd.grad(y_ref, [*inputs, *ref_params], g)
    for a, b in zip(g_mine[: len(inputs)], g_ref[: len(inputs)], strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    packed = {}
    for name, grad in zip(names, g_mine[len(inputs):], strict=True):
        packed.setdefault(_torch_name(name), []).append(grad)
    theirs = dict(zip(ref_names, g_ref[len(inputs):], strict=True))
    assert set(packed) == set(theirs)
    for name, grads in packed.items():
        assert torch.allclose(torch.cat(grads), theirs[name], rtol=0, atol=1e-12), name


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_equals_torch_forward_backward(norm_first):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(D, H, F, dropout=0.0, batch_first=True, norm_first=norm_first,
                                     dtype=torch.float64)
    block = TransformerEncoderBlock.from_torch(ref)
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[0, -2:] = True
    for mask, pad in [(None, None), (causal_mask(S), None), (None, padding), (causal_mask(S), padding)]:
        x = torch.randn(B, S, D, dtype=torch.float64, requires_grad=True)
        y_ref = ref(x, src_mask=mask, src_key_padding_mask=pad)
        check_same_gradients(block, ref, [x], block(x, attn_mask=mask, key_padding_mask=pad), y_ref)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_equals_torch_forward_backward(norm_first):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(D, H, F, dropout=0.0, batch_first=True, norm_first=norm_first,
                                     dtype=torch.float64)
    block = TransformerDecoderBlock.from_torch(ref)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(B, S, D, dtype=torch.float64, requires_grad=True)
    mem_pad = torch.zeros(B, S, dtype=torch.bool)
    mem_pad[1, -3:] = True
    tgt_pad = torch.zeros(B, T, dtype=torch.bool)
    tgt_pad[2, -1] = True
    y_ref = ref(x, memory, tgt_mask=causal_mask(T), tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
    y = block(x, memory, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
    check_same_gradients(block, ref, [x, memory], y, y_ref)


def test_decoder_is_causal_and_cross_attends():
    torch.manual_seed(2)
    block = TransformerDecoderBlock(dim=D, heads=H, ffn_dim=F).eval()
    x, memory = torch.randn(1, T, D), torch.randn(1, S, D)
    y, w = block(x, memory, need_weights=True)
    assert w.shape == (1, H, T, S)
    x2 = x.clone()
    x2[:, -1] += 1.0  # changing the last token leaves every earlier output unchanged
    assert torch.allclose(block(x2, memory)[:, :-1], y[:, :-1], atol=1e-6)
    assert not torch.allclose(block(x2, memory)[:, -1], y[:, -1])


def test_bad_input():
    with pytest.raises(ValueError, match="number of heads h=3 does not divide model dimension D=16"):
        TransformerEncoderBlock(dim=16, heads=3, ffn_dim=8)
    with pytest.raises(ValueError, match="dropout probability must be in"):
        TransformerEncoderBlock(dim=16, heads=4, ffn_dim=8, dropout=1.0)
    block = TransformerEncoderBlock(dim=D, heads=H, ffn_dim=F)
    x = torch.randn(B, S, D)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(7, 7\), got \(6, 6\)"):
        block(x, attn_mask=causal_mask(6))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(3, 7\), got \(7,\)"):
        block(x, key_padding_mask=torch.zeros(S, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask must be boolean .* got dtype torch.int64"):
        block(x, attn_mask=torch.zeros(S, S, dtype=torch.long))
    with pytest.raises(ValueError, match="queries must be"):
        block(torch.randn(B, S, D + 1))
    dec = TransformerDecoderBlock(dim=D, heads=H, ffn_dim=F)
    with pytest.raises(ValueError, match="share the batch size"):
        dec(torch.randn(2, T, D), torch.randn(3, S, D))


def test_from_torch_refuses_other_activations():
    with pytest.raises(ValueError, match="ReLU activation"):
        TransformerEncoderBlock.from_torch(nn.TransformerEncoderLayer(D, H, F, activation="gelu", batch_first=True))


def test_float_mask_equals_bool_mask():
    attn = MultiHeadAttention(dim=D, heads=H)
    x = torch.randn(B, S, D)
    float_mask = torch.zeros(S, S).masked_fill(causal_mask(S), -math.inf)
    assert torch.allclose(attn(x, attn_mask=causal_mask(S)), attn(x, attn_mask=float_mask))


def test_seq2seq_shapes_and_decoding():
    torch.manual_seed(3)
    model = TransformerSeq2Seq(vocab=12, dim=16, heads=2, ffn_dim=32, layers=2)
    src, tgt = torch.randint(0, 12, (2, 6)), torch.randint(0, 12, (2, 4))
    logits, maps = model.decode(tgt, model.encode(src), need_weights=True)
    assert logits.shape == (2, 4, 12) and [m.shape for m in maps] == [(2, 2, 4, 6)] * 2
    out = model.greedy_decode(src, start=10, steps=5)
    assert out.shape == (2, 6) and (out[:, 0] == 10).all()
    # greedy decoding is the argmax of the one-pass (teacher-forced) logits on its own output
    assert torch.equal(model(src, out[:, :-1]).argmax(-1), out[:, 1:])
