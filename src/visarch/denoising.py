r"""Denoising photographs with a small U-Net, against non-local means: the experiment of the U-Net page.

Gaussian noise of standard deviation :math:`\sigma = 0.1` (:data:`SIGMA`, on intensities in [0, 1]) is
added to grey photographs of :mod:`visarch.data`, one fixed draw per photograph (:func:`noisy_pair`).
The U-Net predicts the *noise*: it trains on patches of the training photographs by minimising

.. math::

    \mathcal L = \frac{1}{B\,HW} \sum_{b=1}^{B} \lVert f(g(x_b) + n_b, u) - n_b \rVert^2, \qquad
    n_b \sim \mathcal N(0, \sigma^2 I),

where :math:`g` is one of the eight symmetries of the square (a turn by a multiple of 90 degrees,
mirrored or not) drawn for the batch and :math:`u = 0` the context (:func:`noise_loss`), and the
estimate of a picture is the noisy image minus the predicted noise.  A photograph is denoised in tiles
of the training patches' size (:func:`denoise`), optionally averaged over several symmetric versions
(:func:`symmetric_versions`).  The baseline is scikit-image's fast non-local means (:func:`nl_means_baseline`).

The settings (:class:`DenoiserSettings`) were chosen on the validation photograph by
``python -m benchmarks denoise tune``; :func:`train_denoiser` trains the page's network with them,
and the same benchmark trains it for longer.  ``tests/test_denoising.py`` checks each step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_ints, check_real
from visarch.data import photo_patches, photograph
from visarch.models import create
from visarch.train import History, fit

__all__ = ["SIGMA", "SYMMETRIES", "DenoiserSettings", "build_denoiser", "denoise", "nl_means_baseline", "noise_loss",
           "noisy_pair", "symmetric_versions", "train_denoiser"]

SIGMA = 0.1  #: the noise's standard deviation on intensities in [0, 1] (about 25 grey levels of 255)


@dataclass(frozen=True)
class DenoiserSettings:
    """Everything the U-Net page's training fixes; the defaults are the page's values.

    One field per choice; each field's comment says what it sets.
    """

    channels: tuple[int, ...] = (8, 16, 32, 64)  #: channels per resolution of the U-Net
    lr: float = 0.01  #: the peak of the one-cycle learning rate (Adam)
    epochs: int = 1  #: passes over the patches
    batch: int = 8  #: patches per step
    patch: int = 32  #: side of a training patch (and of a tile when denoising), a multiple of 16
    symmetries: int = 4  #: symmetric versions averaged when denoising (1 to 8)

    def __post_init__(self):
        where = "DenoiserSettings"
        check_ints(self.channels, "channels", where=where, ge=8)  # group norm with 8 groups
        check_real(self.lr, "lr", where=where, gt=0)
        check_int(self.epochs, "epochs", where=where, ge=1)
        check_int(self.batch, "batch", where=where, ge=1)
        check_int(self.patch, "patch", where=where, ge=16)
        if self.patch % 16:
            raise ValueError(f"{where}: patch must be a multiple of 16 (tiles overlap by half, margins of a "
                             f"quarter), got {self.patch}")
        check_int(self.symmetries, "symmetries", where=where, ge=1, le=8)  # the symmetries of the square

    @property
    def stride(self) -> int:
        """The distance between neighbouring training patches, ``patch // 2`` pixels, so that they overlap by half."""
        return self.patch // 2


