"""Offline datasets: real data that ships inside installed packages, never downloaded.

``digits`` is scikit-learn's copy of the UCI handwritten digits: 1,797 grey images of
8 x 8 pixels with 17 intensity levels (0-16), ten classes.  The book always uses the same
split, stratified by class with a fixed seed: 1,347 training images and 450 test images.

``photograph`` and ``photo_patches`` are scikit-image's bundled photographs in grey, for
denoising: patches for training come from six of them, a seventh, the left view of scikit-image's
stereo motorcycle (``"motorcycle"``), is held out for validation (choosing a denoiser's settings),
and the cameraman (``"camera"``) is held out whole for testing, so a denoiser is judged on a
picture that neither trained nor tuned it.

``random_shift`` is the book's one augmentation: every image moved by a few pixels, zeros
filling in, so a network learns that a digit one pixel to the left is the same digit.

``moving_digits`` turns the digits into short grey videos for the video chapter: each digit is
pasted on a blank canvas and moved by one pixel a frame in each of four directions, so a video moving
right is the video moving left played backwards (likewise down and up), and a model that ignores the
order of the frames cannot tell those two apart.

``cifar10`` reads CIFAR-10 (60,000 colour images of 32 x 32 pixels, ten classes) from the standard
python archive, ``cifar-10-python.tar.gz``, unpacked in a local folder by the reader; it never
downloads.  The archive's batches are pickles, and unpickling can run any code the file names, so the
loader uses an unpickler that builds only what the archive holds (dicts, lists, byte strings, ints and
one numpy uint8 array) and refuses every other global before looking it up.  Still, load only an
archive you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from visarch.checks import check_int

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "DIRECTIONS", "TEST_PHOTOGRAPH", "TRAIN_PHOTOGRAPHS",
           "VALIDATION_PHOTOGRAPH", "cifar10", "cifar10_classes", "digits", "moving_digits", "photo_patches",
           "photograph", "random_shift"]

DIGITS_SPLIT_SEED = 0  #: random_state of the stratified split
DIGITS_TEST_FRACTION = 0.25  #: 450 of the 1,797 images
TRAIN_PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "coins", "moon")  #: skimage.data names
TEST_PHOTOGRAPH = "camera"  #: the cameraman, 512 x 512, never cut into training patches
#: the left view of ``skimage.data.stereo_motorcycle()``, 500 x 741, for choosing settings; never cut into
#: training patches
VALIDATION_PHOTOGRAPH = "motorcycle"


def digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The book's fixed split of scikit-learn's digits: ``(images, labels)``.

    Args:
        split: ``"train"`` (N = 1347) or ``"test"`` (N = 450).

    Returns:
        ``(images, labels)``, with ``images`` ``[N, 1, 8, 8]`` float32 in [0, 1] (intensities divided
        by 16) and ``labels`` ``[N]`` int64 in 0..9.
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

    Colour pictures are converted with ``skimage.color.rgb2gray`` (the ITU-R 709 luma weights).

    Args:
        name: one of :data:`~visarch.data.TRAIN_PHOTOGRAPHS`, :data:`~visarch.data.VALIDATION_PHOTOGRAPH`
            (the left view of ``skimage.data.stereo_motorcycle()``) or :data:`~visarch.data.TEST_PHOTOGRAPH`.
    """
    import skimage.data  # imported here: only the photographs need scikit-image
    from skimage.color import rgb2gray
    from skimage.util import img_as_float32

    if name not in (*TRAIN_PHOTOGRAPHS, VALIDATION_PHOTOGRAPH, TEST_PHOTOGRAPH):
        raise ValueError(f"unknown photograph {name!r}; the book uses {', '.join(TRAIN_PHOTOGRAPHS)}, "
                         f"{VALIDATION_PHOTOGRAPH} and {TEST_PHOTOGRAPH}")
    if name == VALIDATION_PHOTOGRAPH:
        image = skimage.data.stereo_motorcycle()[0]  # (left, right, disparity): the left view
    else:
        image = getattr(skimage.data, name)()
    grey = rgb2gray(image) if image.ndim == 3 else img_as_float32(image)
    return torch.tensor(grey, dtype=torch.float32).unsqueeze(0)


