"""Non-local means: the vectorised version against the pixel-by-pixel definition, against
scikit-image's ``denoise_nl_means``, its limits in h, and its argument checks."""

import struct

import numpy as np
import pytest
import torch

import visarch.functional.nonlocal_means as nlm_module
from visarch.functional.nonlocal_means import (
    NLMeansConfig,
    nl_means,
    nl_means_loop,
    nl_means_weights,
    reflect_pad,
    schraudolph_exp,
)

skimage_restoration = pytest.importorskip("skimage.restoration")

# (shape, s, d, h, sigma): odd and even sides, patches from 1 to 7, windows from 1 to 11 pixels
# away, with and without the noise correction
SMALL_CASES = [
    ((7, 8), 3, 2, 0.2, 0.0),
    ((6, 5), 1, 1, 0.3, 0.05),
    ((9, 7), 5, 3, 0.25, 0.1),
    ((3, 6, 5), 3, 2, 0.3, 0.05),
    ((2, 2, 5, 6), 3, 1, 0.2, 0.0),
]
SKIMAGE_CASES = [
    ((12, 13), 3, 2, 0.2, 0.0),
    ((20, 17), 5, 4, 0.15, 0.05),
    ((30, 30), 7, 11, 0.1, 0.1),
    ((16, 16), 7, 5, 0.3, 0.1),
    ((9, 40), 5, 6, 0.08, 0.0),
    ((8, 8), 1, 2, 0.1, 0.0),
]


def random_image(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("pad", [0, 1, 5, 13])
def test_reflect_pad_matches_numpy(n, pad):
    x = random_image((n, n + 2))
    np.testing.assert_array_equal(reflect_pad(x, pad).numpy(), np.pad(x.numpy(), pad, mode="reflect"))


@pytest.mark.parametrize("fast_mode", [True, False])
@pytest.mark.parametrize(("shape", "s", "d", "h", "sigma"), SMALL_CASES)
def test_vectorised_equals_loop(shape, s, d, h, sigma, fast_mode):
    # same sums in another order: float64 rounding only
    x = random_image(shape)
    kw = dict(patch_size=s, patch_distance=d, h=h, sigma=sigma, fast_mode=fast_mode)
    torch.testing.assert_close(nl_means(x, **kw), nl_means_loop(x, **kw), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("shape", "s", "d", "h", "sigma"), SMALL_CASES[:3])
def test_skimage_compatible_vectorised_equals_loop(shape, s, d, h, sigma):
    x = random_image(shape, seed=1)
    kw = dict(patch_size=s, patch_distance=d, h=h, sigma=sigma, skimage_compatible=True)
    torch.testing.assert_close(nl_means(x, **kw), nl_means_loop(x, **kw), rtol=0, atol=1e-12)


# One unit in the last place of the 32-bit integer of Schraudolph's exponential is a relative step
# of 2^-20 in a weight; if rounding in another summation order moves the integer by one for some
# weight, a weighted mean of values in [0, 1] moves by less than 2^-20 (about 1e-6).  Anything
# larger would be a difference in the definition.
SKIMAGE_ATOL = 2.0**-20


@pytest.mark.parametrize(("shape", "s", "d", "h", "sigma"), SKIMAGE_CASES)
def test_skimage_compatible_matches_denoise_nl_means(shape, s, d, h, sigma):
    x = random_image(shape, seed=2)
    ours = nl_means(x, patch_size=s, patch_distance=d, h=h, sigma=sigma, skimage_compatible=True)
    theirs = skimage_restoration.denoise_nl_means(x.numpy(), patch_size=s, patch_distance=d, h=h, sigma=sigma,
                                                  fast_mode=True)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=SKIMAGE_ATOL)


def test_skimage_compatible_matches_denoise_nl_means_colour():
    x = random_image((3, 14, 15), seed=3)  # [C, H, W]
    ours = nl_means(x, patch_size=5, patch_distance=3, h=0.2, sigma=0.05, skimage_compatible=True)
    theirs = skimage_restoration.denoise_nl_means(x.permute(1, 2, 0).numpy(), patch_size=5, patch_distance=3,
                                                  h=0.2, sigma=0.05, fast_mode=True, channel_axis=-1)
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), theirs, rtol=0, atol=SKIMAGE_ATOL)


@pytest.mark.parametrize("strip_pixels", [1, 40, 80])
def test_strips_change_nothing(monkeypatch, strip_pixels):
    # strips of 1, 2 and 4 rows (a batch of 2 images 10 pixels wide): the same sums, strip by strip
    x = random_image((2, 1, 11, 10), seed=8)
    kw = dict(patch_size=3, patch_distance=3, h=0.2, sigma=0.05)
    whole = nl_means(x, **kw)
    monkeypatch.setattr(nlm_module, "STRIP_PIXELS", strip_pixels)
    torch.testing.assert_close(nl_means(x, **kw), whole, rtol=0, atol=1e-14)
    torch.testing.assert_close(nl_means(x, skimage_compatible=True, **kw), nl_means_loop(x, skimage_compatible=True,
                                                                                          **kw), rtol=0, atol=1e-12)


