"""The U-Net denoiser of book/front_end/unet.ipynb against non-local means: its tuning and its training curve.

The steps are the page's own, from ``visarch.denoising``: the noisy photographs, the baseline, the
settings, the training, the tiles and the symmetries.  Gaussian noise of standard deviation
``SIGMA = 0.1`` on grey photographs in [0, 1]; the U-Net learns from patches of
``visarch.data.TRAIN_PHOTOGRAPHS``, every setting is chosen on ``visarch.data.VALIDATION_PHOTOGRAPH``
(the left view of scikit-image's stereo motorcycle), and the test photograph (the cameraman) is only
scored.

``python -m benchmarks denoise`` (``curve``, the default) trains the page's U-Net, with the page's
settings, for 1x, 2x and 4x the page's number of steps, and prints for each the gain in PSNR over
non-local means at its validation-best setting on the test photograph; the numbers are printed,
never asserted.

``python -m benchmarks denoise tune`` is how the page's settings were chosen, on the validation
photograph only: non-local means over a grid of ``h`` (multiples of sigma) and of patch size and
search distance; then the U-Net over a small grid of peak learning rate and patch size at the
page's training budget of one epoch (one pass over the patches, about the same number of pixels for
either patch size; a second epoch would double the budget), each scored (as on the page) in tiles
averaged over the symmetries, against non-local means at its best validation setting.  The width
of the network and the batch size were compared in trial runs the same way, on the validation
photograph only.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace

import torch

from visarch.denoising import SIGMA, denoise, nl_means_baseline, noisy_pair, symmetric_versions, train_denoiser
from visarch.denoising import DenoiserSettings as Settings

PAGE = Settings()  #: the settings the page uses (chosen with ``tune``)

# The grids of ``tune``.  Non-local means: h as a multiple of sigma (sigma passed to scikit-image),
# (patch_size, patch_distance).
NL_H = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
NL_PATCHES = ((5, 6), (7, 6), (5, 11), (7, 11))
# U-Net: peak learning rate x (epochs, patch size); the step counts stay within the page's budget.
TUNE_LR = (0.005, 0.01, 0.02)
TUNE_EPOCHS_PATCH = ((1, 32), (1, 48))  # one epoch: about the same pixels for either patch size


def nl_means_scores(clean: torch.Tensor, noisy: torch.Tensor, grid=None) -> dict[tuple[float, int, int], float]:
    """PSNR (dB) of scikit-image's fast non-local means for each ``(h / sigma, patch_size, patch_distance)``."""
    from visarch.metrics import psnr

    grid = grid or list(itertools.product(NL_H, NL_PATCHES))
    return {(h, size, distance): psnr(nl_means_baseline(noisy, h, size, distance), clean)
            for h, (size, distance) in grid}


def train(settings: Settings, *, multiple: int = 1) -> tuple[torch.nn.Module, float, int]:
    """The page's training with ``multiple`` times its epochs, on the CPU: ``(model, seconds, steps)``."""
    start = time.perf_counter()
    model, _, steps = train_denoiser(settings, multiple=multiple, device="cpu")
    return model, time.perf_counter() - start, steps


def unet_psnr(model, settings: Settings, clean, noisy) -> float:
    from visarch.metrics import psnr

    versions = symmetric_versions(lambda image: denoise(model, image, tile=settings.patch), noisy,
                                  count=settings.symmetries)
    return psnr(versions.mean(0).clamp(0, 1), clean)


def best_nl_means(scores: dict) -> tuple[tuple[float, int, int], float]:
    key = max(scores, key=scores.get)
    return key, scores[key]


def nl_setting(key) -> str:
    h, size, distance = key
    return f"h = {h:g} sigma, patch {size}, distance {distance}"


