"""visarch.functional.conv_transpose2d against torch.nn.functional.conv_transpose2d on the U-Net upsamplers.

The shapes are the three transposed convolutions of the notes' U-Net ascent (appendix B.2):
TransConv with F = 4, S = 2, P = 1, which doubles the resolution, at 256 -> 256 channels on
4 x 4 -> 8 x 8, 128 -> 128 on 8 x 8 -> 16 x 16, and 64 -> 64 on 16 x 16 -> 32 x 32.

Each shape is timed in this process for torch and for both of our methods, after checking
that the outputs agree.  ``method="subpixel"`` (the default) runs one
visarch.functional.conv2d on the original input per output phase (S^2 of them) and computes
only products of real pixels.  ``method="zero_insertion"``
builds the notes' zero-inserted, padded image and convolves it; about three in four of its
products have a zero input.
Run with ``python -m benchmarks conv_transpose2d``.
"""

from __future__ import annotations

import argparse
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from benchmarks._timing import add_timing_arguments, geometric_mean, use_threads
from benchmarks.conv2d import median_ms
from visarch.functional.transposed import conv_transpose2d, conv_transpose_output_size
from visarch.tolerance import reduction_tolerance


class TransShape(NamedTuple):
    """One transposed convolution: channels in and out, square filter F, stride S, padding P, input H x W.

    ``s`` and ``padding`` are the attributes :func:`benchmarks.conv2d.median_ms` reads.
    """

    c_in: int
    c_out: int
    f: int
    s: int
    padding: int
    h: int
    w: int

    def __str__(self) -> str:
        out = conv_transpose_output_size(self.h, self.f, self.s, self.padding)
        return (f"{self.f}x{self.f} {self.c_in:4d} -> {self.c_out:4d}  S={self.s} P={self.padding}  "
                f"{self.h:2d} -> {out:2d}")


# y10, y7 and y4 of the notes' Ascend (the input H x W is the resolution before upsampling)
UNET_UPSAMPLERS = (
    TransShape(256, 256, 4, 2, 1, 4, 4),
    TransShape(128, 128, 4, 2, 1, 8, 8),
    TransShape(64, 64, 4, 2, 1, 16, 16),
)


def zero_insertion(x, weight, *, stride, padding):
    """The notes' four steps, as written."""
    return conv_transpose2d(x, weight, stride=stride, padding=padding, method="zero_insertion")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks conv_transpose2d",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first shape (smoke test)")
    add_timing_arguments(parser, min_run_time=0.5, batch=32)
    args = parser.parse_args(argv)

    threads = use_threads(args.threads)
    shapes = UNET_UPSAMPLERS[:1] if args.quick else UNET_UPSAMPLERS

    print(f"torch {torch.__version__}, {threads} thread(s), batch N={args.batch}, float32; median over "
          f"{args.rounds} alternating rounds of torch.utils.benchmark blocked_autorange, "
          f"{args.min_run_time} s per function and shape\n")
    print(f"{'shape (H -> H_out)':36s} {'torch ms':>9s} {'subpixel ms':>11s} {'/torch':>7s} "
          f"{'zero-ins. ms':>12s} {'/torch':>7s}")

    torch.manual_seed(0)
    subpixel_ratios, zero_ratios = [], []
    for shape in shapes:
        x = torch.randn(args.batch, shape.c_in, shape.h, shape.w)
        weight = torch.randn(shape.c_in, shape.c_out, shape.f, shape.f) / math.sqrt(shape.c_in * shape.f**2)
        # a fast wrong answer must not be reported: check before timing
        fns = (F.conv_transpose2d, conv_transpose2d, zero_insertion)
        # (within the rounding of a sum of C * ceil(F / S)^2 products, which grows with its length)
        expected = F.conv_transpose2d(x, weight, stride=shape.s, padding=shape.padding)
        magnitude = float(F.conv_transpose2d(x.abs(), weight.abs(), stride=shape.s, padding=shape.padding).mean())
        tol = reduction_tolerance(shape.c_in * math.ceil(shape.f / shape.s) ** 2, scale=magnitude)
        for fn in fns[1:]:
            torch.testing.assert_close(fn(x, weight, stride=shape.s, padding=shape.padding), expected, **tol)
        theirs, subpixel, zeros = median_ms(fns, x, weight, shape, threads=threads, rounds=args.rounds,
                                            min_run_time=args.min_run_time)
        subpixel_ratios.append(subpixel / theirs)
        zero_ratios.append(zeros / theirs)
        print(f"{shape!s:36s} {theirs:9.3f} {subpixel:11.3f} {subpixel / theirs:7.2f} {zeros:12.3f} "
              f"{zeros / theirs:7.2f}")

    print(f"\ngeometric mean over {len(subpixel_ratios)} shapes of ours/torch: subpixel (the default) "
          f"{geometric_mean(subpixel_ratios):5.2f}, zero insertion {geometric_mean(zero_ratios):5.2f}")
    return 0
