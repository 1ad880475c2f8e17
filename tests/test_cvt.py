"""CvT (its size and cost: tests/test_cost_models.py): the token maps per stage, the squeezed keys and values, the
convolutional projection against ordinary multi-head attention, and bad configurations and inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.models import create, get_config
from visarch.models.cvt import ConvAttention, CvTConfig
from visarch.tolerance import reduction_tolerance


def test_token_maps_per_stage_and_output():
    with torch.device("meta"):
        model = create("cvt_13")
        maps, cls = model.features(torch.empty(2, 3, 224, 224))
        assert [tuple(f.shape) for f in maps] == [(2, 64, 56, 56), (2, 192, 28, 28), (2, 384, 14, 14)]
        assert cls.shape == (2, 384) and model(torch.empty(2, 3, 224, 224)).shape == (2, 1000)
    assert get_config("cvt_13").map_sizes() == [56, 28, 14] and get_config("cvt_13").total_stride == 16
    model = create("cvt_small")
    maps, _ = model.features(torch.randn(2, 1, 8, 8))
    assert [tuple(f.shape) for f in maps] == [(2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2)]
    assert not any("pos" in name for name, _ in model.named_parameters())  # no position embedding anywhere


def test_squeezed_keys_and_values_have_a_quarter_of_the_tokens():
    torch.manual_seed(0)
    for side, dim, heads, with_cls in ((56, 64, 1, False), (28, 192, 3, False), (14, 48, 6, True)):
        attn = ConvAttention(dim, heads=heads).eval()
        x = torch.randn(2, side * side + with_cls, dim)
        grid = x[:, int(with_cls):].transpose(1, 2).reshape(2, dim, side, side)
        cls = x[:, :1] if with_cls else None
        q, k, v = (p(grid, cls) for p in (attn.q, attn.k, attn.v))
        assert q.shape[1] == side * side + with_cls
        assert k.shape[1] == v.shape[1] == (side // 2) ** 2 + with_cls  # 784 = 3136 / 4, 196 = 784 / 4, 1 + 49
        assert attn(x, side, side, with_cls=with_cls).shape == x.shape


def copy_into_mha(attn: ConvAttention, dim: int, heads: int) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([p.pointwise.weight for p in (attn.q, attn.k, attn.v)]))
        mha.in_proj_bias.copy_(torch.cat([p.pointwise.bias for p in (attn.q, attn.k, attn.v)]))
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
    return mha.eval()


def test_identity_convolutional_projection_is_ordinary_multi_head_attention():
    torch.manual_seed(0)
    for dim, heads, side, with_cls in ((8, 1, 3, False), (12, 3, 4, True), (32, 4, 5, False), (24, 2, 2, True)):
        attn = ConvAttention(dim, heads=heads, kernel_size=1, kv_stride=1).eval()
        with torch.no_grad():
            for p in (attn.q, attn.k, attn.v):
                p.depthwise.weight.fill_(1.0)  # a 1x1 depthwise kernel of ones: the identity
                p.norm.running_var.fill_(1.0 - p.norm.eps)  # unit statistics: (x - 0) / sqrt(1 - eps + eps) = x
        x = torch.randn(2, side * side + with_cls, dim)
        with torch.no_grad():
            expected, _ = copy_into_mha(attn, dim, heads)(x, x, x, need_weights=False)
            tol = reduction_tolerance(dim + side * side + with_cls)  # projections of d terms, sums over T keys
            assert torch.allclose(attn(x, side, side, with_cls=with_cls), expected, **tol)


def test_convolutional_projection_is_attention_on_convolved_maps():
    # in general (3x3 kernels, keys and values at stride 2, trained BN statistics) the block is ordinary attention
    # whose queries, keys and values are read from the depthwise-convolved, normalised maps
    torch.manual_seed(0)
    dim, heads, side = 12, 3, 6
    attn = ConvAttention(dim, heads=heads)
    attn(torch.randn(4, side * side, dim), side, side)  # training mode: the BN statistics move
    attn.eval()
    x = torch.randn(2, side * side, dim)
    grid = x.transpose(1, 2).reshape(2, dim, side, side)
    q, k, v = (p.norm(p.depthwise(grid)).flatten(2).transpose(1, 2) for p in (attn.q, attn.k, attn.v))
    with torch.no_grad():
        expected, _ = copy_into_mha(attn, dim, heads)(q, k, v, need_weights=False)
        assert torch.allclose(attn(x, side, side), expected, **reduction_tolerance(dim + side * side))


def test_only_the_last_query_convolution_never_reaches_the_head():
    # the head reads the class token alone, and in the last block the class token skips the depthwise convolution
    # of the queries: that convolution and its BN act only on map tokens whose outputs nothing reads
    torch.manual_seed(0)
    model = create("cvt_small").eval()
    model(torch.randn(2, 1, 8, 8)).square().sum().backward()
    dead = sorted(n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0)
    assert dead == ["stages.2.blocks.1.attn.q.depthwise.weight", "stages.2.blocks.1.attn.q.norm.bias",
                    "stages.2.blocks.1.attn.q.norm.weight"]


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="stage 2: 5 heads do not divide the token width 192"):
        CvTConfig(heads=(1, 5, 6))
    with pytest.raises(ValueError, match="same .* number of stages"):
        CvTConfig(depths=(1, 2))
    with pytest.raises(ValueError, match="dims of stage 1 must be >= 1, got 0"):
        CvTConfig(dims=(0, 192, 384))
    with pytest.raises(ValueError, match="embed_strides of stage 3 must be >= 1, got -2"):
        CvTConfig(embed_strides=(4, 2, -2))
    with pytest.raises(ValueError, match="embed_paddings of stage 1 must be >= 0, got -1"):
        CvTConfig(embed_paddings=(-1, 1, 1))
    with pytest.raises(ValueError, match="kernel must be odd"):
        CvTConfig(qkv_kernel=2)
    with pytest.raises(ValueError, match="kv_stride must be >= 1, got 0"):
        CvTConfig(kv_stride=0)
    with pytest.raises(ValueError, match="mlp_ratio must be > 0"):
        CvTConfig(mlp_ratio=0)
    model = create("cvt_small")
    with pytest.raises(ValueError, match="input 2x2 is smaller than 4x4, the product of the token embeddings' strides"):
        model(torch.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"input must be \[B, 1, H, W\]"):
        model(torch.randn(1, 3, 8, 8))
    with torch.device("meta"), pytest.raises(ValueError, match="smaller than 16x16"):
        create("cvt_13")(torch.empty(1, 3, 15, 15))
