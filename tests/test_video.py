"""Video networks (C3D, R(2+1)D, I3D inflation, SlowFast): counts and shapes derived by hand, the inflation
identity on a boring video, and bad input failing clearly.

Independent expected values:

* A 3D convolution t x d x d from N to N' channels without bias has t d^2 N N' weights; batch norm adds
  2 N' parameters.  ``c3d_small`` (widths 8, 16, 32, t = d = 3, one input channel, 4 classes):
  27 (1*8 + 8*16 + 16*32) + 2 (8 + 16 + 32) + 32*4 + 4 = 17,496 + 112 + 132 = 17,740.
* ``frames2d_small`` (1 x 3 x 3 kernels, widths 14, 28, 55): 9 (14 + 392 + 1540) + 2 (97) + 55*4 + 4 = 17,932.
* R(2+1)D's M = floor(t d^2 N N' / (d^2 N + t N')): M = floor(216/33) = 6, floor(3456/120) = 28,
  floor(13824/240) = 57 for the three blocks of ``r2plus1d_small``; conv weights
  9*1*6 + 3*6*8 + 9*8*28 + 3*28*16 + 9*16*57 + 3*57*32 = 198 + 3,360 + 13,680 = 17,238, batch norm
  2 (6 + 8 + 28 + 16 + 57 + 32) = 294, head 132: 17,664.
* SlowFast ResNet-50 (Feichtenhofer et al., 2019, Table 1), alpha = 8, beta = 1/8, tau = 16, T = 4:
  after conv1 and pool1 the Slow pathway is 64 x 4 x 56^2 and the Fast one 8 x 32 x 56^2; the lateral
  connection adds 2 beta C = 16 channels to the Slow pathway: 80 x 4 x 56^2.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from visarch.cost import parameter_count, r2plus1d_mid_channels
from visarch.models import create
from visarch.models.resnet import BasicBlock
from visarch.models.video import (
    C3DBlock,
    LateralConnection,
    R2Plus1DBlock,
    SlowFastStem,
    VideoNetConfig,
    inflate,
    inflate_conv2d,
    slowfast_frames,
)
from visarch.nn import small_cnn


@pytest.mark.parametrize("name, expected", [("c3d_small", 17_740), ("frames2d_small", 17_932),
                                            ("r2plus1d_small", 17_664)])
def test_small_video_net_counts(name, expected):
    model = create(name)
    assert parameter_count(model) == expected
    assert model(torch.randn(2, 1, 5, 12, 12)).shape == (2, 4)


def test_per_frame_baseline_ignores_frame_order():
    torch.manual_seed(0)
    model = create("frames2d_small").eval()
    video = torch.randn(3, 1, 5, 12, 12)
    order = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model(video.flip(2)), model(video), atol=1e-5, rtol=0)
        torch.testing.assert_close(model(video[:, :, order]), model(video), atol=1e-5, rtol=0)


def test_mid_channels_hand_values():
    assert [r2plus1d_mid_channels(3, 3, n, m) for n, m in ((1, 8), (8, 16), (16, 32))] == [6, 28, 57]
    assert r2plus1d_mid_channels(3, 3, 64, 64) == 144  # R(2+1)D-18's first stage: 3*9*64*64 / (9*64 + 3*64)


def test_factorised_counts_match_within_flooring():
    rng = random.Random(0)
    for _ in range(300):
        t, d, n, m = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 256), rng.randint(1, 256)
        mid = r2plus1d_mid_channels(t, d, n, m)
        full, factored = t * d * d * n * m, mid * (d * d * n + t * m)
        assert 0 <= full - factored < d * d * n + t * m
        if mid >= 1:
            block = R2Plus1DBlock(n, m, time=t, size=d, batch_norm=False, pool=None)
            conv_weights = block.spatial.weight.numel() + block.temporal.weight.numel()
            assert conv_weights == factored


def test_factorised_block_doubles_nonlinearities_and_keeps_shape():
    x = torch.randn(2, 4, 6, 10, 10)
    full, factored = C3DBlock(4, 8, pool=None), R2Plus1DBlock(4, 8, pool=None)
    relus = [sum(isinstance(m, nn.ReLU) for m in b.modules()) for b in (full, factored)]
    assert relus == [1, 2]
    assert full(x).shape == factored(x).shape == (2, 8, 6, 10, 10)
    assert C3DBlock(4, 8, pool=(2, 2, 2))(x).shape == (2, 8, 3, 5, 5)


def _random_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 2)
            nn.init.uniform_(m.bias, -1, 1)
    return model.eval()


@pytest.mark.parametrize("time", [1, 2, 3, 4, 5])
def test_inflated_network_reproduces_2d_on_boring_video(time):
    torch.manual_seed(time)
    net = _random_bn(small_cnn("batch"))
    net3d = inflate(net, time).eval()
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        for frames in (1, 4, 7):
            video = images.unsqueeze(2).expand(-1, -1, frames, -1, -1)
            feats = net3d[:-3](video)  # [B, 32, frames, 2, 2]
            assert feats.shape == (3, 32, frames, 2, 2)
            torch.testing.assert_close(feats, net[:-3](images).unsqueeze(2).expand_as(feats), atol=1e-5, rtol=0)
            torch.testing.assert_close(net3d(video), net(images), atol=1e-5, rtol=0)


def test_inflated_resnet18_stage():
    torch.manual_seed(0)
    stage = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
    for m in stage.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    stage.eval()
    maps = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        out = inflate(stage, 3).eval()(maps.unsqueeze(2).expand(-1, -1, 5, -1, -1))
        torch.testing.assert_close(out, stage(maps).unsqueeze(2).expand_as(out), atol=1e-4, rtol=0)
    assert isinstance(stage[0].conv1, nn.Conv2d)  # the 2D model is left untouched


def test_zero_time_padding_agrees_only_in_the_interior():
    torch.manual_seed(0)
    net = _random_bn(small_cnn("batch"))
    net3d = inflate(net, 3, time_padding="zeros").eval()
    images = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        feats = net3d[:-3](images.unsqueeze(2).expand(-1, -1, 9, -1, -1))
        ref = net[:-3](images)
    # three convolutions, each padding one frame on each side: frames 3..5 of 9 never see the padding
    agree = [torch.allclose(feats[:, :, t], ref, atol=1e-5) for t in range(9)]
    assert agree == [False] * 3 + [True] * 3 + [False] * 3


def test_inflate_conv2d_kernel_and_strides():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    inflated = inflate_conv2d(conv, 4, time_stride=2)
    assert inflated.conv.weight.shape == (5, 3, 4, 3, 3)
    torch.testing.assert_close(inflated.conv.weight.sum(2), conv.weight)
    assert inflated.conv.stride == (2, 2, 2)
    assert inflated(torch.randn(1, 3, 8, 9, 9)).shape == (1, 5, 4, 5, 5)


def test_inflation_bad_input():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    with pytest.raises(ValueError, match="inflated time extent T must be >= 1, got 0"):
        inflate_conv2d(conv, 0)
    with pytest.raises(ValueError, match="inflated time extent T must be >= 1"):
        inflate(small_cnn(), -1)
    with pytest.raises(ValueError, match="time_padding must be 'replicate' or 'zeros'"):
        inflate_conv2d(conv, 3, time_padding="circular")
    with pytest.raises(ValueError, match="zero padding"):
        inflate_conv2d(nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), 3)
    with pytest.raises(TypeError, match="needs an nn.Conv2d"):
        inflate_conv2d(nn.Conv1d(3, 5, 3), 3)
    with pytest.raises(ValueError, match="cannot inflate a LayerNorm"):
        inflate(nn.Sequential(conv, nn.LayerNorm(5)), 3)


def test_slowfast_shapes_paper_setting():
    with torch.device("meta"):
        stem = SlowFastStem(channels=64, alpha=8, beta_inv=8, tau=16)
        clip = torch.empty(2, 3, 64, 224, 224)
        slow_in, fast_in = slowfast_frames(clip, tau=16, alpha=8)
        fused, fast = stem(clip)
    assert slow_in.shape == (2, 3, 4, 224, 224) and fast_in.shape == (2, 3, 32, 224, 224)
    assert fast.shape == (2, 8, 32, 56, 56)
    assert fused.shape == (2, 64 + 16, 4, 56, 56)


def test_slowfast_bad_input():
    clip = torch.randn(1, 3, 16, 8, 8)
    with pytest.raises(ValueError, match="alpha=3 does not divide tau=16"):
        slowfast_frames(clip, tau=16, alpha=3)
    with pytest.raises(ValueError, match="alpha=3 does not divide tau=16"):
        SlowFastStem(alpha=3)
    with pytest.raises(ValueError, match="L a multiple of tau=16"):
        slowfast_frames(torch.randn(1, 3, 20, 8, 8), tau=16, alpha=8)
    with pytest.raises(ValueError, match="1/beta=7 does not divide"):
        SlowFastStem(beta_inv=7)
    lateral = LateralConnection(8, alpha=8)
    with pytest.raises(ValueError, match="the Fast pathway has 30 frames, not alpha=8 times the Slow pathway's 4"):
        lateral(torch.randn(1, 64, 4, 7, 7), torch.randn(1, 8, 30, 7, 7))
    assert lateral(torch.randn(1, 64, 4, 7, 7), torch.randn(1, 8, 32, 7, 7)).shape == (1, 80, 4, 7, 7)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="block must be 'c3d' or 'r2plus1d'"):
        VideoNetConfig(block="i3d")
    with pytest.raises(ValueError, match="widths must be a non-empty tuple of ints, each >= 1"):
        VideoNetConfig(widths=(8, 0))
    with pytest.raises(ValueError, match=r"\(2\+1\)D block with temporal kernel t=1"):
        VideoNetConfig(block="r2plus1d", time=1)
    with pytest.raises(ValueError, match="time must be >= 1, got 0"):
        VideoNetConfig(time=0)
    model = create("c3d_small")
    with pytest.raises(ValueError, match=r"input must be \[B, 1, T, H, W\]"):
        model(torch.randn(2, 1, 12, 12))
    with pytest.raises(ValueError, match="smaller than 4x4"):
        model(torch.randn(2, 1, 5, 3, 3))
