"""visarch's normalization layers against torch's: forward plus backward, batch, layer, instance and group norm.

Each layer runs on a ResNet-like activation ``[N, C, H, W] = [32, 64, 32, 32]`` (and the other
shapes below) in float32 with affine parameters, in training mode: one forward pass and one
backward pass from a fixed upstream gradient, for ``visarch.functional`` and for
``torch.nn.functional``, taking turns in this process after checking that outputs and
gradients agree.  Run with ``python -m benchmarks normalization``.
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F

from benchmarks._timing import add_timing_arguments, alternating_medians, geometric_mean, use_threads
from visarch.functional import normalization as ours

SHAPES = ((32, 64, 32, 32), (32, 256, 8, 8), (8, 32, 64, 64))
GROUPS = 32


def layers(shape):
    """(name, our call, torch's call, per-channel or per-entry parameter shape) for one input shape."""
    c = shape[1]
    return [
        ("batch", lambda x, w, b: ours.batch_norm(x, None, None, w, b, training=True),
         lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (c,)),
        ("layer", lambda x, w, b: ours.layer_norm(x, shape[1:], w, b),
         lambda x, w, b: F.layer_norm(x, shape[1:], w, b), shape[1:]),
        ("instance", lambda x, w, b: ours.instance_norm(x, weight=w, bias=b),
         lambda x, w, b: F.instance_norm(x, weight=w, bias=b), (c,)),
        ("group", lambda x, w, b: ours.group_norm(x, GROUPS, w, b),
         lambda x, w, b: F.group_norm(x, GROUPS, w, b), (c,)),
    ]


def forward_backward(fn, x, w, b, grad_out):
    """One training step's work for a layer: the output and the gradients of input, weight and bias."""
    y = fn(x, w, b)
    return y, torch.autograd.grad(y, (x, w, b), grad_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks normalization", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first shape only, short timing (smoke test)")
    add_timing_arguments(parser, min_run_time=0.4)
    args = parser.parse_args(argv)
    threads = use_threads(args.threads)
    shapes = SHAPES[:1] if args.quick else SHAPES
    min_run_time = 0.1 if args.quick else args.min_run_time

    print(f"torch {torch.__version__}, {threads} thread(s), float32, training mode, forward + backward; median over "
          f"{args.rounds} alternating rounds of blocked_autorange, {min_run_time} s per function and shape "
          f"(group norm: G = {GROUPS})\n")
    print(f"{'layer':9s} {'input shape':18s} {'ours ms':>9s} {'torch ms':>9s} {'ours/torch':>10s}")
    gen = torch.Generator().manual_seed(0)
    ratios = []
    for shape in shapes:
        for name, our_fn, torch_fn, param_shape in layers(shape):
            x = torch.randn(shape, generator=gen).requires_grad_()
            w, b = (torch.randn(param_shape, generator=gen).requires_grad_() for _ in range(2))
            grad_out = torch.randn(shape, generator=gen)
            # a fast wrong answer must not be reported: check before timing
            (y, grads), (y_ref, grads_ref) = (forward_backward(fn, x, w, b, grad_out) for fn in (our_fn, torch_fn))
            torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
            for got, want in zip(grads, grads_ref, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
            calls = [functools.partial(forward_backward, fn, x, w, b, grad_out) for fn in (our_fn, torch_fn)]
            mine, theirs = alternating_medians(calls, threads=threads, rounds=args.rounds, min_run_time=min_run_time)
            ratios.append(mine / theirs)
            print(f"{name:9s} {str(list(shape)):18s} {mine:9.3f} {theirs:9.3f} {mine / theirs:10.2f}")
    print(f"\ngeometric mean of ours/torch over {len(ratios)} layer-shape pairs: {geometric_mean(ratios):.2f}")
    return 0
