"""Fully convolutional networks (Long et al., 2015) against independent facts.

* convolutionalisation: the rewritten classifier equals the original on the training size and, on a
  larger input, equals the original applied to every window (computed by hand with ``unfold``);
* bilinear upsampling: the transposed convolution against ``F.interpolate(mode="bilinear",
  align_corners=False)``, equal except on the first and last ``f // 2`` rows and columns (derived in
  the module docstring), and the kernel sizes of the authors' Caffe models (4 for x2, 16 for x8, 32 for
  x16, 64 for x32);
* FCN-32s/16s/8s on VGG-16: score maps at H/32, H/16, H/8 (section 4.2 of the paper), output H x W,
  and parameters: VGG-16's published 138,357,544 minus its 4096 x 1000 fc8, plus the 1 x 1 score
  layers and the learned x2 upsamplings counted by hand; the paper's table 1 rounds it to 134M.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from visarch.cost import parameter_count
from visarch.models import create
from visarch.models.fcn import FCN, bilinear_kernel, convolutionalize, upsampling_geometry
from visarch.tolerance import reduction_tolerance

META = torch.device("meta")


def small_classifier():
    """Valid (unpadded) convolutions, so a window of a large image sees exactly what a small image does."""
    features = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
    head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 20), nn.ReLU(), nn.Dropout(0.5), nn.Linear(20, 10))
    return features.eval(), head.eval()  # 8x8 -> 6x6 -> 4x4 -> 2x2: total stride 2


def test_convolutionalize_matches_on_training_size():
    torch.manual_seed(0)
    features, head = small_classifier()
    conv_head = convolutionalize(head, (8, 2, 2))
    x = torch.randn(5, 1, 8, 8)
    z = features(x)
    out = conv_head(z)
    assert out.shape == (5, 10, 1, 1)
    assert torch.allclose(out.flatten(1), head(z), **reduction_tolerance(8 * 2 * 2))  # the first layer's inputs


@pytest.mark.parametrize(("h", "w"), [(8, 8), (10, 16), (20, 12), (32, 32)])
def test_convolutionalize_is_a_sliding_window(h, w):
    torch.manual_seed(1)
    features, head = small_classifier()
    conv_head = convolutionalize(head, (8, 2, 2))
    x = torch.randn(2, 1, h, w)
    scores = conv_head(features(x))
    rows, cols = (h - 8) // 2 + 1, (w - 8) // 2 + 1  # 8x8 windows two pixels apart
    assert scores.shape == (2, 10, rows, cols)
    windows = x.unfold(2, 8, 2).unfold(3, 8, 2)  # [B, 1, rows, cols, 8, 8]
    tol = reduction_tolerance(8 * 2 * 2)  # the longest sum: the first linear layer's 32 inputs
    for i in range(rows):
        for j in range(cols):
            assert torch.allclose(scores[:, :, i, j], head(features(windows[:, :, i, j])), **tol)


def test_convolutionalize_same_keeps_size():
    head = nn.Sequential(nn.Linear(4 * 3 * 3, 6), nn.ReLU(), nn.Linear(6, 2))
    assert convolutionalize(head, (4, 3, 3), same=True)(torch.randn(1, 4, 5, 7)).shape == (1, 2, 5, 7)


def test_convolutionalize_bad_input():
    head = nn.Sequential(nn.Flatten(), nn.Linear(32, 10))
    with pytest.raises(ValueError, match="reads 32 features, but the feature map 8x3x3 flattens to 72"):
        convolutionalize(head, (8, 3, 3))
    with pytest.raises(ValueError, match="cannot convolutionalize a BatchNorm1d"):
        convolutionalize(nn.Sequential(nn.Linear(32, 10), nn.BatchNorm1d(10)), (8, 2, 2))
    with pytest.raises(ValueError, match="no Linear"):
        convolutionalize(nn.Sequential(nn.Flatten(), nn.ReLU()), (8, 2, 2))
    with pytest.raises(ValueError, match="Flatten after the first Linear"):
        convolutionalize(nn.Sequential(nn.Linear(32, 10), nn.Flatten()), (8, 2, 2))
    with pytest.raises(ValueError, match=r"feature_shape must be \(C, H, W\)"):
        convolutionalize(head, (32,))
    with pytest.raises(ValueError, match="feature map H must be >= 1"):
        convolutionalize(head, (8, 0, 4))
    with pytest.raises(ValueError, match="same padding needs an odd kernel"):
        convolutionalize(head, (8, 2, 2), same=True)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 7, 8, 16, 32])
def test_geometry_gives_n_times_f(factor):
    kernel, stride, padding = upsampling_geometry(factor)
    assert stride == factor and padding == -(-(factor - 1) // 2)
    for n in (1, 2, 7, 10):
        assert (n - 1) * stride - 2 * padding + kernel == n * factor


def test_kernel_sizes_of_the_fcn_code():
    assert {f: upsampling_geometry(f)[0] for f in (2, 8, 16, 32)} == {2: 4, 8: 16, 16: 32, 32: 64}


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 4), (6, 5), (9, 9)])
def test_bilinear_kernel_equals_interpolate_inside(factor, h, w):
    torch.manual_seed(factor * 100 + h * 10 + w)
    x = torch.rand(2, 3, h, w) + 0.5  # positive values, so any border difference shows
    _, stride, padding = upsampling_geometry(factor)
    up = F.conv_transpose2d(x, bilinear_kernel(3, factor), stride=stride, padding=padding)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape == (2, 3, h * factor, w * factor)
    b = factor // 2
    inside = (slice(None), slice(None), slice(b, h * factor - b), slice(b, w * factor - b))
    assert torch.allclose(up[inside], ref[inside], atol=1e-5)
    if b:  # on the border the transposed convolution treats the missing neighbour as 0: smaller values
        assert (up[..., 0, :] < ref[..., 0, :] - 1e-4).all() and (up[..., :, -1] < ref[..., :, -1] - 1e-4).all()


def test_bilinear_kernel_does_not_mix_channels():
    weight = bilinear_kernel(3, 4)
    assert weight.shape == (3, 3, 8, 8)
    assert weight[0, 1].abs().sum() == 0 and weight[2, 0].abs().sum() == 0
    assert torch.allclose(weight[1, 1].sum(), torch.tensor(16.0))  # f^2: each input spreads over f x f outputs


@pytest.mark.parametrize(("channels", "factor", "message"), [
    (3, 0, "upsampling factor f must be >= 1, got 0"),
    (3, -2, "upsampling factor f must be >= 1, got -2"),
    (3, 2.0, "upsampling factor f must be an int, got float"),
    (0, 2, "channels must be >= 1"),
])
def test_bilinear_kernel_bad_input(channels, factor, message):
    with pytest.raises(ValueError, match=message):
        bilinear_kernel(channels, factor)


VGG16_PUBLISHED = 138_357_544
FC8 = 4096 * 1000 + 1000
SCORE_FR, SCORE_POOL4, SCORE_POOL3, UPSCORE2 = 4096 * 21 + 21, 512 * 21 + 21, 256 * 21 + 21, 21 * 21 * 4 * 4


@pytest.mark.parametrize(("variant", "extra", "strides"), [
    ("32s", SCORE_FR, [32]),
    ("16s", SCORE_FR + SCORE_POOL4 + UPSCORE2, [32, 16]),
    ("8s", SCORE_FR + SCORE_POOL4 + SCORE_POOL3 + 2 * UPSCORE2, [32, 16, 8]),
])
def test_fcn_vgg16(variant, extra, strides):
    with META:
        model = FCN.from_vgg(create("vgg16"), variant=variant)
        maps = model.score_maps(torch.zeros(1, 3, 320, 224))
        out = model(torch.zeros(1, 3, 320, 224))
    assert parameter_count(model) == VGG16_PUBLISHED - FC8 + extra
    assert round(parameter_count(model) / 1e6) == 134  # table 1 of the paper
    assert [tuple(m.shape) for m in maps.values()] == [(1, 21, 320 // s, 224 // s) for s in strides]
    assert out.shape == (1, 21, 320, 224)


def tiny_fcn(variant="8s", num_classes=3):
    vgg = create("vgg11", hidden=16, pooled=1, num_classes=7)
    return FCN.from_vgg(vgg, num_classes=num_classes, variant=variant)


def test_fcn_forward_and_gradients():
    torch.manual_seed(0)
    model = tiny_fcn()
    y = model(torch.randn(1, 3, 64, 32))
    assert y.shape == (1, 3, 64, 32) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert model.upscore2.weight.grad.abs().sum() > 0  # the x2 upsamplings are learned
    assert "final_kernel" in dict(model.named_buffers())  # the last one stays bilinear


def test_fcn_bad_input():
    model = tiny_fcn("32s")
    with pytest.raises(ValueError, match="multiples of the total stride 32"):
        model(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError, match="smaller than 32x32"):
        model(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="variant must be one of 32s, 16s, 8s"):
        tiny_fcn("4s")
    with pytest.raises(ValueError, match="five max pools, found 1"):
        FCN(nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2)), nn.Identity(), 4)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 8])
def test_transposed_is_interpolation_of_the_zero_framed_image(factor):
    torch.manual_seed(factor)
    x = torch.rand(1, 2, 5, 3)
    _, stride, padding = upsampling_geometry(factor)
    up = F.conv_transpose2d(x, bilinear_kernel(2, factor), stride=stride, padding=padding)
    framed = F.interpolate(F.pad(x, (1, 1, 1, 1)), scale_factor=factor, mode="bilinear", align_corners=False)
    assert torch.allclose(up, framed[..., factor:-factor, factor:-factor], atol=1e-6)
