"""``visarch.nn.small_cnn``: shapes, exact parameter counts by formula, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from visarch.nn import small_cnn


def conv(c_in, c_out, bias):
    return c_out * c_in * 3 * 3 + (c_out if bias else 0)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_shape_parameters_and_gradients(norm):
    torch.manual_seed(0)
    model = small_cnn(norm)
    bias = norm == "none"
    affine = 0 if bias else 2 * (16 + 32 + 32)  # gamma and beta of each normalization layer
    expected = conv(1, 16, bias) + conv(16, 32, bias) + conv(32, 32, bias) + affine + 32 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected
    x = torch.randn(5, 1, 8, 8)
    out = model(x)
    assert out.shape == (5, 10) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_norm():
    with pytest.raises(ValueError, match="norm must be one of"):
        small_cnn("layer")
