"""visarch.denoising, the U-Net page's experiment step by step: the noisy photographs are a centred crop
plus torch's draw of noise, the baseline is scikit-image's non-local means, the loss is the error of the
predicted noise on one of the eight symmetric versions of the batch, the tiles put every pixel back where
it was, and the symmetric versions are turned back (their mean removes any position-dependent ramp)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.restoration import denoise_nl_means
from torch import nn

from visarch.data import TEST_PHOTOGRAPH, VALIDATION_PHOTOGRAPH, photograph
from visarch.denoising import (
    SIGMA,
    DenoiserSettings,
    build_denoiser,
    denoise,
    nl_means_baseline,
    noise_loss,
    noisy_pair,
    symmetric_versions,
    train_denoiser,
)


class Config:
    embed_dim = 32


class NoNoise(nn.Module):
    """Predicts zero noise and keeps what it was given."""

    config = Config

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, u):
        self.seen.append((x, u))
        return torch.zeros_like(x)


class HalfOfIt(NoNoise):
    """A pointwise 'denoiser': half of every pixel is noise, wherever the pixel sits in its tile."""

    def forward(self, x, u):
        return 0.5 * x


# --------------------------------------------------------------------------- settings and data


def test_settings_are_the_page_s_and_patches_overlap_by_half():
    page = DenoiserSettings()
    assert (page.channels, page.lr, page.epochs, page.batch, page.patch, page.symmetries) == (
        (8, 16, 32, 64), 0.01, 1, 8, 32, 4)
    assert page.stride == 16 and DenoiserSettings(patch=48).stride == 24


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"patch": 40}, ValueError, "patch must be a multiple of 16"),
    ({"symmetries": 9}, ValueError, r"symmetries must be in \[1, 8\], got 9"),
    ({"lr": 0}, ValueError, "lr must be > 0"),
    ({"channels": ()}, ValueError, "channels must be a non-empty tuple of ints, each >= 8"),
    ({"batch": 2.0}, TypeError, "batch must be an int"),
])
def test_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DenoiserSettings(**kwargs)


@pytest.mark.parametrize("name, top, left, size", [(VALIDATION_PHOTOGRAPH, 2, 2, (496, 736)),
                                                   (TEST_PHOTOGRAPH, 0, 0, (512, 512))])
def test_noisy_pair_is_a_centred_crop_plus_a_fixed_draw(name, top, left, size):
    clean, noisy = noisy_pair(name)
    whole = photograph(name)
    assert tuple(clean.shape) == (1, *size)
    assert torch.equal(clean, whole[:, top:top + size[0], left:left + size[1]])
    expected = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy - clean, SIGMA * expected, rtol=0, atol=1e-6)
    assert not torch.equal(noisy_pair(name, seed=1)[1], noisy)


def test_the_baseline_is_scikit_image_s_fast_non_local_means():
    clean, noisy = noisy_pair(TEST_PHOTOGRAPH)
    crop = noisy[:, 200:264, 200:280]
    ours = nl_means_baseline(crop, 0.6, 5, 6)
    theirs = denoise_nl_means(crop[0].double().numpy(), h=0.06, sigma=0.1, patch_size=5, patch_distance=6,
                              fast_mode=True)
    np.testing.assert_allclose(ours[0].numpy(), np.clip(theirs, 0, 1), rtol=0, atol=1e-6)
    assert ours.dtype == torch.float32 and ours.shape == crop.shape


# --------------------------------------------------------------------------- the loss


def test_noise_loss_scores_the_noise_added_to_one_symmetric_version_of_the_batch():
    batch = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    versions = {}  # (turns, mirrored) -> the batch so transformed, built from torch's rot90 and flip
    for k, mirror in itertools.product(range(4), (False, True)):
        turned = torch.rot90(batch, k, dims=(2, 3))
        versions[k, mirror] = turned.flip(3) if mirror else turned
    drawn = set()
    for seed in range(40):
        model = NoNoise()
        torch.manual_seed(seed)
        loss = noise_loss(model, batch)
        (x, u), = model.seen
        assert torch.equal(u, torch.zeros(4, 32)) and x.is_contiguous(memory_format=torch.channels_last)
        close = [key for key, v in versions.items() if (x - v).abs().max() < 6 * SIGMA]
        assert len(close) == 1  # the input is exactly one version plus noise
        noise = x - versions[close[0]]
        assert 0.07 < noise.std().item() < 0.13  # sigma = 0.1 over 256 pixels
        torch.testing.assert_close(loss, F.mse_loss(torch.zeros_like(noise), noise))
        drawn.add(close[0])
    assert len(drawn) == 8  # every symmetry occurs


def test_noise_loss_follows_the_global_seed():
    batch = torch.rand(2, 1, 8, 8)
    losses = []
    for _ in range(2):
        torch.manual_seed(3)
        losses.append(noise_loss(NoNoise(), batch, sigma=0.2))
    assert torch.equal(losses[0], losses[1])


# --------------------------------------------------------------------------- tiles and symmetries


@pytest.mark.parametrize("tile, shape", [(32, (1, 48, 80)), (48, (1, 50, 70)), (16, (1, 13, 9))])
def test_tiles_return_the_input_for_zero_noise_and_put_every_pixel_back(tile, shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(denoise(NoNoise(), image, tile=tile), image)
    torch.testing.assert_close(denoise(HalfOfIt(), image, tile=tile), 0.5 * image, rtol=0, atol=0)


def test_tiles_get_the_context_they_are_given():
    model, image = NoNoise(), torch.rand(1, 32, 32)
    denoise(model, image)
    assert all(torch.equal(u, torch.zeros(len(x), 32)) for x, u in model.seen)
    model.seen.clear()
    context = torch.randn(1, 5)
    denoise(model, image, tile=16, context=context)
    assert all(torch.equal(u, context.expand(len(x), -1)) for x, u in model.seen)
    assert all(x.shape[1:] == (1, 16, 16) for x, _ in model.seen)


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_symmetric_versions_are_turned_back(count):
    n = 6
    image = torch.rand(1, n, n, generator=torch.Generator().manual_seed(0))
    ramp = torch.arange(n, dtype=torch.float32).expand(1, n, n)  # the column index of every pixel
    versions = symmetric_versions(lambda x: x + ramp, image, count=count)  # not symmetric: it sees columns
    assert versions.shape == (count, 1, n, n)
    torch.testing.assert_close(versions[0], image + ramp)
    if count > 1:  # each pair (g, g mirrored) sees every column index j and n - 1 - j: the ramp averages out
        torch.testing.assert_close(versions.mean(0), image + (n - 1) / 2)
    rectangle = torch.rand(1, 4, 7)
    assert torch.equal(symmetric_versions(lambda x: x.square(), rectangle, count=count),
                       rectangle.square().expand(count, 1, 4, 7))


# --------------------------------------------------------------------------- the network and its training


def test_the_page_s_network_and_a_short_training_run():
    settings = DenoiserSettings(channels=(8, 16), epochs=1, batch=4)
    torch.manual_seed(0)
    model = build_denoiser(settings)
    assert model.config.channels == (8, 16) and model.config.in_channels == 1 and model.config.embed_dim == 32
    assert model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    patches = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    runs = [train_denoiser(settings, patches=patches, multiple=2, device="cpu") for _ in range(2)]
    (trained, history, steps), (again, _, _) = runs
    assert steps == 4 and len(history.loss) == 2 and not trained.training  # 2 epochs of 10 // 4 = 2 steps
    assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), again.parameters(), strict=True))
    assert not torch.equal(trained.conv_in.weight, model.conv_in.weight)  # it trained from the same start


@pytest.mark.parametrize("call, exc, match", [
    (lambda: denoise(NoNoise(), torch.rand(1, 8, 8), tile=18), ValueError, "tile must be a multiple of 4"),
    (lambda: denoise(NoNoise(), torch.rand(2, 8, 8)), ValueError, r"image must be one grey picture \[1, H, W\]"),
    (lambda: symmetric_versions(lambda x: x, torch.rand(1, 4, 4), count=0), ValueError,
     r"count must be in \[1, 8\], got 0"),
    (lambda: nl_means_baseline(torch.rand(1, 8, 8), -1.0, 3, 2), ValueError, "h must be > 0"),
    (lambda: train_denoiser(multiple=0), ValueError, "multiple must be >= 1"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