def photo_patches(size: int = 32, *, stride: int | None = None) -> torch.Tensor:
    """Every ``size x size`` patch of the training photographs, ``stride`` pixels apart.

    The validation and test photographs are never among them.

    Args:
        size: the side of a patch, at most the smaller side of every training photograph.
        stride: the distance between neighbouring patches (default ``size``, no overlap).

    Returns:
        ``[N, 1, size, size]`` float32 in [0, 1], photograph by photograph in row-major order.
    """
    check_int(size, "size", where="photo_patches", ge=1)
    stride = size if stride is None else stride
    check_int(stride, "stride", where="photo_patches", ge=1)
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
    """Each image translated by its own random offset of at most ``max_shift`` pixels, zeros filling in.

    The offsets are uniform over the ``(2 max_shift + 1)^2`` offsets in the two directions.

    Args:
        images: ``[N, C, H, W]``.
        max_shift: the largest shift along each axis, in pixels.
        generator: where the offsets are drawn, on the CPU (default: torch's global generator, which
            :func:`~visarch.train.loop.fit` seeds).

    Returns:
        ``[N, C, H, W]``.
    """
    check_int(max_shift, "max_shift", where="random_shift", ge=0)
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # [N, C, H + 2s, W + 2s]
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).to(images.device)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # [N, H]: rows read from padded
    cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [N, H, W, C] -> NCHW


DIRECTIONS = ("right", "left", "down", "up")  #: label k is DIRECTIONS[k]


def moving_digits(split: str = "train", *, frames: int = 5, canvas: int = 12, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Short grey videos of each digit moving right, left, down and up, one pixel a frame.

    The digit travels ``frames - 1`` pixels; its offset across the motion is drawn uniformly in
    ``0..canvas - 8`` from ``seed``.

    Args:
        split: the digits of :func:`~visarch.data.digits`, ``"train"`` or ``"test"``.
        frames: T, at least 2.
        canvas: the side of every frame, at least ``8 + frames - 1``.
        seed: the seed of the offsets across the motion.

    Returns:
        ``(videos, directions, digit_labels)``, with ``videos`` ``[4N, 1, T, canvas, canvas]`` float32 in
        [0, 1], ``directions`` ``[4N]`` in 0..3 (:data:`~visarch.data.DIRECTIONS`) and ``digit_labels``
        ``[4N]`` in 0..9; row ``4i + k`` is digit ``i`` of ``digits(split)`` moving in direction ``k``.
    """
    check_int(frames, "frames", where="moving_digits", ge=2)  # motion needs two frames
    check_int(canvas, "canvas", where="moving_digits", ge=8 + frames - 1)  # an 8 x 8 digit shifted frames - 1 times
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


_CIFAR_FOLDER = "cifar-10-batches-py"  # the folder the archive unpacks to
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))  # 5 x 10,000 training images, in this order
_CIFAR_TEST = "test_batch"  # 10,000 test images
_CIFAR_META = "batches.meta"  # the class names
_CIFAR_FILES = (*_CIFAR_TRAIN, _CIFAR_TEST, _CIFAR_META)
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_CLASSES = 10
_CIFAR_PIXELS = 3 * 32 * 32  # one row of b"data": the red plane, then green, then blue, each row-major 32 x 32

# numpy's array reconstructor, taken from an array's own pickle recipe, so whichever module holds it
# (numpy.core.multiarray in numpy 1, numpy._core.multiarray in numpy 2) it is the same function.
_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]
# Every global a batch may name: the archive (pickled by numpy 1) names the first, a re-pickled one the second.
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
                  ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
                  ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 batch holds.

    Dicts, lists, byte strings and ints come from pickle's own opcodes; the one uint8 array needs the
    globals of ``_CIFAR_GLOBALS``.  Any other global (``os.system``, ``builtins.eval``, ``numpy.load``, ...)
    is refused before it is imported, so a malicious file fails without running anything.
    """

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _CIFAR_GLOBALS)
            raise ValueError(f"refused the global {module}.{name}: a CIFAR-10 batch needs only {allowed}") from None


