"""visarch attention against torch: speed of scaled_dot_product_attention, peak memory of chunked_attention.

Speed: ``visarch.functional.scaled_dot_product_attention`` against
``torch.nn.functional.scaled_dot_product_attention`` on self-attention shapes [N, K, T, d] with
N = 8, K = 8 heads, d = 64, float32 and T = 64 ... 1024 tokens; the two take turns for a few
rounds of ``torch.utils.benchmark.Timer.blocked_autorange`` and the medians are compared
(``benchmarks.conv2d.median_ms`` is tied to convolution arguments, hence the small loop here).

Memory: the peak of the CPU allocator while one attention call runs, for the textbook version
(``attention_weights(q, k) @ v``, which holds every T x T matrix at once) and for
``chunked_attention``, at T = 4096.  ``torch.profiler.profile(profile_memory=True)`` records
every allocation and every free of torch's CPU allocator as a ``[memory]`` event with a signed
byte count and a timestamp; sorted by time, the running sum of those counts is the memory the
call holds at each moment, and its maximum is the peak.  Tensors that exist before the call
(the inputs) are not counted, only what the call itself allocates.  Both run under
``torch.no_grad()``, as in inference; with autograd the chunked version keeps its blocks for the
backward pass.  Run with ``python -m benchmarks attention``.
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from benchmarks._timing import add_timing_arguments, alternating_medians, use_threads
from visarch.functional.attention import attention_weights, chunked_attention, scaled_dot_product_attention
from visarch.tolerance import reduction_tolerance


def peak_bytes(fn) -> int:
    """Peak of the bytes allocated (minus freed) on the CPU allocator while ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # kineto's raw events hold every allocation (+bytes) and free (-bytes); the parsed
    # FunctionEvents fold those inside an operator into one net number, which hides the peak.
    changes = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    held = peak = 0
    for _, nbytes in changes:
        held += nbytes
        peak = max(peak, held)
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks attention", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 64 and 256 only, short timing (smoke test)")
    add_timing_arguments(parser, min_run_time=0.6)
    parser.add_argument("--memory-tokens", type=int, default=4096, help="T of the memory comparison (default 4096)")
    parser.add_argument("--chunk-size", type=int, default=256, help="key block of chunked_attention (default 256)")
    args = parser.parse_args(argv)

    threads = use_threads(args.threads)
    lengths = (64, 256) if args.quick else (64, 128, 256, 512, 1024)
    min_run_time = 0.1 if args.quick else args.min_run_time
    batch, heads, head_dim = 8, 8, 64

    print(f"torch {torch.__version__}, {threads} thread(s), float32, q = k = v of shape [N={batch}, K={heads}, T, "
          f"d={head_dim}]; median over {args.rounds} alternating rounds of blocked_autorange, "
          f"{min_run_time} s per function and T\n")
    print(f"{'T':>6s} {'ours ms':>10s} {'torch ms':>10s} {'ours/torch':>10s}")
    gen = torch.Generator().manual_seed(0)
    for t in lengths:
        q, k, v = (torch.randn(batch, heads, t, head_dim, generator=gen) for _ in range(3))
        # a fast wrong answer must not be reported: check before timing, within the rounding of the
        # d-term scores and the T-term weighted sum of unit-size values, which grows with their lengths
        torch.testing.assert_close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
                                   **reduction_tolerance(head_dim + t))
        ours, theirs = alternating_medians(
            [functools.partial(fn, q, k, v) for fn in (scaled_dot_product_attention, F.scaled_dot_product_attention)],
            threads=threads, rounds=args.rounds, min_run_time=min_run_time)
        print(f"{t:6d} {ours:10.3f} {theirs:10.3f} {ours / theirs:10.2f}")

    t = 1024 if args.quick else args.memory_tokens
    q, k, v = (torch.randn(1, heads, t, head_dim, generator=gen) for _ in range(3))
    with torch.no_grad():
        torch.testing.assert_close(chunked_attention(q, k, v, chunk_size=args.chunk_size),
                                   scaled_dot_product_attention(q, k, v), **reduction_tolerance(head_dim + t))
        naive = peak_bytes(lambda: attention_weights(q, k) @ v)
        chunked = peak_bytes(lambda: chunked_attention(q, k, v, chunk_size=args.chunk_size))
    matrix = heads * t * t * 4
    print(f"\npeak memory of one call at T={t}, [1, {heads}, T, {head_dim}] float32, no_grad "
          f"(one T x T float32 matrix per head: {matrix / 2**20:.0f} MiB in all):")
    print(f"  attention_weights(q, k) @ v  {naive / 2**20:10.1f} MiB")
    print(f"  chunked_attention (chunk {args.chunk_size}) {chunked / 2**20:7.1f} MiB")
    print(f"  chunked / naive              {chunked / naive:10.3f}")
    return 0
