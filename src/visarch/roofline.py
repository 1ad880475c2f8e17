r"""The roofline model: how fast a kernel can run, from the arithmetic it does and the bytes it moves.

A kernel that performs :math:`W` floating-point operations and moves :math:`Q` bytes between
main memory and the processor needs at least :math:`W / R` seconds to compute and :math:`Q / B`
seconds to move its data, on a machine that computes at :math:`R` FLOP/s and moves :math:`B`
bytes/s. Its *arithmetic intensity* :math:`I = W / Q` (FLOP per byte) decides which bound
binds: the attainable rate is

.. math:: \min(R,\; I \cdot B),

a sloped line (memory-bound) that meets a flat one (compute-bound) at the *ridge point*
:math:`I = R / B` (Williams, Waterman and Patterson, 2009). Here both machine numbers are
measured with torch on the running machine: :math:`R` as the rate of one large float32 matrix
product, :math:`B` as the rate of copying a float32 buffer far larger than the caches (bytes read
plus bytes written).

An unfused kernel is a chain of operations, each of which runs to completion before the next
starts. If a matrix product of :math:`W` operations runs near :math:`R`, and the chain around it
also writes and reads an intermediate of :math:`Q` bytes through memory, the chain takes at least
:math:`W / R + Q / B`, that is :math:`1 + R / (I B)` times the product alone, with :math:`I` the
intensity of the intermediate, :math:`W / Q` (:func:`unfused_slowdown`). Two intermediates of the
book's kernels are counted here: the patch matrix of im2col convolution (:func:`im2col_traffic`)
and the :math:`L \times S` score matrix of attention computed one operation at a time
(:func:`attention_traffic`).

The operations of a convolution are its multiply-accumulates, which :func:`visarch.cost.conv_macs`
counts; so this module stands one floor above ``visarch.cost``, beside the models.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from visarch.checks import check_int, check_real
from visarch.cost import conv_macs
from visarch.timing import autorange_seconds

__all__ = ["Traffic", "attainable_rate", "attention_traffic", "im2col_traffic", "measure_bandwidth",
           "measure_matmul_rate", "unfused_slowdown"]


def _check_counts(where, **counts):
    for name, value in counts.items():
        check_int(value, name, where=where, ge=1)


def _check_rates(where, **rates):
    for name, value in rates.items():
        check_real(value, name, where=where, gt=0)


class Traffic(NamedTuple):
    """The floating-point operations a kernel performs and the bytes of one intermediate it moves."""

    flops: int
    bytes: int

    @property
    def intensity(self) -> float:
        """Arithmetic intensity I = W / Q, in FLOP per byte."""
        return self.flops / self.bytes


def im2col_traffic(c_in: int, c_out: int, kernel_size: tuple[int, int], output_size: tuple[int, int], *,
                   batch: int = 1, itemsize: int = 4) -> Traffic:
    r"""Matrix-product operations and patch-matrix bytes of one im2col convolution (one group).

    The patch matrix has :math:`C F_h F_w` rows and :math:`H' W'` columns per image; it is written
    once (the copy) and read once (the product), so it moves :math:`2 \cdot s \cdot N C F_h F_w H' W'`
    bytes for items of :math:`s` bytes. The product multiplies it by the :math:`C' \times C F_h F_w`
    filters: the convolution's multiply-accumulates (:func:`visarch.cost.conv_macs`, each entry of
    the patch matrix meeting each of the :math:`C'` filters once), two operations each,
    :math:`2 N C' C F_h F_w H' W'`. The intensity is therefore :math:`C' / s`, whatever the filter or
    the image size.

    Args:
        c_in: input channels C.
        c_out: output channels C'.
        kernel_size: ``(F_h, F_w)``.
        output_size: ``(H', W')``.
        batch: images N.
        itemsize: bytes per number (4 for float32).
    """
    (fh, fw), (h, w) = kernel_size, output_size
    _check_counts("im2col_traffic", c_in=c_in, c_out=c_out, F_h=fh, F_w=fw, H_out=h, W_out=w, batch=batch,
                  itemsize=itemsize)
    macs = batch * conv_macs(c_in, c_out, (fh, fw), (h, w))  # the product, for all N images
    entries = macs // c_out  # of the patch matrices: each meets each of the C' filters once
    return Traffic(flops=2 * macs, bytes=2 * itemsize * entries)


def attention_traffic(length: int, source: int, head_dim: int, *, heads: int = 1, itemsize: int = 4) -> Traffic:
    r"""Operations and score-matrix bytes of attention computed as three separate operations.

    ``Q K^T`` writes the :math:`L \times S` scores, the softmax reads them and writes the
    weights, and the product with ``V`` reads the weights: four passes over :math:`L S` numbers
    per head, :math:`4 s L S` bytes. The two products perform :math:`2 L S d` operations each
    (:math:`d` the width of a head), so the intensity is :math:`d / s` FLOP per byte, whatever
    the number of tokens.

    Args:
        length: queries L.
        source: keys and values S.
        head_dim: width d of one head's queries, keys and values.
        heads: heads (times images) computed.
        itemsize: bytes per number (4 for float32).
    """
    _check_counts("attention_traffic", length=length, source=source, head_dim=head_dim, heads=heads, itemsize=itemsize)
    scores = heads * length * source
    return Traffic(flops=4 * head_dim * scores, bytes=4 * itemsize * scores)


def attainable_rate(intensity: float, *, peak: float, bandwidth: float) -> float:
    """The roofline: ``min(peak, intensity * bandwidth)`` FLOP/s at ``intensity`` FLOP per byte."""
    _check_rates("attainable_rate", intensity=intensity, peak=peak, bandwidth=bandwidth)
    return min(peak, intensity * bandwidth)


def unfused_slowdown(traffic: Traffic, *, peak: float, bandwidth: float) -> float:
    """Lower bound on (product + traffic) / product alone: ``1 + peak / (intensity * bandwidth)``."""
    _check_rates("unfused_slowdown", peak=peak, bandwidth=bandwidth)
    return 1.0 + peak / (traffic.intensity * bandwidth)


def measure_bandwidth(*, megabytes: int = 256, min_run_time: float = 0.3) -> float:
    """Bytes per second of ``dst.copy_(src)`` for two float32 buffers of ``megabytes`` each (read + write).

    The buffers are allocated and touched before timing, so page faults are not counted; use a
    size well above the last-level cache, or the caches' bandwidth is measured instead.
    """
    check_int(megabytes, "megabytes", where="measure_bandwidth", ge=1)
    check_real(min_run_time, "min_run_time", where="measure_bandwidth", gt=0)
    src = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    dst = torch.zeros_like(src)
    return 2 * src.numel() * src.element_size() / autorange_seconds(lambda: dst.copy_(src), min_run_time=min_run_time)


def measure_matmul_rate(*, size: int = 1024, min_run_time: float = 0.3) -> float:
    """FLOP per second of one float32 ``size x size`` matrix product (2 size^3 operations) into a fixed output."""
    check_int(size, "size", where="measure_matmul_rate", ge=1)
    check_real(min_run_time, "min_run_time", where="measure_matmul_rate", gt=0)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen, dtype=torch.float32) for _ in range(2))
    out = torch.empty(size, size, dtype=torch.float32)
    return 2 * size**3 / autorange_seconds(lambda: torch.mm(a, b, out=out), min_run_time=min_run_time)
