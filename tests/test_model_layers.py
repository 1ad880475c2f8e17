"""The shared pieces of the CNN families (``visarch.models.layers``) against definitions written here.

* ``SqueezeExcitation`` equals the formula of Hu et al. (2018) evaluated by hand from its weights:
  channel means, W_1 z + b_1, ReLU (or SiLU), W_2 . + b_2, sigmoid, channelwise product; its
  parameter count is 2 C C_s + C_s + C.
* ``make_divisible`` equals a brute-force search for the rule it states (the multiple of the divisor
  nearest to the value, at least the divisor, and not more than 10 % below the value).
* ``conv_bn_act`` keeps ceil(H / S) pixels for odd filters, like "same" padding.
* The checks raise ``ValueError`` naming the condition.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from visarch.cost import parameter_count
from visarch.models.layers import SqueezeExcitation, StochasticDepth, check_image, conv_bn_act, make_divisible


@pytest.mark.parametrize("act, fn", [(nn.ReLU, torch.relu), (nn.SiLU, torch.nn.functional.silu)])
def test_squeeze_excitation_is_the_papers_formula(act, fn):
    gen = torch.Generator().manual_seed(0)
    for c, cs in ((8, 2), (16, 1), (24, 6)):
        se = SqueezeExcitation(c, cs, act=act)
        x = torch.randn(3, c, 5, 4, generator=gen)
        z = x.mean((2, 3))  # [B, C]
        w1, b1 = se.reduce.weight.view(cs, c), se.reduce.bias
        w2, b2 = se.expand.weight.view(c, cs), se.expand.bias
        s = torch.sigmoid(fn(z @ w1.T + b1) @ w2.T + b2)  # [B, C]
        torch.testing.assert_close(se(x), x * s[:, :, None, None])
        assert parameter_count(se) == 2 * c * cs + cs + c


def brute_force_divisible(value, divisor):
    candidates = [m for m in range(divisor, int(2 * value) + 2 * divisor, divisor)]
    nearest = min(candidates, key=lambda m: (abs(m - value), -m))  # ties go up, as int(v + d/2) does
    while nearest < 0.9 * value:
        nearest += divisor
    return nearest


@given(st.floats(0.5, 2000, allow_nan=False), st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_follows_its_rule(value, divisor):
    assert make_divisible(value, divisor) == brute_force_divisible(value, divisor)


def test_make_divisible_examples():
    assert make_divisible(32 * 0.75) == 24
    assert make_divisible(11.2) == 16  # 8 would be more than 10 % below 11.2
    assert make_divisible(3) == 8  # never below the divisor


@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 1), (3, 2), (5, 2), (7, 2)])
def test_conv_bn_act_keeps_ceil_h_over_s(kernel, stride):
    block = conv_bn_act(4, 6, kernel, stride=stride).eval()
    for h in (7, 8, 15):
        assert block(torch.zeros(1, 4, h, h)).shape == (1, 6, math.ceil(h / stride), math.ceil(h / stride))
    assert parameter_count(block) == 4 * 6 * kernel * kernel + 2 * 6  # no bias before batch norm
    assert len(conv_bn_act(4, 6, kernel, act=None)) == 2


@pytest.mark.parametrize("call, match", [
    (lambda: SqueezeExcitation(8, 0), r"SqueezeExcitation: squeeze channels C_s must be >= 1, got 0"),
    (lambda: StochasticDepth(1.0), r"StochasticDepth: p must be in \[0, 1\), got 1.0"),
    (lambda: check_image(torch.zeros(1, 3, 8, 8), in_channels=1, min_size=4, model="Net"),
     r"Net: input must be \[B, 1, H, W\], got \(1, 3, 8, 8\)"),
    (lambda: check_image(torch.zeros(3, 8, 8), in_channels=3, min_size=4, model="Net"),
     r"input must be \[B, 3, H, W\]"),
    (lambda: check_image(torch.zeros(1, 3, 8, 31), in_channels=3, min_size=32, model="Net"),
     r"Net: input 8x31 is smaller than 32x32, the network's total stride"),
])
def test_checks_name_the_condition(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_checks_pass_valid_input():
    check_image(torch.zeros(1, 3, 32, 32), in_channels=3, min_size=32, model="Net")
