"""``visarch.data.digits`` is scikit-learn's digits, split the book's way.

Checked against scikit-learn itself (not against the code under test): the two splits together
are exactly the 1,797 images and labels of ``load_digits`` (as multisets of rows), with
1,347 / 450 images, every class in the same proportion in both, intensities divided by 16, and
the same split on every call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from visarch.data import digits


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