def _cifar10_folder(root: str | os.PathLike) -> Path:
    """``root/cifar-10-batches-py`` if that folder exists, else ``root`` itself, once it holds every file."""
    root = Path(root)
    folder = root / _CIFAR_FOLDER if (root / _CIFAR_FOLDER).is_dir() else root
    missing = [name for name in _CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        where = (f"folder {folder} lacks {', '.join(missing)}" if folder.is_dir()
                 else f"folder {folder} does not exist (nor does {folder / _CIFAR_FOLDER})")
        raise FileNotFoundError(
            f"CIFAR-10 {where}; expected the folder {_CIFAR_FOLDER} (or the folder holding it) with the files "
            f"{', '.join(_CIFAR_FILES)}. Nothing is downloaded: get the python version of the archive, "
            f"{_CIFAR_URL}, and unpack it there with 'tar -xzf cifar-10-python.tar.gz'.")
    return folder


def _cifar10_unpickle(path: Path) -> dict:
    """The dict a batch file holds, with byte-string keys (the archive was pickled by Python 2)."""
    with path.open("rb") as file:
        try:
            batch = _CifarUnpickler(file, encoding="bytes").load()
        except Exception as err:  # a damaged pickle fails in many ways: truncation, bad opcodes, numpy's checks
            raise ValueError(f"{path} is not a CIFAR-10 python batch: {err}") from err
    if not isinstance(batch, dict):
        raise ValueError(f"{path} holds a {type(batch).__name__}, not the dict of a CIFAR-10 python batch")
    return batch


def _describe(value) -> str:
    """How an error message names a value found where something else was expected."""
    if value is None:
        return "nothing (no such key)"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One checked batch: pixels ``[n, 3072]`` uint8 and labels ``[n]`` int64 in 0..9."""
    batch = _cifar10_unpickle(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _CIFAR_PIXELS):
        raise ValueError(f"{path}: b'data' must be a uint8 array [N, {_CIFAR_PIXELS}], got {_describe(data)}")
    if not (isinstance(labels, list) and all(type(label) is int for label in labels)):
        raise ValueError(f"{path}: b'labels' must be a list of ints, got {_describe(labels)}")
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(labels)} labels for {len(data)} images")
    outside = [label for label in labels if not 0 <= label < _CIFAR_CLASSES]
    if outside:
        raise ValueError(f"{path}: labels must be in 0..{_CIFAR_CLASSES - 1}, found {outside[0]}")
    return data, np.array(labels, dtype=np.int64)


def cifar10(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from a local copy of the standard python archive: ``(images, labels)``.

    Nothing is downloaded.  A ``root`` without the files raises ``FileNotFoundError`` naming the folder
    and the missing files.

    The batches are pickles, and a pickle can run code: load only an archive you trust.  A restricted
    unpickler builds nothing but what the archive holds and refuses any other global; that, a file that
    is not a pickle, or contents of the wrong shape, dtype or label range raise ``ValueError`` naming
    the file.

    Args:
        root (``str`` or ``os.PathLike``): the folder ``cifar-10-batches-py`` that
            ``cifar-10-python.tar.gz`` unpacks to, or the folder that holds it; it must contain
            ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and ``batches.meta``.
        split: ``"train"`` (the five data batches in order, N = 50,000) or ``"test"`` (N = 10,000).

    Returns:
        ``(images, labels)``, with ``images`` ``[N, 3, 32, 32]`` float32 in [0, 1] (bytes divided by
        255), RGB, and ``labels`` ``[N]`` int64 in 0..9, indices into :func:`~visarch.data.cifar10_classes`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _cifar10_folder(root)
    names = _CIFAR_TRAIN if split == "train" else (_CIFAR_TEST,)
    data, labels = zip(*(_cifar10_batch(folder / name) for name in names), strict=True)
    pixels = torch.from_numpy(np.concatenate(data))  # [N, 3072] uint8, a fresh writable array
    images = pixels.reshape(-1, 3, 32, 32).to(torch.float32).div_(255)  # channel, then row, then column
    return images, torch.from_numpy(np.concatenate(labels))


def cifar10_classes(root: str | os.PathLike) -> tuple[str, ...]:
    """The ten class names of a local CIFAR-10 archive, in label order: ``("airplane", "automobile", ...)``.

    They are ``b"label_names"`` of ``batches.meta``; ``root`` and the errors are as for
    :func:`~visarch.data.cifar10`.
    """
    path = _cifar10_folder(root) / _CIFAR_META
    names = _cifar10_unpickle(path).get(b"label_names")
    if not (isinstance(names, list) and len(names) == _CIFAR_CLASSES
            and all(isinstance(name, bytes) and name.isascii() for name in names)):
        raise ValueError(f"{path}: b'label_names' must be a list of {_CIFAR_CLASSES} ASCII byte strings, "
                         f"got {_describe(names)}")
    return tuple(name.decode("ascii") for name in names)
