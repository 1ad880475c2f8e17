"""One ``step()`` of each visarch optimizer against torch.optim's, on the parameters of a CIFAR ResNet-50.

The parameter set is that of the notes' ResNet-50 for 32 x 32 images and 10 classes: every
convolution of ``benchmarks.conv2d.resnet50_cifar_layers`` (bias-free), a batch-norm weight and
bias per convolution, and the final 2048 -> 10 linear layer, about 23.5 million float32 numbers
in 161 tensors, each with a random gradient.  For each optimizer the two implementations start
from the same parameters and state (a few warm-up steps, so momentum buffers and moving averages
exist) and take turns; torch's runs with its default implementation (on CPU the per-tensor
loop) and with ``foreach=True``.  Run with ``python -m benchmarks optim``.
"""

from __future__ import annotations

import argparse
import functools

import torch

import visarch.optim as vo
from benchmarks._timing import add_timing_arguments, alternating_medians, geometric_mean, use_threads
from benchmarks.conv2d import resnet50_cifar_layers

OPTIMIZERS = (
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    ("Adam", {"lr": 1e-3}),
    ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
)


def resnet50_parameters(gen) -> list[torch.Tensor]:
    """Fresh parameters with random gradients, shaped like the CIFAR ResNet-50's."""
    shapes = []
    for conv in resnet50_cifar_layers():
        shapes += [(conv.c_out, conv.c_in, conv.f, conv.f), (conv.c_out,), (conv.c_out,)]  # conv, BN gamma, beta
    shapes += [(10, 2048), (10,)]
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).mul_(0.05).requires_grad_()
        p.grad = torch.randn(shape, generator=gen).mul_(0.01)
        params.append(p)
    return params


def twins(params):
    """An independent copy of the parameters and their gradients."""
    copies = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = p.grad.clone()
        copies.append(q)
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks optim", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SGD and Adam only, short timing (smoke test)")
    add_timing_arguments(parser, min_run_time=0.6)
    args = parser.parse_args(argv)
    threads = use_threads(args.threads)
    chosen = [o for o in OPTIMIZERS if o[0] in ("SGD", "Adam")][::2] if args.quick else OPTIMIZERS
    min_run_time = 0.2 if args.quick else args.min_run_time

    gen = torch.Generator().manual_seed(0)
    params = resnet50_parameters(gen)
    print(f"torch {torch.__version__}, {threads} thread(s), float32, {len(params)} tensors, "
          f"{sum(p.numel() for p in params) / 1e6:.1f} M parameters; median over {args.rounds} alternating "
          f"rounds of blocked_autorange, {min_run_time} s per optimizer and implementation\n")
    print(f"{'optimizer':44s} {'ours ms':>8s} {'torch ms':>9s} {'foreach ms':>11s} {'/torch':>7s} {'/foreach':>9s}")
    ratios = []
    for name, kwargs in chosen:
        # a fast wrong answer must not be reported: three steps of each must give the same parameters
        ours_p, torch_p, foreach_p = twins(params), twins(params), twins(params)
        optimizers = (getattr(vo, name)(ours_p, **kwargs), getattr(torch.optim, name)(torch_p, **kwargs),
                      getattr(torch.optim, name)(foreach_p, **kwargs, foreach=True))
        for _ in range(3):
            for opt, copies in zip(optimizers, (ours_p, torch_p, foreach_p), strict=True):
                for q, p in zip(copies, params, strict=True):  # torch's foreach Nesterov step writes into .grad
                    q.grad.copy_(p.grad)
                opt.step()
        for a, b, c in zip(ours_p, torch_p, foreach_p, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
        mine, theirs, foreach = alternating_medians([functools.partial(opt.step) for opt in optimizers],
                                                    threads=threads, rounds=args.rounds, min_run_time=min_run_time)
        ratios.append(mine / theirs)
        label = f"{name} {kwargs}"
        print(f"{label:44s} {mine:8.2f} {theirs:9.2f} {foreach:11.2f} {mine / theirs:7.2f} {mine / foreach:9.2f}")
    print(f"\ngeometric mean of ours/torch (default implementation): {geometric_mean(ratios):.2f}")
    return 0
