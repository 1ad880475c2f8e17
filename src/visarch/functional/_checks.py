"""Argument checks shared by the from-scratch operations.

Each raises ``TypeError`` for a wrong kind of argument and ``ValueError`` for a
wrong value, with a message naming the violated condition.
"""

from __future__ import annotations

import torch


def check_floating(**tensors):
    """All named tensors (``None`` allowed) are floating point and share one dtype."""
    dtypes = {}
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must have a floating-point dtype, got {t.dtype}")
        dtypes[name] = t.dtype
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name}: {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"dtypes must match ({listed})")


def check_int(value, name, *, low):
    """An int (a bool does not count) that is at least ``low``; returns it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_positive(value, name):
    """A real number (an int or a float, not a bool) that is greater than zero; returns it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0:  # also rejects nan
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


# How messages name a tuple of n ints.
TUPLE_WORDS = {1: "a 1-tuple of ints", 2: "a pair of ints", 3: "a triple of ints"}


def ntuple(value, n, name, *, low):
    """Normalise an int, or a tuple of ``n`` ints, to a tuple of ``n`` ints, each at least ``low``."""
    values = (value,) * n if isinstance(value, int) else value
    if (
        not isinstance(values, (tuple, list))
        or len(values) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise TypeError(f"{name} must be an int or {TUPLE_WORDS[n]}, got {value!r}")
    if min(values) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return tuple(values)


def pair(value, name, *, low):
    """Normalise an int or a pair of ints to a pair, each at least ``low``."""
    return ntuple(value, 2, name, low=low)
