"""visarch.functional.nl_means against scikit-image's denoise_nl_means (fast mode): time and PSNR.

The image is scikit-image's cameraman (``visarch.data.photograph("camera")``, 512 x 512, grey in
[0, 1]), cropped to its central S x S square for each size S (the whole picture at S = 512),
with Gaussian noise of standard deviation 0.1 drawn from a fixed torch generator.  Both sides get
the same parameters: patch s = 7, search distance d = 11 (a 23 x 23 window), h = 0.08 and sigma = 0.1 (scikit-image's
advice: h = 0.8 sigma in fast mode when sigma is given).  Ours runs in float32, the book's
definition (a centred s x s patch, the exact exponential); scikit-image's Cython loop works in
float64 on one thread.  Before timing, ``skimage_compatible=True`` must reproduce scikit-image's
output to 1e-6, so the two sides are known to compute the same algorithm.

Time: median of alternating rounds of ``blocked_autorange``, ours with ``torch.set_num_threads``
(1 by default, to match scikit-image).  PSNR: of each denoised image against the clean crop, in
dB; "ours - sk" > 0 means ours denoises better.  Run with ``python -m benchmarks nl_means``.
"""

from __future__ import annotations

import argparse
import functools
import math

import numpy as np
import torch
from skimage.restoration import denoise_nl_means

from benchmarks._timing import add_timing_arguments, alternating_medians, geometric_mean, use_threads
from visarch.data import photograph
from visarch.functional.nonlocal_means import nl_means

PARAMS = dict(patch_size=7, patch_distance=11, h=0.08, sigma=0.1)
NOISE = 0.1


def psnr(denoised: torch.Tensor, clean: torch.Tensor) -> float:
    """Peak signal-to-noise ratio for images in [0, 1], in dB."""
    return -10 * math.log10(float(((denoised.double() - clean.double()) ** 2).mean()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks nl_means", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 64 and 128 only (smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512],
                        help="crop sides S (default 128 256 512)")
    add_timing_arguments(parser, min_run_time=2.0)
    args = parser.parse_args(argv)
    threads = use_threads(1 if args.threads is None else args.threads)
    sizes = [64, 128] if args.quick else args.sizes
    min_run_time = 0.3 if args.quick else args.min_run_time
    rounds = 2 if args.quick else args.rounds

    camera = photograph("camera")[0]  # [512, 512]
    noise = NOISE * torch.randn(camera.shape, generator=torch.Generator().manual_seed(0))
    print(f"torch {torch.__version__}, ours on {threads} thread(s) in float32, scikit-image fast mode (float64, "
          f"1 thread); {', '.join(f'{k}={v}' for k, v in PARAMS.items())}; noise sigma {NOISE}; median over "
          f"{rounds} alternating rounds of blocked_autorange, {min_run_time} s per function and size\n")
    print(f"{'image':>9s} {'ours ms':>9s} {'sk ms':>9s} {'ours/sk':>8s} {'noisy dB':>9s} {'ours dB':>8s} "
          f"{'sk dB':>8s} {'ours - sk':>9s}")
    ratios = []
    for size in sizes:
        if size > camera.shape[0]:
            parser.error(f"size {size} exceeds the {camera.shape[0]} x {camera.shape[1]} cameraman")
        top, left = (camera.shape[0] - size) // 2, (camera.shape[1] - size) // 2
        clean = camera[top:top + size, left:left + size].contiguous()
        noisy = clean + noise[top:top + size, left:left + size]
        noisy_np = noisy.numpy()
        theirs = denoise_nl_means(noisy_np, fast_mode=True, **PARAMS)
        # a fast answer to another question must not be reported: check the algorithm first
        same = nl_means(noisy.double(), skimage_compatible=True, **PARAMS)
        np.testing.assert_allclose(same.numpy(), theirs, rtol=0, atol=1e-6)
        ours = nl_means(noisy, **PARAMS)
        calls = [functools.partial(nl_means, noisy, **PARAMS),
                 functools.partial(denoise_nl_means, noisy_np, fast_mode=True, **PARAMS)]
        t_ours, t_sk = alternating_medians(calls, threads=threads, rounds=rounds, min_run_time=min_run_time)
        ratios.append(t_ours / t_sk)
        p_ours, p_sk = psnr(ours, clean), psnr(torch.from_numpy(theirs), clean)
        print(f"{size:4d}x{size:<4d} {t_ours:9.1f} {t_sk:9.1f} {t_ours / t_sk:8.2f} {psnr(noisy, clean):9.2f} "
              f"{p_ours:8.2f} {p_sk:8.2f} {p_ours - p_sk:+9.2f}")
    print(f"\ngeometric mean of ours/sk over {len(ratios)} sizes: {geometric_mean(ratios):.2f}")
    return 0
