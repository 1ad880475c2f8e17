"""Offline datasets: real data that ships inside installed packages, never downloaded.

``digits`` is scikit-learn's copy of the UCI handwritten digits: 1,797 grey images of
8 x 8 pixels with 17 intensity levels (0-16), ten classes.  The book always uses the same
split, stratified by class with a fixed seed: 1,347 training images and 450 test images.

``photograph`` and ``photo_patches`` are scikit-image's bundled photographs in grey, for
denoising: patches for training come from six of them, and the cameraman (``"camera"``) is held
out whole for testing, so a denoiser is judged on a picture it has never seen.

``random_shift`` is the book's one augmentation: every image moved by a few pixels, zeros
filling in, so a network learns that a digit one pixel to the left is the same digit.

``moving_digits`` turns the digits into short grey videos for the video chapter: each digit is
pasted on a blank canvas and moved by one pixel a frame in each of four directions, so a video moving
right is the video moving left played backwards (likewise down and up), and a model that ignores the
order of the frames cannot tell those two apart.
"""

from __future__ import annotations

import torch

from visarch.functional._checks import check_int

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "DIRECTIONS", "TEST_PHOTOGRAPH", "TRAIN_PHOTOGRAPHS",
           "digits", "moving_digits", "photo_patches", "photograph", "random_shift"]

DIGITS_SPLIT_SEED = 0  # random_state of the stratified split
DIGITS_TEST_FRACTION = 0.25  # 450 of the 1,797 images
TRAIN_PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "coins", "moon")  # skimage.data names
TEST_PHOTOGRAPH = "camera"  # the cameraman, 512 x 512, never cut into training patches


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


def photograph(name: str) -> torch.Tensor:
    """One of scikit-image's bundled photographs, in grey: ``[1, H, W]`` float32 in [0, 1].

    ``name`` is one of :data:`TRAIN_PHOTOGRAPHS` or :data:`TEST_PHOTOGRAPH`; colour pictures are
    converted with ``skimage.color.rgb2gray`` (the ITU-R 709 luma weights).
    """
    import skimage.data  # imported here: only the photographs need scikit-image
    from skimage.color import rgb2gray
    from skimage.util import img_as_float32

    if name not in (*TRAIN_PHOTOGRAPHS, TEST_PHOTOGRAPH):
        raise ValueError(f"unknown photograph {name!r}; the book uses {', '.join(TRAIN_PHOTOGRAPHS)} "
                         f"and {TEST_PHOTOGRAPH}")
    image = getattr(skimage.data, name)()
    grey = rgb2gray(image) if image.ndim == 3 else img_as_float32(image)
    return torch.tensor(grey, dtype=torch.float32).unsqueeze(0)


def photo_patches(size: int = 32, *, stride: int | None = None) -> torch.Tensor:
    """Every ``size x size`` patch, ``stride`` pixels apart (default ``size``: no overlap), of the
    training photographs: ``[N, 1, size, size]`` float32 in [0, 1], photograph by photograph in
    row-major order.  The test photograph is never among them."""
    check_int(size, "size", low=1)
    stride = size if stride is None else stride
    check_int(stride, "stride", low=1)
    patches = []
    for name in TRAIN_PHOTOGRAPHS:
        image = photograph(name)  # [1, H, W]
        if min(image.shape[1:]) < size:
            raise ValueError(f"size={size} exceeds the {tuple(image.shape[1:])} photograph {name!r}")
        tiles = image.unfold(1, size, stride).unfold(2, size, stride)  # [1, rows, cols, size, size]
        patches.append(tiles.reshape(-1, 1, size, size))
    return torch.cat(patches)


def random_shift(images: torch.Tensor, max_shift: int = 1, *, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Each image of ``[N, C, H, W]`` translated by its own random offset of at most ``max_shift``
    pixels in each direction (uniform over the ``(2 max_shift + 1)^2`` offsets), zeros filling in.

    Offsets are drawn on the CPU from ``generator`` (default: torch's global generator, which
    :func:`visarch.train.fit` seeds)."""
    check_int(max_shift, "max_shift", low=0)
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # [N, C, H + 2s, W + 2s]
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).to(images.device)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # [N, H]: rows read from padded
    cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [N, H, W, C] -> NCHW


DIRECTIONS = ("right", "left", "down", "up")  # label k is DIRECTIONS[k]


def moving_digits(split: str = "train", *, frames: int = 5, canvas: int = 12, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(videos, directions, digit_labels)``: ``videos`` is ``[4N, 1, frames, canvas, canvas]`` float32 in
    [0, 1], ``directions`` ``[4N]`` in 0..3 (:data:`DIRECTIONS`), ``digit_labels`` ``[4N]`` in 0..9; row
    ``4i + k`` is digit ``i`` of ``digits(split)`` moving in direction ``k``.

    The digit travels ``frames - 1`` pixels, so ``canvas`` must be at least ``8 + frames - 1``; its
    offset across the motion is drawn uniformly in ``0..canvas - 8`` from ``seed``.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2 (motion needs two frames), got {frames!r}")
    if not isinstance(canvas, int) or canvas < 8 + frames - 1:
        raise ValueError(f"canvas must be an int >= 8 + frames - 1 = {8 + frames - 1}, got {canvas!r}")
    images, labels = digits(split)
    n = images.shape[0]
    room = canvas - 8
    across = torch.randint(0, room + 1, (n,), generator=torch.Generator().manual_seed(seed))
    videos = torch.zeros(n, 4, 1, frames, canvas, canvas)
    for i in range(n):
        a = int(across[i])
        for t in range(frames):
            # the forward position, and its mirror for the reversed direction
            for k, (row, col) in enumerate(((a, t), (a, frames - 1 - t), (t, a), (frames - 1 - t, a))):
                videos[i, k, 0, t, row:row + 8, col:col + 8] = images[i, 0]
    return (videos.reshape(4 * n, 1, frames, canvas, canvas), torch.arange(4).repeat(n),
            labels.repeat_interleave(4))
