"""Swin-T against its published count and cost, window partition and the shifted-window mask, bad configs."""

from __future__ import annotations

import pytest
import torch

from visarch.cost import model_macs, parameter_count
from visarch.models import create
from visarch.models.swin import (
    SwinConfig,
    WindowAttention,
    relative_position_index,
    shift_mask,
    shift_regions,
    window_partition,
    window_reverse,
)


def swin_count(c=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), m=7, classes=1000):
    """From the architecture: patch conv + LN; per block LN, qkv and proj (bias), bias table, LN, MLP;
    merges LN(4C) + Linear(4C, 2C) without bias; final LN and head."""
    total = 3 * 16 * c + c + 2 * c
    for i, (d, k) in enumerate(zip(depths, heads, strict=True)):
        w = c * 2**i
        if i:
            total += 2 * 2 * w + 2 * w * w  # 4C' = 2w inputs, w outputs
        total += d * (2 * w + 3 * w * w + 3 * w + w * w + w + (2 * m - 1) ** 2 * k + 2 * w + 8 * w * w + 5 * w)
    return total + 2 * 8 * c + 8 * c * classes + classes


def test_swin_t_published_count_and_cost():
    with torch.device("meta"):
        model = create("swin_t")
    assert swin_count() == 28_288_354  # torchvision's published count for swin_t
    assert parameter_count(model) == 28_288_354
    assert round(model_macs(model, (1, 3, 224, 224)) / 1e9, 3) == 4.491  # torchvision: 4.491 GFLOPS


def test_hierarchical_feature_maps_and_output():
    model = create("swin_t", window_size=2, depths=(1, 2, 1, 2))
    maps = model.features(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in maps] == [(2, 96, 16, 16), (2, 192, 8, 8), (2, 384, 4, 4), (2, 768, 2, 2)]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_window_partition_is_inverted_by_window_reverse():
    for b, h, w, c, m in [(2, 8, 12, 3, 4), (1, 14, 7, 5, 7), (3, 6, 6, 1, 1)]:
        x = torch.randn(b, h, w, c)
        windows = window_partition(x, m)
        assert windows.shape == (b * (h // m) * (w // m), m * m, c)
        assert torch.equal(window_reverse(windows, m, h, w), x)
        assert torch.equal(windows[0].view(m, m, c), x[0, :m, :m])  # the first window is the top-left block


def test_relative_position_index_covers_the_table():
    for m in (1, 2, 3, 7):
        index = relative_position_index(m)
        assert index.shape == (m * m, m * m)
        assert index.min() == 0 and index.max() == (2 * m - 1) ** 2 - 1
        assert len(index.unique()) == (2 * m - 1) ** 2  # every offset in [-(M-1), M-1]^2 occurs
        assert torch.all(index.diagonal() == index[0, 0])  # offset (0, 0) on the diagonal
    assert WindowAttention(96, heads=3, window_size=7).bias_table.shape == (169, 3)


def test_shift_mask_separates_the_regions_of_the_unrolled_map():
    h, w, m, s = 8, 12, 4, 2
    labels = torch.arange(h * w).view(h, w)
    rolled = torch.roll(labels, (-s, -s), (0, 1))
    # tokens that were adjacent in the original map are adjacent in the rolled map unless they wrapped
    regions = shift_regions(h, w, m, s)
    rows, cols = rolled // w, rolled % w
    wrapped = (rows < s).int() * 2 + (cols < s).int()  # which strips wrapped around
    assert len(regions.unique()) == 9
    mask = shift_mask(h, w, m, s)
    assert mask.shape == ((h // m) * (w // m), m * m, m * m)
    assert torch.all(mask.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(mask[0] == 0)  # the top-left window lies in one region
    win = window_partition(wrapped[None, :, :, None].float(), m)[..., 0]
    same = (win[:, :, None] == win[:, None, :])
    assert torch.equal(mask == 0, same & (mask == 0))  # never mixes wrapped and unwrapped tokens


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="5 heads do not divide the token width 96"):
        SwinConfig(heads=(5, 6, 12, 24))
    with pytest.raises(ValueError, match="same"):
        SwinConfig(depths=(2, 2), heads=(3, 6, 12))
    with pytest.raises(ValueError, match="window_size must be >= 1"):
        SwinConfig(window_size=0)
    with pytest.raises(ValueError, match="mlp_ratio must be > 0"):
        SwinConfig(mlp_ratio=0)
    with pytest.raises(ValueError, match="embed_dim must be >= 1"):
        SwinConfig(embed_dim=-96)
    model = create("swin_t", window_size=2, depths=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="smaller than 64x64"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of patch size x 2\\^\\(stages - 1\\) x window size = 64"):
        model(torch.randn(1, 3, 96, 64))
    with pytest.raises(ValueError, match="input must be"):
        model(torch.randn(1, 1, 64, 64))
