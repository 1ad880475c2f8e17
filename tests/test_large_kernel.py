"""RepLKNet's merged kernel equals its two branches; SLaK's decomposed kernels have the closed-form counts."""

from __future__ import annotations

import pytest
import torch

from visarch.cost import parameter_count
from visarch.models.large_kernel import DecomposedLargeKernelConv, ReparamLargeKernelConv, pad_kernel


def _randomise_bn(module, generator):
    for branch in module.branches:
        bn = branch[1]
        for tensor, low, high in ((bn.running_mean, -1, 1), (bn.running_var, 0.2, 3), (bn.weight, 0.5, 2),
                                  (bn.bias, -1, 1)):
            tensor.data.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) * (high - low) + low)


@pytest.mark.parametrize(("large", "small", "stride"), [(31, 5, 1), (13, 3, 1), (7, 7, 1), (9, 1, 2), (5, 3, 2)])
def test_merged_conv_equals_the_two_branches(large, small, stride):
    g = torch.Generator().manual_seed(large * 10 + small)
    torch.manual_seed(large)
    block = ReparamLargeKernelConv(3, kernel_size=large, small_kernel=small, stride=stride).double()
    _randomise_bn(block, g)
    block.eval()
    x = torch.randn(2, 3, 23, 21, dtype=torch.float64, generator=g)
    merged = block.merged()
    assert merged.kernel_size == (large, large) and merged.bias is not None
    assert torch.allclose(merged(x), block(x), rtol=0, atol=1e-12)
    reference = block(x)
    block.reparameterize()
    assert torch.allclose(block(x), reference, rtol=0, atol=1e-12)


def test_decomposed_merges_too_and_masks_hold():
    g = torch.Generator().manual_seed(1)
    block = DecomposedLargeKernelConv(4, kernel_size=15, short=5, small_kernel=3, sparsity=0.4, generator=g).double()
    _randomise_bn(block, g)
    block.eval()
    x = torch.randn(1, 4, 19, 19, dtype=torch.float64, generator=g)
    assert torch.allclose(block.merged()(x), block(x), rtol=0, atol=1e-12)
    block.train()
    block(x).sum().backward()
    for i, branch in enumerate(block.branches):
        mask = getattr(block, f"mask{i}")
        assert torch.all(branch[0].weight.grad[mask == 0] == 0)
        assert torch.all(branch[0].weight[mask == 0] == 0)


@pytest.mark.parametrize("k", [51, 49, 47, 13])
def test_slak_counts_in_closed_form(k):
    c, n, small = 8, 5, 5
    square = ReparamLargeKernelConv(c, kernel_size=k, small_kernel=None)
    decomposed = DecomposedLargeKernelConv(c, kernel_size=k, short=n, small_kernel=small)
    assert parameter_count(square) == c * k * k + 2 * c  # kernel + BN (gamma, beta)
    assert parameter_count(decomposed) == c * (2 * k * n + small * small) + 3 * 2 * c
    sparse = DecomposedLargeKernelConv(c, kernel_size=k, short=n, small_kernel=small, sparsity=0.4,
                                       generator=torch.Generator().manual_seed(0))
    kept = [c * k * n - round(0.4 * c * k * n)] * 2 + [c * 25 - round(0.4 * c * 25)]
    assert sparse.nonzero_weights() == sum(kept)


def test_pad_kernel_centres():
    w = torch.arange(9.0).view(1, 1, 3, 3)
    padded = pad_kernel(w, (7, 7))
    assert torch.equal(padded[0, 0, 2:5, 2:5], w[0, 0]) and padded.abs().sum() == w.sum()


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((4, 30, 5), {}, "large kernel size K must be odd"),
    ((4, 31, 4), {}, "small kernel size k must be odd"),
    ((4, 13, 15), {}, "must not exceed the large kernel size K = 13"),
    ((0, 13, 3), {}, "channels C must be >= 1"),
    ((4, 13, 3), {"stride": 0}, "stride S must be >= 1"),
])
def test_bad_kernels(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        channels, kernel_size, small_kernel = args
        ReparamLargeKernelConv(channels, kernel_size=kernel_size, small_kernel=small_kernel, **kwargs)


def test_bad_decomposition():
    with pytest.raises(ValueError, match="short side N must be odd"):
        DecomposedLargeKernelConv(4, kernel_size=13, short=4)
    with pytest.raises(ValueError, match=r"sparsity s must be in \[0, 1\)"):
        DecomposedLargeKernelConv(4, kernel_size=13, short=5, sparsity=1.0)


def test_merging_in_training_mode_fails():
    with pytest.raises(RuntimeError, match="merging needs evaluation mode"):
        ReparamLargeKernelConv(2, kernel_size=7, small_kernel=3).merged()
