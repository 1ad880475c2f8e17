"""Swin's shifted-window attention against global attention: time and memory as the image grows.

The claim (Liu et al., 2021, eq. 1-2): self-attention over all :math:`hw` tokens of an
:math:`h \\times w` map costs :math:`4hwC^2 + 2(hw)^2C` multiply-accumulates, attention inside
:math:`M \\times M` windows :math:`4hwC^2 + 2M^2hwC`, so the first grows quadratically with the image
area and the second linearly.  Here both sides are the book's ``SwinBlock`` (pre-norm attention
with relative position bias, then the MLP) at Swin-T's first stage: C = 96, 3 heads, M = 7.  The
window side is the shifted block (cyclic shift, window attention with the mask, shift back), the
harder of Swin's two blocks; the global side is the same block with one window covering the whole
map (M = h, nothing to shift), i.e. the MSA of eq. 1 in the same code, so the ratio isolates the
windowing.  Maps are h = w = 7k tokens (a 28k-pixel image at patch 4), batch 1, float32.

Time: forward and backward of the block (sum of the output as the loss), the two taking turns for a
few rounds of ``blocked_autorange``; medians in ms.  Memory: the peak of torch's CPU allocator
during one forward and backward (``benchmarks.attention.peak_bytes``: the running sum of the
profiler's allocation and free events), not counting the input.  For each side the growth
exponent is the least-squares slope of log(time) and log(memory) against log(tokens) over the
largest half of the sizes; the closed forms predict 1 (windows) and 2 (global) once the attention
term dominates.  Run with ``python -m benchmarks swin``.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
import torch

from benchmarks._timing import add_timing_arguments, alternating_medians, use_threads
from benchmarks.attention import peak_bytes
from visarch.models.swin import SwinBlock

DIM, HEADS, WINDOW = 96, 3, 7  # Swin-T, stage 1


def blocks(side: int) -> tuple[SwinBlock, SwinBlock]:
    """The shifted-window block and the global-attention block for a ``side x side`` token map."""
    torch.manual_seed(0)
    shifted = SwinBlock(DIM, heads=HEADS, window_size=WINDOW, shift=WINDOW // 2, mlp_ratio=4.0)
    global_ = SwinBlock(DIM, heads=HEADS, window_size=side, shift=0, mlp_ratio=4.0)
    return shifted, global_


def step(block: SwinBlock, x: torch.Tensor) -> None:
    block(x).sum().backward()
    block.zero_grad(set_to_none=True)
    x.grad = None


def macs(tokens: int, window_tokens: int) -> int:
    """Eq. 1-2 of the paper: the attention's multiply-accumulates on ``tokens`` tokens of width C."""
    return 4 * tokens * DIM**2 + 2 * window_tokens * tokens * DIM


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks swin", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="maps of 7k tokens a side for k = 1, 2, 4 (smoke test)")
    parser.add_argument("--max-k", type=int, default=8, help="largest map side in windows, k (default 8: 56 x 56)")
    add_timing_arguments(parser, min_run_time=1.0)
    args = parser.parse_args(argv)
    if args.max_k < 2:
        parser.error(f"--max-k must be at least 2 to measure a growth, got {args.max_k}")
    threads = use_threads(args.threads)
    ks = (1, 2, 4) if args.quick else tuple(range(1, args.max_k + 1))
    min_run_time = 0.2 if args.quick else args.min_run_time
    rounds = 2 if args.quick else args.rounds

    print(f"torch {torch.__version__}, {threads} thread(s), float32, SwinBlock C={DIM}, {HEADS} heads, M={WINDOW}; "
          f"forward + backward, batch 1; median over {rounds} alternating rounds of blocked_autorange, "
          f"{min_run_time} s per block and size\n")
    print(f"{'map':>7s} {'tokens':>6s} {'window ms':>10s} {'global ms':>10s} {'time g/w':>9s} {'MACs g/w':>9s} "
          f"{'window MiB':>10s} {'global MiB':>10s} {'mem g/w':>8s}")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for k in ks:
        side = WINDOW * k
        x = torch.randn(1, side, side, DIM, generator=gen, requires_grad=True)
        shifted, global_ = blocks(side)
        with torch.no_grad():
            assert shifted(x).shape == global_(x).shape == x.shape
        calls = [functools.partial(step, block, x) for block in (shifted, global_)]
        for call in calls:  # one untimed step each: first-call costs (allocation, autograd setup) stay out
            call()
        t_window, t_global = alternating_medians(calls, threads=threads, rounds=rounds, min_run_time=min_run_time)
        m_window, m_global = (peak_bytes(call) / 2**20 for call in calls)
        tokens = side * side
        mac_ratio = macs(tokens, tokens) / macs(tokens, WINDOW**2)
        rows.append((tokens, t_window, t_global, m_window, m_global))
        print(f"{side:3d}x{side:<3d} {tokens:6d} {t_window:10.2f} {t_global:10.2f} {t_global / t_window:9.2f} "
              f"{mac_ratio:9.2f} {m_window:10.1f} {m_global:10.1f} {m_global / m_window:8.2f}")

    upper = rows[len(rows) // 2:]
    tokens = [r[0] for r in upper]
    print(f"\ngrowth exponents over the {len(upper)} largest maps (tokens {tokens[0]} to {tokens[-1]}): "
          f"time ~ tokens^a, memory ~ tokens^b")
    for name, t_col, m_col in (("shifted window", 1, 3), ("global", 2, 4)):
        a = slope(tokens, [r[t_col] for r in upper])
        b = slope(tokens, [r[m_col] for r in upper])
        print(f"  {name:15s} a = {a:.2f}, b = {b:.2f}")
    return 0
