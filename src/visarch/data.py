"""Offline datasets: real data that ships inside installed packages, never downloaded.

``digits`` is scikit-learn's copy of the UCI handwritten digits: 1,797 grey images of
8 x 8 pixels with 17 intensity levels (0-16), ten classes.  The book always uses the same
split, stratified by class with a fixed seed: 1,347 training images and 450 test images.
"""

from __future__ import annotations

import torch

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "digits"]

DIGITS_SPLIT_SEED = 0  # random_state of the stratified split
DIGITS_TEST_FRACTION = 0.25  # 450 of the 1,797 images


def digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The book's fixed split of scikit-learn's digits: ``(images, labels)``.

    ``images`` is ``[N, 1, 8, 8]`` float32 in [0, 1] (intensities divided by 16), ``labels``
    is ``[N]`` int64 in 0..9; ``split`` is ``"train"`` (N = 1347) or ``"test"`` (N = 450).
    """
    from sklearn.datasets import load_digits  # imported here: only data loading needs scikit-learn
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    bunch = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        bunch.images, bunch.target, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
        stratify=bunch.target)
    images, labels = (train_x, train_y) if split == "train" else (test_x, test_y)
    return (torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0,
            torch.tensor(labels, dtype=torch.int64))
