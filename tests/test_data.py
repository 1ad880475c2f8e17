"""``visarch.data.digits`` is scikit-learn's digits, split the book's way.

Checked against scikit-learn itself (not against the code under test): the two splits together
are exactly the 1,797 images and labels of ``load_digits`` (as multisets of rows), with
1,347 / 450 images, every class in the same proportion in both, intensities divided by 16, and
the same split on every call.  ``moving_digits`` is checked by its construction: each video moving
left is the video moving right played backwards (likewise up and down), and the digit's centre of
mass moves by exactly one pixel a frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from visarch.data import (
    TEST_PHOTOGRAPH,
    TRAIN_PHOTOGRAPHS,
    VALIDATION_PHOTOGRAPH,
    digits,
    moving_digits,
    photo_patches,
    photograph,
    random_shift,
)


def rows(images, labels):
    """Each example as a tuple of its 64 intensities (0-16) and its label, sorted."""
    flat = (images.reshape(len(labels), -1) * 16).round().to(torch.int64).tolist()
    return sorted(tuple(r) + (int(y),) for r, y in zip(flat, labels.tolist(), strict=True))


def test_split_sizes_shapes_and_range():
    (train_x, train_y), (test_x, test_y) = digits("train"), digits("test")
    assert train_x.shape == (1347, 1, 8, 8) and test_x.shape == (450, 1, 8, 8) and test_y.shape == (450,)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert 0 <= float(train_x.min()) and float(train_x.max()) <= 1


def test_the_splits_are_scikit_learns_digits():
    (train_x, train_y), (test_x, test_y) = digits("train"), digits("test")
    bunch = load_digits()
    expected = sorted(tuple(r) + (int(y),) for r, y in zip(bunch.images.reshape(1797, -1).astype(int).tolist(),
                                                          bunch.target.tolist(), strict=True))
    assert rows(torch.cat([train_x, test_x]), torch.cat([train_y, test_y])) == expected


def test_stratified_and_fixed():
    (train_x, train_y), (_, test_y) = digits("train"), digits("test")
    counts = np.bincount(load_digits().target, minlength=10)
    for split_labels, size in ((train_y, 1347), (test_y, 450)):
        share = np.bincount(split_labels.numpy(), minlength=10)
        assert np.all(np.abs(share - counts * size / 1797) <= 1)  # each class in proportion, up to rounding
    again_x, again_y = digits("train")
    assert torch.equal(again_x, train_x) and torch.equal(again_y, train_y)


def test_unknown_split_raises():
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got 'valid'"):
        digits("valid")


def test_photographs_are_scikit_images_in_grey():
    from skimage import color, data

    for name in TRAIN_PHOTOGRAPHS + (VALIDATION_PHOTOGRAPH, TEST_PHOTOGRAPH):
        raw = data.stereo_motorcycle()[0] if name == VALIDATION_PHOTOGRAPH else getattr(data, name)()
        grey = photograph(name)
        assert grey.shape == (1, *raw.shape[:2]) and grey.dtype == torch.float32
        expected = color.rgb2gray(raw) if raw.ndim == 3 else raw / 255.0
        assert np.allclose(grey[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("size, stride", [(32, None), (24, 40)])
def test_patches_are_slices_of_the_training_photographs(size, stride):
    step = stride or size
    patches = photo_patches(size, stride=stride)
    grids = [((h - size) // step + 1, (w - size) // step + 1)
             for h, w in (photograph(n).shape[1:] for n in TRAIN_PHOTOGRAPHS)]
    assert patches.shape == (sum(r * c for r, c in grids), 1, size, size)
    first = photograph(TRAIN_PHOTOGRAPHS[0])[0]
    rows, cols = grids[0]
    r, c = rows - 1, cols // 2  # a patch in the last row of the first photograph
    assert torch.equal(patches[r * cols + c, 0], first[r * step:r * step + size, c * step:c * step + size])
    last = photograph(TRAIN_PHOTOGRAPHS[-1])[0]
    assert torch.equal(patches[-1, 0], last[(grids[-1][0] - 1) * step:(grids[-1][0] - 1) * step + size,
                                            (grids[-1][1] - 1) * step:(grids[-1][1] - 1) * step + size])


@pytest.mark.parametrize("name", [TEST_PHOTOGRAPH, VALIDATION_PHOTOGRAPH])
def test_the_test_and_validation_photographs_are_held_out(name):
    assert name not in TRAIN_PHOTOGRAPHS and VALIDATION_PHOTOGRAPH != TEST_PHOTOGRAPH
    train = photo_patches(32).flatten(1)
    held_out = photograph(name).unfold(1, 32, 32).unfold(2, 32, 32).reshape(-1, 32 * 32)
    assert torch.cdist(held_out, train).min() > 0  # none of its tiles is among the training patches


@pytest.mark.parametrize("call, match", [
    (lambda: photograph("lena"), r"unknown photograph 'lena'; the book uses astronaut, .*, motorcycle and camera"),
    (lambda: photo_patches(0), r"size must be >= 1, got 0"),
    (lambda: photo_patches(8, stride=0), r"stride must be >= 1, got 0"),
    (lambda: photo_patches(350), r"size=350 exceeds the \(300, 451\) photograph 'chelsea'"),
])
def test_bad_photograph_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_random_shift_moves_each_image_by_its_own_offset():
    images = torch.rand(50, 2, 5, 7)
    shifted = random_shift(images, 2, generator=torch.Generator().manual_seed(0))
    offsets = torch.randint(0, 5, (50, 2), generator=torch.Generator().manual_seed(0)) - 2
    seen = set()
    for image, moved, (dr, dc) in zip(images, shifted, offsets.tolist(), strict=True):
        expected = torch.zeros_like(image)  # content moves by (-dr, -dc); what leaves the frame is lost
        src_r, dst_r = slice(max(dr, 0), 5 + min(dr, 0)), slice(max(-dr, 0), 5 + min(-dr, 0))
        src_c, dst_c = slice(max(dc, 0), 7 + min(dc, 0)), slice(max(-dc, 0), 7 + min(-dc, 0))
        expected[:, dst_r, dst_c] = image[:, src_r, src_c]
        assert torch.equal(moved, expected)
        seen.add((dr, dc))
    assert len(seen) > 15  # the offsets differ from image to image
    assert torch.equal(random_shift(images, 0), images)


def test_random_shift_refuses_bad_input():
    with pytest.raises(ValueError, match=r"max_shift must be >= 0, got -1"):
        random_shift(torch.zeros(1, 1, 4, 4), -1)
    with pytest.raises(ValueError, match=r"images must be \[N, C, H, W\], got shape \(4, 4\)"):
        random_shift(torch.zeros(4, 4))


def test_moving_digits_reversal_pairs():
    videos, directions, digit_labels = moving_digits("test")
    assert videos.shape == (1800, 1, 5, 12, 12)
    assert directions[:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert torch.equal(videos[0::4].flip(2), videos[1::4]) and torch.equal(videos[2::4].flip(2), videos[3::4])
    first = videos[0, 0]  # moving right: the column of mass increases by one pixel a frame
    cols = [(f.sum(0) * torch.arange(12.0)).sum() / f.sum() for f in first]
    assert all(abs(float(b - a) - 1) < 1e-4 for a, b in zip(cols, cols[1:], strict=False))
    assert digit_labels[:4].unique().numel() == 1
    with pytest.raises(ValueError, match="moving_digits: canvas must be >= 12, got 11"):
        moving_digits("test", canvas=11)