def tune(settings: Settings, *, lrs, epochs_patches) -> None:
    from visarch.data import VALIDATION_PHOTOGRAPH

    clean, noisy = noisy_pair(VALIDATION_PHOTOGRAPH)
    print(f"validation photograph: {VALIDATION_PHOTOGRAPH} {tuple(clean.shape[1:])}, sigma = {SIGMA}\n")
    scores = nl_means_scores(clean, noisy)
    print("non-local means (fast mode, sigma given), PSNR in dB:")
    print(f"{'h / sigma':>10s} " + " ".join(f"{f'p{s} d{d}':>8s}" for s, d in NL_PATCHES))
    for h in NL_H:
        print(f"{h:10g} " + " ".join(f"{scores[(h, s, d)]:8.2f}" for s, d in NL_PATCHES))
    key, baseline = best_nl_means(scores)
    print(f"best: {nl_setting(key)}, {baseline:.2f} dB\n")
    print(f"U-Net {settings.channels}, batch {settings.batch}, {settings.symmetries} symmetries; "
          "gain over that non-local means on the validation photograph:")
    print(f"{'lr':>7s} {'epochs':>6s} {'patch':>5s} {'steps':>6s} {'train s':>8s} {'PSNR':>6s} {'gain dB':>8s}")
    results = {}
    for lr, (epochs, patch) in itertools.product(lrs, epochs_patches):
        trial = replace(settings, lr=lr, epochs=epochs, patch=patch)
        model, seconds, steps = train(trial)
        value = unet_psnr(model, trial, clean, noisy)
        results[(lr, epochs, patch)] = value - baseline
        print(f"{lr:7g} {epochs:6d} {patch:5d} {steps:6d} {seconds:8.1f} {value:6.2f} {value - baseline:8.2f}",
              flush=True)
    lr, epochs, patch = max(results, key=results.get)
    print(f"best: lr {lr:g}, {epochs} epoch(s), patch {patch}: gain {results[(lr, epochs, patch)]:.2f} dB")


def curve(settings: Settings, multiples) -> None:
    from visarch.data import TEST_PHOTOGRAPH, VALIDATION_PHOTOGRAPH

    key, _ = best_nl_means(nl_means_scores(*noisy_pair(VALIDATION_PHOTOGRAPH)))
    clean, noisy = noisy_pair(TEST_PHOTOGRAPH)
    baseline = nl_means_scores(clean, noisy, [(key[0], key[1:])])[key]
    print(f"non-local means at its validation best ({nl_setting(key)}) on {TEST_PHOTOGRAPH}: {baseline:.2f} dB")
    print(f"U-Net {settings.channels}, lr {settings.lr:g}, batch {settings.batch}, patch {settings.patch}, "
          f"{settings.symmetries} symmetries; the page trains 1x\n")
    print(f"{'budget':>6s} {'steps':>6s} {'train s':>8s} {'U-Net dB':>9s} {'gain dB':>8s}")
    for multiple in multiples:
        model, seconds, steps = train(settings, multiple=multiple)
        value = unet_psnr(model, settings, clean, noisy)
        print(f"{multiple:5d}x {steps:6d} {seconds:8.1f} {value:9.2f} {value - baseline:8.2f}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks denoise", description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="curve", choices=("curve", "tune"),
                        help="curve: the page's U-Net at 1x, 2x, 4x its steps on the test photograph (default); "
                             "tune: choose the settings on the validation photograph")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4],
                        help="curve: training budgets as multiples of the page's epochs (default 1 2 4)")
    parser.add_argument("--lr", type=float, nargs="+", default=list(TUNE_LR), help="tune: peak learning rates")
    parser.add_argument("--patch", type=int, nargs="+", default=sorted({p for _, p in TUNE_EPOCHS_PATCH}),
                        help="tune: patch sizes (multiples of 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1, as the page)")
    args = parser.parse_args(argv)
    if any(m < 1 for m in args.multiples):
        parser.error(f"--multiples must be positive integers, got {args.multiples}")
    if any(lr <= 0 for lr in args.lr):
        parser.error(f"--lr must be positive, got {args.lr}")
    if any(p < 16 or p % 16 for p in args.patch):
        parser.error(f"--patch must be multiples of 16, got {args.patch}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.mode == "tune":
        tune(PAGE, lrs=args.lr, epochs_patches=[(PAGE.epochs, p) for p in args.patch])
    else:
        curve(PAGE, args.multiples)
    return 0
