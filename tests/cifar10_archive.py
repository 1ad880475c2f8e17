"""A tiny CIFAR-10 python archive in the real format, written by the tests that need one.

Each batch is pickled with the opcodes that Python 2's ``cPickle.dump(batch, file, 2)`` wrote, with byte
strings for every string and numpy 1's names for the array's globals; the writer returns the bytes it
wrote, so a test's expected pixels and labels come from them and not from the loader under test.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_BATCH, TEST_IMAGES = 4, 3  # the real archive has 10,000 in each


def py2_pickle(obj) -> bytes:
    """``obj`` as Python 2 pickled it with protocol 2: every string a byte string (BINSTRING), tuples
    between MARK and TUPLE, and a numpy array as numpy 1 reduced it, ``_reconstruct`` then ``BUILD``."""
    out = bytearray(pickle.PROTO + b"\x02")

    def put(x):
        if x is None:
            out.extend(pickle.NONE)
        elif isinstance(x, bool):
            out.extend(pickle.NEWTRUE if x else pickle.NEWFALSE)
        elif isinstance(x, int):
            out.extend(pickle.BININT + struct.pack("<i", x))
        elif isinstance(x, (bytes, str)):  # a Python 2 str either way
            raw = x.encode("ascii") if isinstance(x, str) else x
            out.extend(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        elif isinstance(x, tuple):
            out.extend(pickle.MARK)
            for item in x:
                put(item)
            out.extend(pickle.TUPLE)
        elif isinstance(x, list):
            out.extend(pickle.EMPTY_LIST + pickle.MARK)
            for item in x:
                put(item)
            out.extend(pickle.APPENDS)
        elif isinstance(x, dict):
            out.extend(pickle.EMPTY_DICT + pickle.MARK)
            for key, value in x.items():
                put(key)
                put(value)
            out.extend(pickle.SETITEMS)
        elif isinstance(x, np.ndarray):  # _reconstruct(ndarray, (0,), 'b'), then its state
            assert x.dtype == np.uint8
            out.extend(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            out.extend(pickle.MARK + pickle.GLOBAL + b"numpy\nndarray\n")
            put((0,))
            put(b"b")
            out.extend(pickle.TUPLE + pickle.REDUCE)
            out.extend(pickle.MARK)
            put(1)
            put(x.shape)
            out.extend(pickle.GLOBAL + b"numpy\ndtype\n")  # dtype('u1', 0, 1) with its state
            put(("u1", 0, 1))
            out.extend(pickle.REDUCE)
            put((3, "|", None, None, None, -1, -1, 0))
            out.extend(pickle.BUILD)
            put(False)  # not Fortran order
            put(np.ascontiguousarray(x).tobytes())
            out.extend(pickle.TUPLE + pickle.BUILD)
        else:
            raise TypeError(f"the archive holds no {type(x).__name__}")

    put(obj)
    return bytes(out + pickle.STOP)


def pixels(n: int, first: int) -> np.ndarray:
    """``[n, 3072]`` uint8 rows: varied bytes, with row i's first byte ``first + i`` so rows can be traced."""
    rows = np.random.default_rng(first).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    rows[:, 0] = np.arange(first, first + n)
    return rows


def write_archive(root, *, folder="cifar-10-batches-py"):
    """A tiny archive in ``root/folder``; returns (train pixels, train labels, test pixels, test labels)."""
    where = root / folder
    where.mkdir(parents=True)
    train_x, train_y = [], []
    for b in range(5):
        x = pixels(PER_BATCH, first=PER_BATCH * b)
        y = [(3 * (PER_BATCH * b + i) + 1) % 10 for i in range(PER_BATCH)]  # not sorted, uses all ten
        batch = {b"batch_label": f"training batch {b + 1} of 5".encode(), b"labels": y, b"data": x,
                 b"filenames": [f"img_{b}_{i}.png".encode() for i in range(PER_BATCH)]}
        (where / f"data_batch_{b + 1}").write_bytes(py2_pickle(batch))
        train_x.append(x)
        train_y += y
    test_x, test_y = pixels(TEST_IMAGES, first=100), [9, 0, 5]
    (where / "test_batch").write_bytes(py2_pickle(
        {b"batch_label": b"testing batch 1 of 1", b"labels": test_y, b"data": test_x,
         b"filenames": [f"test_{i}.png".encode() for i in range(TEST_IMAGES)]}))
    (where / "batches.meta").write_bytes(py2_pickle(
        {b"num_cases_per_batch": PER_BATCH, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}))
    return np.concatenate(train_x), train_y, test_x, test_y
