"""``visarch.data.cifar10`` reads the standard CIFAR-10 python archive from a local folder.

There is no real archive here (nothing is downloaded), so each test writes a tiny one itself in the
archive's own format (``cifar10_archive.py``: the pickle opcodes that Python 2's ``cPickle.dump(batch,
file, 2)`` wrote, with byte strings for every string and numpy 1's names for the array's globals). The
expected pixels and labels are the bytes the test wrote, indexed by the layout the archive documents
(channel-major, then row, then column); nothing is taken from the code under test. The bad inputs are a
missing folder, missing files, a file that is not a pickle, wrong shapes and dtypes, labels outside
0..9, and pickles that would run code, which must be refused without running it.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import struct

import numpy as np
import pytest
import torch
from cifar10_archive import CLASSES, PER_BATCH, TEST_IMAGES, py2_pickle, write_archive

from visarch.data import cifar10, cifar10_classes

FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
         "batches.meta")
def expected_images(rows: np.ndarray) -> torch.Tensor:
    """``[n, 3, 32, 32]`` by the documented layout: pixel (c, h, w) is byte ``1024 c + 32 h + w`` of its row."""
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return torch.from_numpy(rows[:, 1024 * c + 32 * h + w].astype(np.float32) / np.float32(255))


def test_the_written_archive_is_in_the_real_format(tmp_path):
    # The writer itself: plain pickle reads it back, and it names only the real archive's three globals.
    x, _, _, _ = write_archive(tmp_path)
    raw = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    batch = pickle.loads(raw, encoding="bytes")
    assert sorted(batch) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert batch[b"data"].dtype == np.uint8 and np.array_equal(batch[b"data"], x[:PER_BATCH])
    globals_named = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_named == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def test_shapes_dtypes_range_and_pixel_layout(tmp_path):
    train_x, train_y, test_x, test_y = write_archive(tmp_path)
    images, labels = cifar10(tmp_path)
    assert images.shape == (5 * PER_BATCH, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (5 * PER_BATCH,) and labels.dtype == torch.int64
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images, expected_images(train_x))
    test_images, test_labels = cifar10(tmp_path, split="test")
    assert test_images.shape == (TEST_IMAGES, 3, 32, 32) and torch.equal(test_images, expected_images(test_x))
    assert test_labels.tolist() == test_y


def test_one_pixel_lands_at_its_channel_row_and_column(tmp_path):
    # Byte 1024 * 2 + 32 * 5 + 7 of image 1 of data_batch_1 is blue, row 5, column 7; everything else is 0.
    write_archive(tmp_path)
    rows = np.zeros((PER_BATCH, 3072), np.uint8)
    rows[1, 1024 * 2 + 32 * 5 + 7] = 200
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(
        py2_pickle({b"labels": [0] * PER_BATCH, b"data": rows}))
    images, _ = cifar10(tmp_path)
    assert images[1, 2, 5, 7] == torch.tensor(np.float32(200) / np.float32(255))
    assert torch.count_nonzero(images[:PER_BATCH]) == 1


def test_labels_and_images_keep_the_batch_order(tmp_path):
    _, train_y, _, _ = write_archive(tmp_path)
    images, labels = cifar10(tmp_path)
    assert labels.tolist() == train_y  # data_batch_1 first, data_batch_5 last
    # the first byte of row i was written as i: the images come in the same order as their labels
    assert (images[:, 0, 0, 0] * 255).round().to(torch.int64).tolist() == list(range(5 * PER_BATCH))


def test_root_may_be_the_archive_folder_itself_or_a_string(tmp_path):
    train_x, train_y, _, _ = write_archive(tmp_path)
    for root in (tmp_path / "cifar-10-batches-py", str(tmp_path), str(tmp_path / "cifar-10-batches-py")):
        images, labels = cifar10(root)
        assert torch.equal(images, expected_images(train_x)) and labels.tolist() == train_y
    write_archive(tmp_path, folder="elsewhere")  # any folder name, given directly
    assert cifar10(tmp_path / "elsewhere", "test")[0].shape == (TEST_IMAGES, 3, 32, 32)


def test_class_names(tmp_path):
    write_archive(tmp_path)
    assert cifar10_classes(tmp_path) == CLASSES


def test_missing_folder_names_it_and_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        cifar10(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert all(name in str(info.value) for name in FILES)


def test_incomplete_folder_lists_the_missing_files(tmp_path):
    write_archive(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    for split in ("train", "test"):  # the archive is checked whole, whichever split is asked for
        with pytest.raises(FileNotFoundError, match="lacks data_batch_3, batches.meta;") as info:
            cifar10(tmp_path, split)
        assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
        assert all(name in str(info.value) for name in FILES)
    with pytest.raises(FileNotFoundError, match="lacks"):
        cifar10_classes(tmp_path)


def test_unknown_split(tmp_path):
    write_archive(tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        cifar10(tmp_path, "validation")


@pytest.mark.parametrize("spoil", [lambda raw: b"not a pickle at all\n", lambda raw: b"",
                                   lambda raw: raw[:5000]],  # cut inside the pixel bytes
                         ids=["text", "empty", "truncated"])
def test_a_file_that_is_not_a_batch_is_named(tmp_path, spoil):
    write_archive(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    path.write_bytes(spoil(path.read_bytes()))
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a CIFAR-10 python batch")):
        cifar10(tmp_path)


def good_batch():
    return {b"labels": [1, 2, 3, 4], b"data": np.zeros((4, 3072), np.uint8)}


@pytest.mark.parametrize("change, message", [
    ({b"data": np.zeros((4, 3071), np.uint8)}, r"uint8 array \[N, 3072\], got a uint8 array of shape \(4, 3071\)"),
    ({b"data": np.zeros((4, 3, 1024), np.uint8)}, r"uint8 array \[N, 3072\]"),
    ({b"data": None}, r"b'data' must be a uint8 array \[N, 3072\], got nothing"),
    ({b"data": b"\x00" * 4 * 3072}, r"b'data' must be a uint8 array \[N, 3072\], got a bytes"),
    ({b"labels": [1, 2, 3]}, "3 labels for 4 images"),
    ({b"labels": [1, 2, 3, 10]}, r"labels must be in 0..9, found 10"),
    ({b"labels": [-1, 2, 3, 4]}, r"labels must be in 0..9, found -1"),
    ({b"labels": [1, 2, 3, b"4"]}, "b'labels' must be a list of ints"),
    ({b"labels": None}, "b'labels' must be a list of ints, got nothing"),
], ids=["short-rows", "3-d", "no-data", "bytes-data", "few-labels", "label-10", "label-minus-1", "bytes-label",
        "no-labels"])
def test_wrong_contents_are_named(tmp_path, change, message):
    write_archive(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch = {**good_batch(), **change}
    path.write_bytes(py2_pickle({k: v for k, v in batch.items() if v is not None}))
    with pytest.raises(ValueError, match=message) as info:
        cifar10(tmp_path)
    assert str(path) in str(info.value)


def test_wrong_dtype_is_named(tmp_path):
    # py2_pickle writes only uint8 arrays, so this batch is pickled by numpy 2 itself (allowed globals too)
    write_archive(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"labels": [0], b"data": np.zeros((1, 3072), np.int16)}, protocol=4))
    with pytest.raises(ValueError, match=r"got a int16 array of shape \(1, 3072\)") as info:
        cifar10(tmp_path, "test")
    assert str(path) in str(info.value)


def test_a_pickle_that_would_run_a_command_is_refused_unrun(tmp_path):
    write_archive(tmp_path)
    marker = tmp_path / "ran"
    command = f'mkdir "{marker}"'.encode()
    payload = pickle.GLOBAL + b"os\nsystem\n" + pickle.MARK + pickle.BINSTRING + struct.pack("<i", len(command))
    payload = pickle.PROTO + b"\x02" + payload + command + pickle.TUPLE + pickle.REDUCE + pickle.STOP
    pickle.loads(payload)  # the payload is live: an ordinary unpickler runs the command
    assert marker.is_dir()
    marker.rmdir()
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a CIFAR-10 python batch: refused the global "
                                                   "os.system")):
        cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name", [b"builtins\neval", b"numpy\nload", b"numpy.core.multiarray\nscalar",
                                  b"_codecs\nencode", b"posix\nsystem"],
                         ids=lambda name: name.decode().replace("\n", "."))
def test_every_other_global_is_refused(tmp_path, name):
    write_archive(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.PROTO + b"\x02" + pickle.GLOBAL + name + b"\n" + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.STOP)
    dotted = name.decode().replace("\n", ".")
    with pytest.raises(ValueError, match=re.escape(f"refused the global {dotted}:")):
        cifar10_classes(tmp_path)
