r"""Very large depthwise kernels: RepLKNet's re-parameterised K x K convolution (Ding et al., 2022) and
SLaK's decomposed, sparse one (Liu et al., 2023).

**Structural re-parameterisation.**  RepLKNet trains a large depthwise convolution (31 x 31 in its
first stage) next to a small one (5 x 5) on the same input, each followed by batch norm, and sums
them.  In evaluation mode batch norm is affine per channel, :math:`\mathrm{BN}(z) = s (z - \mu) + \beta`
with :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}`, and a convolution is linear in its kernel, so for
channel :math:`c`

.. math::

    s^L_c (W^L_c * x_c - \mu^L_c) + \beta^L_c + s^S_c (W^S_c * x_c - \mu^S_c) + \beta^S_c
    = \big(s^L_c W^L_c + s^S_c \,\mathrm{pad}(W^S_c)\big) * x_c + b_c,

:math:`b_c = \beta^L_c - s^L_c \mu^L_c + \beta^S_c - s^S_c \mu^S_c`, where :math:`\mathrm{pad}` puts the
k x k kernel in the centre of a K x K one of zeros.  Both branches pad their input so that the
output stays aligned (:math:`(K-1)/2` and :math:`(k-1)/2`); the centres line up only when K and k
are both odd.  After training, the two branches become one K x K convolution with a bias
(the method ``merged()``): the small kernel helps optimisation and costs nothing at
inference.

**Decomposition (SLaK).**  A K x K kernel has :math:`K^2` weights per channel.  SLaK replaces it by a
K x N and an N x K kernel in parallel (N = 5), plus the small square kernel, each with batch norm,
summed: :math:`2KN + k^2` weights per channel instead of :math:`K^2`, a ratio
:math:`(2KN + k^2)/K^2`, i.e. 0.21 for K = 51, N = k = 5.  SLaK also trains these kernels *sparse*
(a fraction :math:`s` of the weights fixed at zero; :math:`s = 0.4`) and makes the network 1.3 times
wider, so it keeps about as many non-zero weights as the dense network: :math:`1.3 (1 - s) = 0.78`.
Here the sparsity is a fixed random mask per kernel (a buffer), not SLaK's dynamic regrowth.

Shapes: every module here maps ``[B, C, H, W] -> [B, C, H/S, W/S]``.
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_int, check_real

__all__ = ["DecomposedLargeKernelConv", "ReparamLargeKernelConv", "fuse_conv_bn", "pad_kernel"]


def _check_kernels(large: int, small: int | None, *, where) -> None:
    check_int(large, "large kernel size K", where=where, ge=1)
    if large % 2 == 0:
        raise ValueError(f"large kernel size K must be odd (its centre aligns the branches), got {large}")
    if small is not None:
        check_int(small, "small kernel size k", where=where, ge=1)
        if small % 2 == 0:
            raise ValueError(f"small kernel size k must be odd (its centre aligns the branches), got {small}")
        if small > large:
            raise ValueError(f"small kernel size k = {small} must not exceed the large kernel size K = {large}")


def _branch(channels: int, kernel: tuple[int, int], stride: int) -> nn.Sequential:
    """Depthwise convolution without bias (batch norm's shift replaces it), then batch norm."""
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False),
                         nn.BatchNorm2d(channels))