def test_float32_close_to_float64():
    # the running sums of float32 lose about eps * sqrt(length) of their size; 1e-4 is a wide margin
    x = random_image((40, 50), seed=4)
    kw = dict(patch_size=7, patch_distance=5, h=0.15, sigma=0.05)
    out32 = nl_means(x.float(), **kw)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), nl_means(x, **kw), rtol=0, atol=1e-4)


def test_schraudolph_exp_bits_and_accuracy():
    # y = 0: the high word is EXP_BC = 1072632447 and the low word 0, read as a little-endian double
    expected = struct.unpack("<d", struct.pack("<II", 0, 1072632447))[0]
    assert schraudolph_exp(torch.zeros(1, dtype=torch.float64)).item() == expected
    y = torch.linspace(-5, 0, 10001, dtype=torch.float64)
    relative = schraudolph_exp(y) / torch.exp(y) - 1
    assert relative.abs().max() < 0.045  # Schraudolph (1999): a few percent at worst


def test_shapes_batches_and_dtype():
    x = random_image((2, 3, 9, 8), seed=5)
    kw = dict(patch_size=3, patch_distance=2, h=0.3)
    out = nl_means(x, **kw)
    assert out.shape == x.shape and out.dtype == x.dtype
    for b in range(2):  # the images of a batch are denoised independently
        torch.testing.assert_close(out[b], nl_means(x[b], **kw), rtol=0, atol=1e-14)
    torch.testing.assert_close(nl_means(x[0, :1], **kw)[0], nl_means(x[0, 0], **kw), rtol=0, atol=0)


def test_constant_image_is_a_fixed_point():
    x = torch.full((10, 11), 0.3, dtype=torch.float64)
    torch.testing.assert_close(nl_means(x, patch_size=5, patch_distance=3, h=0.1), x, rtol=0, atol=1e-15)


def test_h_to_zero_gives_identity_and_h_to_infinity_the_window_mean():
    x = random_image((8, 9), seed=6)
    kw = dict(patch_size=3, patch_distance=2)
    # tiny h: every weight but the pixel's own underflows (all patches of a random image differ)
    torch.testing.assert_close(nl_means(x, h=1e-4, **kw), x, rtol=0, atol=1e-12)
    # huge h: every weight is exp(-0) = 1, the mean over the (2d+1)^2 window of the reflected image
    window_mean = torch.nn.functional.avg_pool2d(reflect_pad(x, 2)[None, None], 5, stride=1)[0, 0]
    torch.testing.assert_close(nl_means(x, h=1e8, **kw), window_mean, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_weights_of_one_pixel(fast_mode):
    x = random_image((3, 12, 10), seed=7)
    kw = dict(patch_size=3, patch_distance=4, h=0.3, sigma=0.05, fast_mode=fast_mode)
    for pixel in [(0, 0), (5, 6), (11, 9)]:
        w = nl_means_weights(x, pixel, **kw)
        assert w.shape == (9, 9)
        assert w.min() >= 0 and w.max() <= 1
        torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-14)
        assert w[4, 4] == w.max()  # a patch is closest to itself
        i, j = pixel
        window = reflect_pad(x, 4)[:, i:i + 9, j:j + 9]  # [C, 2d+1, 2d+1] around the pixel
        torch.testing.assert_close((w * window).sum((1, 2)), nl_means(x, **kw)[:, i, j], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(patch_size=6), ValueError, "patch size s must be odd"),
        (dict(patch_size=0), ValueError, "patch size s must be >= 1"),
        (dict(patch_size=7, patch_distance=2), ValueError, r"search window \(2d\+1 = 5 .* patch \(s = 7\)"),
        (dict(patch_distance=-1), ValueError, "patch distance d must be >= 0"),
        (dict(h=0.0), ValueError, r"filtering parameter h must be in \(0, inf\)"),
        (dict(h=-0.1), ValueError, r"filtering parameter h must be in \(0, inf\)"),
        (dict(h=float("nan")), ValueError, r"filtering parameter h must be in \(0, inf\), got nan"),
        (dict(sigma=-0.1), ValueError, r"sigma must be in \[0, inf\)"),
        (dict(h="0.1"), TypeError, "filtering parameter h must be a real number"),
        (dict(patch_size=7.0), TypeError, "patch size s must be an int"),
        (dict(fast_mode=False, skimage_compatible=True), ValueError, "fast mode only"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    x = random_image((12, 12))
    with pytest.raises(error, match=match):
        nl_means(x, **kwargs)
    with pytest.raises(error, match=match):
        NLMeansConfig(**kwargs)


def test_bad_images():
    with pytest.raises(TypeError, match="floating-point"):
        nl_means(torch.zeros(8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[H, W\], \[C, H, W\] or \[B, C, H, W\]"):
        nl_means(torch.zeros(8))
    with pytest.raises(ValueError, match="outside the 8 x 8 image"):
        nl_means_weights(torch.zeros(8, 8), (8, 0))
    with pytest.raises(ValueError, match="takes one image"):
        nl_means_weights(torch.zeros(1, 1, 8, 8), (0, 0))
