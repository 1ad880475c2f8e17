"""visarch.functional.conv2d against torch.nn.functional.conv2d on the CIFAR ResNet-50 layers.

The layer shapes come from walking the network of the notes: a 3x3 stem (3 -> 64, stride 1,
padding 1) on a 3x32x32 input, then four stacks of B = 3, 4, 6, 3 bottleneck blocks of width
C' = 64, 128, 256, 512.  A block is 1x1 (C -> C'), 3x3 (C' -> C', stride S', padding 1),
1x1 (C' -> 4C'); the first block of a stack has a 1x1 stride-S' projection shortcut, with
S' = 2 in stacks 2..4 and S' = 1 in stack 1 (whose projection maps 64 -> 256 channels).

Each distinct shape (C_in, C_out, F, S, H, W) is timed once for both functions in this
process, after checking that the two outputs agree.  Beside each ratio, ``bound`` is the least
time of ``conv2d`` in units of its matrix product alone at this machine's measured rate: the copy
into the patch matrix, at the measured copy bandwidth, comes on top (``visarch.roofline``; the
Building blocks chapter's 2D convolution page derives it).  A 1x1 stride-1 layer copies nothing.
Run with ``python -m benchmarks conv2d``.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from benchmarks._timing import add_timing_arguments, alternating_medians, geometric_mean, use_threads
from visarch.functional import conv2d, conv_output_size
from visarch.roofline import im2col_traffic, measure_bandwidth, measure_matmul_rate, unfused_slowdown
from visarch.tolerance import reduction_tolerance


class ConvShape(NamedTuple):
    """One convolution layer: channels in and out, square filter F, stride S, input H x W."""

    c_in: int
    c_out: int
    f: int
    s: int
    h: int
    w: int

    @property
    def padding(self) -> int:
        return self.f // 2  # 1 for the 3x3 convolutions, 0 for the 1x1 ones

    def __str__(self) -> str:
        return f"{self.f}x{self.f} {self.c_in:4d} -> {self.c_out:4d}  S={self.s}  {self.h:2d}x{self.w:<2d}"


def resnet50_cifar_layers(
    image: tuple[int, int, int] = (3, 32, 32),
    blocks: tuple[int, ...] = (3, 4, 6, 3),
    widths: tuple[int, ...] = (64, 128, 256, 512),
    expansion: int = 4,
) -> Iterator[ConvShape]:
    """Every convolution of the network, in forward order (with repeats)."""
    c, size, _ = image
    stem = ConvShape(c, widths[0], 3, 1, size, size)
    yield stem
    c = stem.c_out
    for stack, (n_blocks, width) in enumerate(zip(blocks, widths, strict=True)):
        for block in range(n_blocks):
            stride = 2 if stack > 0 and block == 0 else 1  # S' of this block
            out = conv_output_size(size, 3, stride, 1)
            yield ConvShape(c, width, 1, 1, size, size)
            yield ConvShape(width, width, 3, stride, size, size)
            yield ConvShape(width, expansion * width, 1, 1, out, out)
            if stride != 1 or c != expansion * width:  # projection shortcut
                yield ConvShape(c, expansion * width, 1, stride, size, size)
            c, size = expansion * width, out


def median_ms(fns, x, weight, shape: ConvShape, *, threads: int, rounds: int, min_run_time: float) -> list[float]:
    """Median time in ms of one call ``fn(x, weight, stride=S, padding=P)`` of each of ``fns``, taking turns."""
    calls = [functools.partial(fn, x, weight, stride=shape.s, padding=shape.padding) for fn in fns]
    return alternating_medians(calls, threads=threads, rounds=rounds, min_run_time=min_run_time)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks conv2d", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first shape of each group (smoke test)")
    add_timing_arguments(parser, min_run_time=0.5, batch=32)
    args = parser.parse_args(argv)

    threads = use_threads(args.threads)

    uses = Counter(resnet50_cifar_layers())  # distinct shapes, in order of first appearance
    groups = {f"{f}x{f}": [shape for shape in uses if shape.f == f] for f in (3, 1)}
    if args.quick:
        groups = {name: shapes[:1] for name, shapes in groups.items()}

    print(f"torch {torch.__version__}, {threads} thread(s), batch N={args.batch}, float32; median over "
          f"{args.rounds} alternating rounds of torch.utils.benchmark blocked_autorange, "
          f"{args.min_run_time} s per function and shape")
    peak, bandwidth = measure_matmul_rate(), measure_bandwidth()
    print(f"this machine: matrix product R = {peak / 1e9:.0f} GFLOP/s, copy B = {bandwidth / 1e9:.1f} GB/s")
    print(f"{sum(uses.values())} convolutions in the network, {len(uses)} distinct shapes "
          "(H x W is the input size; uses = layers of that shape)\n")
    print(f"{'shape':30s} {'uses':>4s} {'ours ms':>10s} {'torch ms':>10s} {'ours/torch':>10s} {'bound':>6s}")

    torch.manual_seed(0)
    ratios = {}
    for name, shapes in groups.items():
        ratios[name] = []
        for shape in shapes:
            x = torch.randn(args.batch, shape.c_in, shape.h, shape.w)
            weight = torch.randn(shape.c_out, shape.c_in, shape.f, shape.f) / math.sqrt(shape.c_in * shape.f**2)
            # a fast wrong answer must not be reported: check before timing
            # (within the rounding of a sum of C * F * F products, which grows with its length)
            expected = F.conv2d(x, weight, stride=shape.s, padding=shape.padding)
            magnitude = float(F.conv2d(x.abs(), weight.abs(), stride=shape.s, padding=shape.padding).mean())
            torch.testing.assert_close(conv2d(x, weight, stride=shape.s, padding=shape.padding), expected,
                                       **reduction_tolerance(shape.c_in * shape.f**2, scale=magnitude))
            ours, theirs = median_ms((conv2d, F.conv2d), x, weight, shape, threads=threads,
                                     rounds=args.rounds, min_run_time=args.min_run_time)
            ratios[name].append(ours / theirs)
            out = conv_output_size(shape.h, shape.f, shape.s, shape.padding)
            traffic = im2col_traffic(shape.c_in, shape.c_out, (shape.f, shape.f), (out, out), batch=args.batch)
            copies = shape.f > 1 or shape.s > 1
            bound = f"{unfused_slowdown(traffic, peak=peak, bandwidth=bandwidth):6.2f}" if copies else f"{'-':>6s}"
            print(f"{shape!s:30s} {uses[shape]:4d} {ours:10.3f} {theirs:10.3f} {ours / theirs:10.2f} {bound}")

    print("\ngeometric mean of ours/torch:")
    for name, values in ratios.items():
        print(f"  {name} ({len(values):2d} shapes) {geometric_mean(values):6.2f}")
    every = [r for values in ratios.values() for r in values]
    print(f"  all ({len(every):2d} shapes) {geometric_mean(every):6.2f}")
    return 0