def fuse_conv_bn(branch: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Kernel ``[C, 1, kh, kw]`` and bias ``[C]`` of the convolution equal to (conv, eval-mode batch norm).

    Args:
        branch: a ``Sequential`` of a depthwise ``Conv2d`` without bias and a ``BatchNorm2d``.

    Returns:
        ``(weight, bias)``: the kernel scaled by :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}` per
        channel, and :math:`\beta - s \mu`.
    """
    conv, bn = branch
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # s = gamma / sqrt(var + eps), [C]
    weight = conv.weight * scale[:, None, None, None]
    return weight, bn.bias - scale * bn.running_mean


def pad_kernel(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The kernel in the centre of a zero kernel of ``size``, ``[C, 1, kh, kw] -> [C, 1, H, W]``.

    Args:
        weight: the small kernel ``[C, 1, kh, kw]``.
        size: ``(H, W)``; ``H - kh`` and ``W - kw`` must be even and not negative (odd sizes for odd kernels).

    Returns:
        The padded kernel ``[C, 1, H, W]``.
    """
    kh, kw = weight.shape[-2:]
    dh, dw = size[0] - kh, size[1] - kw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"a {kh}x{kw} kernel cannot be centred in a {size[0]}x{size[1]} one")
    return nn.functional.pad(weight, (dw // 2, dw // 2, dh // 2, dh // 2))


class _Branched(nn.Module):
    """Parallel (depthwise conv, batch norm) branches on one input, summed; mergeable in eval mode."""

    def __init__(self, channels: int, kernels: list[tuple[int, int]], stride: int, large: int):
        super().__init__()
        check_int(channels, "channels C", where=type(self).__name__, ge=1)
        check_int(stride, "stride S", where=type(self).__name__, ge=1)
        self.channels, self.stride, self.large = channels, stride, large
        self.branches = nn.ModuleList(_branch(channels, k, stride) for k in kernels)
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        return sum(branch(x) for branch in self.branches)  # [B, C, H/S, W/S]

    @torch.no_grad()
    def merged(self) -> nn.Conv2d:
        """One K x K depthwise convolution with bias whose output equals this module's in eval mode."""
        if self.training:
            raise RuntimeError("merging needs evaluation mode (call .eval() first): in training mode batch norm "
                               "uses the batch statistics, which no fixed kernel can reproduce")
        size = (self.large, self.large)
        first = self.branches[0][0].weight
        weight = torch.zeros(self.channels, 1, *size, dtype=first.dtype, device=first.device)
        bias = torch.zeros(self.channels, dtype=first.dtype, device=first.device)
        for branch in self.branches:
            w, b = fuse_conv_bn(branch)
            weight += pad_kernel(w, size)
            bias += b
        conv = nn.Conv2d(self.channels, self.channels, size, self.stride, self.large // 2, groups=self.channels,
                         dtype=first.dtype, device=first.device)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv

    def reparameterize(self) -> None:
        """From now on compute with :meth:`merged` (the branches stay, unused, for inspection)."""
        self.fused = self.merged()


class ReparamLargeKernelConv(_Branched):
    """RepLKNet's block: K x K depthwise conv + BN in parallel with k x k depthwise conv + BN, summed.

    Maps ``[B, C, H, W]`` to ``[B, C, H/S, W/S]``.  In evaluation mode, ``merged()`` returns the one K x K
    depthwise convolution with bias that computes the same, and ``reparameterize()`` switches the module to
    it.

    Args:
        channels: C.
        kernel_size: K, odd.
        small_kernel: k, odd and at most K; None keeps only the large branch.
        stride: S.
    """

    def __init__(self, channels: int, *, kernel_size: int = 31, small_kernel: int | None = 5, stride: int = 1):
        _check_kernels(kernel_size, small_kernel, where=type(self).__name__)
        kernels = [(kernel_size, kernel_size)] + ([] if small_kernel is None else [(small_kernel, small_kernel)])
        super().__init__(channels, kernels, stride, kernel_size)


class DecomposedLargeKernelConv(_Branched):
    """SLaK's block: K x N and N x K depthwise kernels and a k x k one, each with BN, summed.

    Maps ``[B, C, H, W]`` to ``[B, C, H/S, W/S]``.  With ``sparsity`` s > 0 each kernel keeps a fixed
    random mask that zeroes round(s * its size) weights per kernel tensor, and a gradient hook keeps them
    at zero.  As for :class:`~visarch.models.large_kernel.ReparamLargeKernelConv`, ``merged()`` gives the
    equivalent K x K convolution in evaluation mode.

    Args:
        channels: C.
        kernel_size: K, odd.
        short: N, the short side of the two rectangular kernels, odd and at most K.
        small_kernel: k, odd and at most K; None for no square branch.
        stride: S.
        sparsity: s, the share of each kernel's weights fixed at zero, in [0, 1).
        generator: the random generator of the masks; None uses the global one.
    """

    def __init__(self, channels: int, *, kernel_size: int = 51, short: int = 5, small_kernel: int | None = 5,
                 stride: int = 1, sparsity: float = 0.0, generator: torch.Generator | None = None):
        _check_kernels(kernel_size, small_kernel, where=type(self).__name__)
        check_int(short, "short side N", where=type(self).__name__, ge=1)
        if short % 2 == 0 or short > kernel_size:
            raise ValueError(f"short side N must be odd and at most K = {kernel_size}, got {short}")
        check_real(sparsity, "sparsity s", where=type(self).__name__, ge=0, lt=1)
        kernels = [(kernel_size, short), (short, kernel_size)]
        kernels += [] if small_kernel is None else [(small_kernel, small_kernel)]
        super().__init__(channels, kernels, stride, kernel_size)
        self.sparsity = sparsity
        for i, branch in enumerate(self.branches):
            weight = branch[0].weight
            zeros = round(sparsity * weight.numel())
            order = torch.randperm(weight.numel(), generator=generator)
            mask = torch.ones(weight.numel(), dtype=weight.dtype)
            mask[order[:zeros]] = 0
            self.register_buffer(f"mask{i}", mask.view_as(weight).to(weight.device))
            if zeros:
                with torch.no_grad():
                    weight.mul_(getattr(self, f"mask{i}"))
                weight.register_hook(lambda g, i=i: g * getattr(self, f"mask{i}"))  # masked weights stay zero

    def nonzero_weights(self) -> int:
        """Kernel weights the masks keep (batch norm not counted)."""
        return sum(int(getattr(self, f"mask{i}").sum()) for i in range(len(self.branches)))