def noisy_pair(name: str, *, sigma: float = SIGMA, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clean, noisy)``: a photograph of :func:`~visarch.data.photograph`, and it plus one fixed draw of noise.

    The photograph is cropped, centred, to sides that are multiples of 16, so that tiles of 32 pixels, 16
    apart, cover it exactly.

    Args:
        name: a photograph's name (e.g. :data:`~visarch.data.VALIDATION_PHOTOGRAPH`).
        sigma: the noise's standard deviation.
        seed: the seed of the noise.

    Returns:
        Two ``[1, H, W]`` float32 tensors; the noisy one is not clipped to [0, 1].
    """
    check_real(sigma, "sigma", where="noisy_pair", gt=0)
    clean = photograph(name)
    h, w = (side - side % 16 for side in clean.shape[1:])
    top, left = (clean.shape[1] - h) // 2, (clean.shape[2] - w) // 2
    clean = clean[:, top:top + h, left:left + w].contiguous()
    return clean, clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))


def nl_means_baseline(image: torch.Tensor, h: float, patch_size: int, patch_distance: int, *,
             sigma: float = SIGMA) -> torch.Tensor:
    """Scikit-image's fast non-local means of a noisy ``[1, H, W]`` image, clipped to [0, 1].

    Args:
        image: the noisy image ``[1, H, W]``.
        h: the cut-off distance as a multiple of ``sigma`` (scikit-image's ``h`` is ``h * sigma``).
        patch_size: the side of the compared patches.
        patch_distance: how far, in pixels, similar patches are searched.
        sigma: the noise's standard deviation, given to scikit-image.

    Returns:
        ``[1, H, W]`` float32.
    """
    from skimage.restoration import denoise_nl_means  # imported here: only this function needs it

    check_real(h, "h", where="nl_means_baseline", gt=0)
    check_real(sigma, "sigma", where="nl_means_baseline", gt=0)
    if image.dim() != 3 or image.shape[0] != 1:
        raise ValueError(f"nl_means_baseline: image must be one grey picture [1, H, W], got shape "
                         f"{tuple(image.shape)}")
    out = denoise_nl_means(image[0].double().numpy(), h=h * sigma, sigma=sigma, patch_size=patch_size,
                           patch_distance=patch_distance, fast_mode=True)
    return torch.tensor(out, dtype=torch.float32)[None].clamp(0, 1)


def build_denoiser(settings: DenoiserSettings = DenoiserSettings()) -> nn.Module:
    """The page's U-Net for one grey channel, from torch's global generator, in channels-last layout.

    Four resolutions of ``settings.channels``, one residual block each on the way down, group norm with
    8 groups, no dropout, no attention at the resolutions (the middle block keeps its one attention
    layer) and a context of 32 numbers.
    """
    channels = settings.channels
    model = create("unet", in_channels=1, base_channels=channels[0], channels=channels,
                   attention=(False,) * len(channels), blocks=1, groups=8, embed_dim=32, dropout=0.0)
    return model.to(memory_format=torch.channels_last)


def _embed_dim(model: nn.Module) -> int:
    return getattr(model, "module", model).config.embed_dim  # through a DistributedDataParallel wrapper


def noise_loss(model: nn.Module, batch: torch.Tensor, *, sigma: float = SIGMA) -> torch.Tensor:
    """The mean squared error of the noise ``model`` predicts on clean patches plus fresh noise.

    A ``loss_fn`` for :func:`~visarch.train.loop.fit`.  The batch is turned by a random multiple of 90
    degrees and mirrored or not (one draw for the whole batch, from torch's global generator, which
    ``fit`` seeds), then noise of standard deviation ``sigma`` is drawn for every pixel.

    Args:
        model: a U-Net ``(x [B, 1, h, w], u [B, d]) -> predicted noise [B, 1, h, w]`` with ``config.embed_dim``;
            it receives ``u = 0``.
        batch: clean patches ``[B, 1, h, w]``.
        sigma: the noise's standard deviation.

    Returns:
        The scalar loss.
    """
    k, mirror = int(torch.randint(4, (1,))), bool(torch.randint(2, (1,)))
    batch = torch.rot90(batch, k, dims=(2, 3))
    batch = (batch.flip(3) if mirror else batch).contiguous(memory_format=torch.channels_last)
    noise = sigma * torch.randn_like(batch)
    context = batch.new_zeros(1, _embed_dim(model))  # u: one noise level, nothing to tell the network
    return F.mse_loss(model(batch + noise, context.expand(len(batch), -1)), noise)


def train_denoiser(settings: DenoiserSettings = DenoiserSettings(), *, patches: torch.Tensor | None = None,
                   multiple: int = 1, seed: int = 0, device=None) -> tuple[nn.Module, History, int]:
    """The page's training: :func:`build_denoiser` after ``torch.manual_seed(seed)``, Adam and a one-cycle
    learning rate, :func:`noise_loss` over the patches for ``multiple`` times ``settings.epochs``.

    Args:
        settings: the network's width, the learning rate, epochs, batch and patch size.
        patches: the training patches ``[N, 1, patch, patch]`` (default: every patch of the training
            photographs, :func:`~visarch.data.photo_patches`, ``settings.stride`` apart).
        multiple: train for this many times ``settings.epochs``.
        seed: the seed of the initial weights, of the batches and of the noise.
        device: where to train (default: :func:`~visarch.train.loop.fit`'s).

    Returns:
        ``(model, history, steps)``: the trained U-Net on the CPU in evaluation mode, the
        :class:`~visarch.train.loop.History` of :func:`~visarch.train.loop.fit`, and the number of optimizer steps.
    """
    check_int(multiple, "multiple", where="train_denoiser", ge=1)
    if patches is None:
        patches = photo_patches(settings.patch, stride=settings.stride)  # [N, 1, patch, patch]
    torch.manual_seed(seed)
    model = build_denoiser(settings)
    epochs = settings.epochs * multiple
    steps = epochs * (len(patches) // settings.batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=steps, pct_start=0.05)
    history = fit(model, noise_loss, (patches,), epochs=epochs, batch_size=settings.batch, optimizer=optimizer,
                  scheduler=schedule, seed=seed, device=device)
    return model.cpu().eval(), history, steps


@torch.inference_mode()
def denoise(model: nn.Module, image: torch.Tensor, *, tile: int = 32, context: torch.Tensor | None = None
            ) -> torch.Tensor:
    """A picture denoised in tiles of the training patches' size: ``[1, H, W] -> [1, H, W]``.

    Group norm takes its statistics over the whole image it is given, so the network sees tiles like the
    patches it learned on: ``tile x tile`` tiles, ``tile // 2`` apart, of which only the central
    ``tile // 2`` square is kept (the picture is padded by reflection, so the border pixels are central in
    some tile too).  Each kept pixel is the noisy one minus the predicted noise.

    Args:
        model: ``(x [B, 1, tile, tile], u [B, d]) -> predicted noise``, e.g. :func:`train_denoiser`'s.
        image: the noisy picture ``[1, H, W]``, of any size at least ``tile // 4`` on each side.
        tile: the side of a tile, a multiple of 4.
        context: ``u`` ``[1, d]`` for every tile (default: zeros of the model's ``config.embed_dim``).

    Returns:
        ``[1, H, W]``, not clipped.
    """
    check_int(tile, "tile", where="denoise", ge=4)
    if tile % 4:
        raise ValueError(f"denoise: tile must be a multiple of 4 (keep the centre half, margins of a quarter), "
                         f"got {tile}")
    if image.dim() != 3 or image.shape[0] != 1:
        raise ValueError(f"denoise: image must be one grey picture [1, H, W], got shape {tuple(image.shape)}")
    keep, margin = tile // 2, tile // 4
    height, width = image.shape[1:]
    image = F.pad(image[None], (0, -width % keep, 0, -height % keep), mode="reflect")[0]  # sides: multiples of keep
    padded = F.pad(image[None], (margin,) * 4, mode="reflect")  # [1, 1, H + tile/2, W + tile/2]
    tiles = padded.unfold(2, tile, keep).unfold(3, tile, keep)  # [1, 1, rows, cols, tile, tile]
    rows, cols = tiles.shape[2:4]
    tiles = tiles.reshape(rows * cols, 1, tile, tile).contiguous(memory_format=torch.channels_last)
    if context is None:
        context = torch.zeros(1, _embed_dim(model))
    noise = torch.cat([model(t, context.expand(len(t), -1)) for t in tiles.split(256)])
    centres = (tiles - noise)[:, :, margin:margin + keep, margin:margin + keep]  # [rows cols, 1, keep, keep]
    out = centres.reshape(rows, cols, keep, keep).permute(0, 2, 1, 3).reshape(1, rows * keep, cols * keep)
    return out[:, :height, :width]


#: the eight symmetries of the square as (quarter turns, mirrored), in the order they are used
SYMMETRIES = tuple(itertools.product(range(4), (False, True)))


def symmetric_versions(fn, image: torch.Tensor, *, count: int = 4) -> torch.Tensor:
    """``fn`` applied to symmetric versions of a picture, each result turned back: ``[count, 1, H, W]``.

    The versions are the first ``count`` of: as it is, mirrored, turned by 90 degrees, turned and
    mirrored, turned by 180 degrees, ...  Their mean is a *self-ensemble*: a network that is not exactly
    symmetric makes slightly different errors on each version, which partly cancel.

    Args:
        fn: a function ``[1, H, W] -> [1, H, W]`` (``[1, W, H]`` for a turned picture), e.g. a denoiser.
        image: ``[1, H, W]``.
        count: how many versions, 1 to 8.

    Returns:
        ``[count, 1, H, W]``; entry 0 is ``fn(image)``.
    """
    check_int(count, "count", where="symmetric_versions", ge=1, le=8)  # the symmetries of the square
    results = []
    for k, mirror in SYMMETRIES[:count]:
        x = torch.rot90(image, k, dims=(1, 2))
        y = fn(x.flip(2) if mirror else x)
        results.append(torch.rot90(y.flip(2) if mirror else y, -k, dims=(1, 2)))
    return torch.stack(results)
