"""RegNet and AnyNet (Radosavovic et al., 2020): the quantised linear rule against stage widths and depths
derived by hand and published by the paper's code, the published parameter counts and MACs, the block
structure, and bad input failing clearly.

Independent expected values:

* RegNetX-400MF (d=22, w_0=24, w_a=24.48, w_m=2.54, g=16).  With log(2.54) = 0.9322, block j has
  s_j = round(log(1 + 1.02 j) / 0.9322): s = 0 for j = 0, 1 for j = 1, 2, 2 for j = 3..9 (u_j < 24 * 2.54**2.5
  = 246.8 up to j = 9) and 3 for j = 10..21, so the quantised widths are 24, 64 (60.96 -> 64),
  152 (154.8 -> 152) and 392 (393.3 -> 392) with depths 1, 2, 7, 12.  Rounded to multiples of 16:
  32, 64, 160 and 392 -> 400 (halves up) or 384 (halves to even, the paper's code: mmdetection's
  RegNetX-400MF config lists in_channels [32, 64, 160, 384]).
* RegNetY-400MF (d=16, w_0=48, w_a=27.89, w_m=2.09, g=8): 48, 104 (100.3), 208 (209.7), 440 (438.2) with
  depths 1, 3, 6, 6, all already multiples of 8.
* Parameter counts published by torchvision: regnet_x_400mf 5,495,976, regnet_y_400mf 4,344,144; its
  "_ops" (GMACs) 0.414 and 0.402.  The pycls RegNetX-400MF has 5.16M (mmpretrain's metafile).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.cost import model_macs, parameter_count
from visarch.models import create, get_config
from visarch.models.layers import SqueezeExcitation
from visarch.models.regnet import (
    AnyNet,
    AnyNetConfig,
    RegNetConfig,
    XBlock,
    adjust_widths_to_groups,
    block_widths,
    quantized_linear_widths,
)

X400 = dict(depth=22, w_0=24, w_a=24.48, w_m=2.54)
Y400 = dict(depth=16, w_0=48, w_a=27.89, w_m=2.09)


def anynet_count(widths, depths, group_widths, *, se_ratio=0.0, stem=32, classes=1000, c_in=3):
    """Parameters from the architecture: convolutions without bias, BN (gamma, beta), SE with biases, b = 1."""
    total, w_in = 9 * c_in * stem + 2 * stem, stem
    for w, d, g in zip(widths, depths, group_widths, strict=True):
        for j in range(d):
            total += w_in * w + 2 * w  # 1x1 to w_b = w
            total += 9 * w * g + 2 * w  # 3x3 with w / g groups: each filter sees g channels
            if se_ratio:
                s = round(se_ratio * w_in)
                total += 2 * w * s + s + w
            total += w * w + 2 * w  # 1x1 back to w
            if j == 0:
                total += w_in * w + 2 * w  # projection: every stage starts with stride 2
            w_in = w
    return total + w_in * classes + classes


def test_quantized_linear_rule_gives_the_stages_derived_by_hand():
    assert quantized_linear_widths(**X400) == ((24, 64, 152, 392), (1, 2, 7, 12))
    assert quantized_linear_widths(**Y400) == ((48, 104, 208, 440), (1, 3, 6, 6))
    line, widths = block_widths(**X400)
    assert len(line) == len(widths) == 22
    assert line[0] == 24 and line[21] == pytest.approx(24 + 21 * 24.48)
    assert all(w % 8 == 0 for w in widths) and widths == sorted(widths)


def test_group_adjustment_and_its_two_roundings():
    widths, depths = quantized_linear_widths(**X400)
    assert adjust_widths_to_groups(widths, (1,) * 4, (16,) * 4) == ((32, 64, 160, 400), (16,) * 4)
    assert adjust_widths_to_groups(widths, (1,) * 4, (16,) * 4, "half_even") == ((32, 64, 160, 384), (16,) * 4)
    # g <- min(g, w_b): a 24-channel stage cannot have groups of 32
    assert adjust_widths_to_groups((24,), (1,), (32,)) == ((24,), (24,))
    # below 5 g, rounding down would lose more than 10 %: make_divisible goes up instead
    assert adjust_widths_to_groups((20,), (1,), (16,)) == ((32,), (16,))
    assert adjust_widths_to_groups((20,), (1,), (16,), "half_even") == ((16,), (16,))
    # the bottleneck ratio divides first and multiplies back: w = 96, b = 2 -> w_b = 48, g = 32 -> 64 -> w = 128
    assert adjust_widths_to_groups((96,), (2,), (32,)) == ((128,), (32,))


@pytest.mark.parametrize("name, widths, depths, groups, se, published, gmacs", [
    ("regnetx_400mf", (32, 64, 160, 400), (1, 2, 7, 12), 16, 0.0, 5_495_976, 0.414),
    ("regnety_400mf", (48, 104, 208, 440), (1, 3, 6, 6), 8, 0.25, 4_344_144, 0.402),
])
def test_published_models(name, widths, depths, groups, se, published, gmacs):
    config = get_config(name).anynet()
    assert (config.widths, config.depths, config.group_widths) == (widths, depths, (groups,) * 4)
    assert anynet_count(widths, depths, (groups,) * 4, se_ratio=se) == published
    with torch.device("meta"):
        model = create(name)
    assert parameter_count(model) == published
    macs = model_macs(model, (1, 3, 224, 224))
    assert 0.35e9 <= macs < 0.45e9  # "400MF": 0.4 GMACs to the one digit of the name
    assert round(macs / 1e9, 3) == gmacs


def test_the_paper_code_rounding_gives_its_smaller_x_model():
    config = get_config("regnetx_400mf", group_rounding="half_even").anynet()
    assert config.widths == (32, 64, 160, 384)
    with torch.device("meta"):
        count = parameter_count(create("regnetx_400mf", group_rounding="half_even"))
    assert count == anynet_count((32, 64, 160, 384), (1, 2, 7, 12), (16,) * 4)
    assert round(count / 1e4) == 516  # 5.16M


def test_blocks_shortcuts_and_squeeze_excitation():
    torch.manual_seed(0)
    model = create("regnety_400mf").eval()
    blocks = [b for stage in model.stages for b in stage]
    firsts = {0, 1, 4, 10}  # first blocks of stages of 1, 3, 6, 6
    assert [i for i, b in enumerate(blocks) if not isinstance(b.shortcut, nn.Identity)] == sorted(firsts)
    assert all(b.conv2[0].stride == ((2, 2) if i in firsts else (1, 1)) for i, b in enumerate(blocks))
    assert all(b.conv2[0].groups == b.conv2[0].out_channels // 8 for b in blocks)
    se = [b.se for b in blocks]
    assert all(isinstance(s, SqueezeExcitation) for s in se)
    # squeeze = round(0.25 * w_in): the first block of stage 1 sees the 32-channel stem, of stage 2 48 channels
    assert [se[i].reduce.out_channels for i in (0, 1, 2, 4, 5)] == [8, 12, 26, 26, 52]
    assert not any(isinstance(m, SqueezeExcitation) for m in create("regnetx_400mf").modules())
    shapes = []
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        x = model.stem(x)
        for stage in model.stages:
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    assert shapes == [(48, 16, 16), (104, 8, 8), (208, 4, 4), (440, 2, 2)]


def test_an_arbitrary_anynet_for_digits():
    config = AnyNetConfig(widths=(16, 24, 48), depths=(1, 2, 1), group_widths=(4, 6, 12), bottleneck_ratios=(1, 2, 4),
                          strides=(1, 2, 2), stem_width=8, stem_stride=1, in_channels=1, num_classes=10)
    assert config.total_stride == 4
    model = AnyNet(config)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    block = model.stages[2][0]
    assert isinstance(block, XBlock) and block.conv2[0].out_channels == 12 and block.conv2[0].groups == 1
    assert model.stages[1][1].conv1[0].out_channels == 12  # w_b = 24 / 2
    assert isinstance(AnyNet(RegNetConfig(**X400, group_width=16)).config, AnyNetConfig)


@pytest.mark.parametrize("make, match", [
    (lambda: RegNetConfig(w_0=0), r"initial width w_0 must be > 0, got 0"),
    (lambda: RegNetConfig(w_0=-8), r"initial width w_0 must be > 0"),
    (lambda: RegNetConfig(w_0=20), r"initial width w_0=20 must be a multiple of q=8"),
    (lambda: RegNetConfig(w_m=1.0), r"width multiplier w_m must be > 1, got 1.0"),
    (lambda: RegNetConfig(w_a=-1.0), r"slope w_a must be >= 0, got -1.0"),
    (lambda: RegNetConfig(depth=0), r"depth d must be >= 1"),
    (lambda: RegNetConfig(group_width=0), r"group width g must be >= 1"),
    (lambda: RegNetConfig(bottleneck_ratio=0), r"bottleneck ratio b must be > 0"),
    (lambda: RegNetConfig(group_rounding="up"), r"group_rounding must be one of"),
    (lambda: quantized_linear_widths(4, 8, 8, 0.5), r"width multiplier w_m must be > 1"),
    (lambda: AnyNetConfig(widths=(40,), depths=(1,), group_widths=(16,), bottleneck_ratios=(1,), strides=(2,)),
     r"group width g_1=16 does not divide the bottleneck width w_b=40 of stage 1"),
    (lambda: AnyNetConfig(widths=(40,), depths=(1,), group_widths=(4,), bottleneck_ratios=(3,), strides=(2,)),
     r"bottleneck ratio b_1=3 does not divide the width w_1=40"),
    (lambda: AnyNetConfig(widths=(32, 64), depths=(1,), group_widths=(16,), bottleneck_ratios=(1,), strides=(2,)),
     r"widths must be a non-empty tuple with one entry per stage \(1 stages"),
    (lambda: AnyNetConfig(depths=(1, 0, 7, 12)), r"depth d_2 must be >= 1, got 0"),
    (lambda: AnyNetConfig(se_ratio=1.5), r"se_ratio must be in \[0, 1\)"),
    (lambda: create("regnetx_400mf")(torch.zeros(1, 3, 31, 64)), r"input 31x64 is smaller than 32x32"),
    (lambda: create("regnetx_400mf")(torch.zeros(1, 1, 64, 64)), r"input must be \[B, 3, H, W\]"),
])
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
