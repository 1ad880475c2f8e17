"""The argument checks of every public function, layer, optimizer and model of ``visarch``.

Each check takes the value first, then the argument's name, then ``where``: the function or class
that received it.  Every message has one shape, so a reader learns it once::

    <where>: <name> must be <condition>, got <value received>

for example ``SGD: lr must be >= 0, got -0.1``, ``conv2d: stride S must be >= 1, got (1, 0)`` or,
for a value of the wrong kind, ``ViTConfig: depth must be an int, got float 2.5``.

A value of the wrong kind raises :class:`ArgumentTypeError`, a ``TypeError`` that is also a
``ValueError``: the functional operations have always raised ``TypeError`` for it and the models
``ValueError``, and code that catches either keeps working.  A value of the right kind outside its
range raises ``ValueError``.  Each check returns the value, normalised where it says so, so a
constructor can check and store in one line.
"""

from __future__ import annotations

import numbers

import torch

__all__ = ["ArgumentTypeError", "check_bool", "check_floating", "check_int", "check_ints", "check_real", "ntuple",
           "pair"]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind (catchable as ``TypeError`` or ``ValueError``)."""


def _kind(value) -> str:
    """A value of the wrong kind, as a message shows it: its type, then the value (a tensor by its dtype and shape)."""
    return _shown(value) if isinstance(value, torch.Tensor) else f"{type(value).__name__} {_shown(value)}"


def _shown(value) -> str:
    """The value received, as a message shows it: a tensor by its dtype and shape, anything else by a short repr."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounds(gt, ge, lt, le) -> str:
    """The range condition in words, with a leading space: `` >= 1``, `` > 0``, `` in [0, 1)``."""
    low, high = (gt, "(") if gt is not None else (ge, "["), (lt, ")") if lt is not None else (le, "]")
    if low[0] is not None and high[0] is not None:
        return f" in {low[1]}{low[0]}, {high[0]}{high[1]}"
    if low[0] is not None:
        return f" {'>' if gt is not None else '>='} {low[0]}"
    if high[0] is not None:
        return f" {'<' if lt is not None else '<='} {high[0]}"
    return ""


def _within(value, gt, ge, lt, le) -> bool:
    """Whether ``value`` meets every bound given (False for nan, which no comparison satisfies)."""
    return ((gt is None or value > gt) and (ge is None or value >= ge)
            and (lt is None or value < lt) and (le is None or value <= le))


def check_bool(value, name: str, *, where: str) -> bool:
    """A bool (an int such as 1 does not count); returns it.

    Raises:
        ArgumentTypeError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{where}: {name} must be a bool, got {_kind(value)}")
    return value


def check_int(value, name: str, *, where: str, ge=None, le=None) -> int:
    """An int (a bool does not count) within the bounds given; returns it.

    Args:
        value: the argument received.
        name: the argument's name, as the caller wrote it (``"stride"``) or with its symbol
            (``"sequence length T"``).
        where: the function or class that received it.
        ge, le: the bounds, inclusive; ``None`` leaves a side open.

    Raises:
        ArgumentTypeError: ``value`` is not an int.
        ValueError: it is outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{where}: {name} must be an int, got {_kind(value)}")
    if not _within(value, None, ge, None, le):
        raise ValueError(f"{where}: {name} must be{_bounds(None, ge, None, le)}, got {value}")
    return int(value)


def check_ints(value, name: str, *, where: str, ge=None, length: int | None = None) -> tuple[int, ...]:
    """A non-empty tuple (or list) of ints, each at least ``ge``, of ``length`` entries when given; returns a tuple.

    Args:
        value: the argument received: channel widths per stage, layers per block, ...
        name: the argument's name.
        where: the function or class that received it.
        ge: the bound every entry meets, inclusive; ``None`` leaves it open.
        length: the number of entries required; ``None`` accepts any number but zero.

    Raises:
        ArgumentTypeError: ``value`` is not a tuple or list of ints.
        ValueError: it has the wrong length or an entry is below ``ge``.
    """
    ints = "a non-empty tuple of ints" if length is None else f"a tuple of {length} ints"
    if (not isinstance(value, (tuple, list))
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        raise ArgumentTypeError(f"{where}: {name} must be {ints}, got {_kind(value)}")
    if not value or length is not None and len(value) != length or ge is not None and min(value) < ge:
        each = "" if ge is None else f", each >= {ge}"
        raise ValueError(f"{where}: {name} must be {ints}{each}, got {value!r}")
    return tuple(int(v) for v in value)


def check_real(value, name: str, *, where: str, gt=None, ge=None, lt=None, le=None):
    """A real number (an int or a float; a bool does not count) within the bounds given; returns it.

    nan is never within bounds, so a bounded check refuses it.

    Args:
        value: the argument received.
        name: the argument's name.
        where: the function or class that received it.
        gt, ge: the lower bound, strict or inclusive (at most one).
        lt, le: the upper bound, strict or inclusive (at most one).

    Raises:
        ArgumentTypeError: ``value`` is not a real number.
        ValueError: it is outside the bounds.
    """
    if gt is not None and ge is not None or lt is not None and le is not None:
        raise ValueError("check_real takes at most one lower bound (gt or ge) and one upper bound (lt or le)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{where}: {name} must be a real number, got {_kind(value)}")
    if not _within(value, gt, ge, lt, le):
        raise ValueError(f"{where}: {name} must be{_bounds(gt, ge, lt, le)}, got {value}")
    return value


def check_floating(*, where: str, **tensors) -> None:
    """Every named tensor (``None`` allowed and skipped) is a floating-point ``torch.Tensor``, all of one dtype.

    Raises:
        ArgumentTypeError: one is not a tensor, not floating point, or the dtypes differ.
    """
    dtypes = {}
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ArgumentTypeError(f"{where}: {name} must be a torch.Tensor, got {_kind(t)}")
        if not t.is_floating_point():
            raise ArgumentTypeError(f"{where}: {name} must have a floating-point dtype, got {t.dtype}")
        dtypes[name] = t.dtype
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name}: {dtype}" for name, dtype in dtypes.items())
        raise ArgumentTypeError(f"{where}: dtypes must match ({listed})")


# How messages name a tuple of n ints.
_TUPLE_WORDS = {1: "a 1-tuple of ints", 2: "a pair of ints", 3: "a triple of ints"}


def ntuple(value, n: int, name: str, *, where: str, ge: int) -> tuple[int, ...]:
    """An int, or a tuple (or list) of ``n`` ints, each at least ``ge``; returns it as a tuple of ``n`` ints.

    Raises:
        ArgumentTypeError: ``value`` is neither an int nor ``n`` ints.
        ValueError: an entry is below ``ge``.
    """
    values = (value,) * n if isinstance(value, int) else value
    if (not isinstance(values, (tuple, list)) or len(values) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
        raise ArgumentTypeError(f"{where}: {name} must be an int or {_TUPLE_WORDS[n]}, got {_shown(value)}")
    if min(values) < ge:
        raise ValueError(f"{where}: {name} must be >= {ge}, got {value!r}")
    return tuple(values)


def pair(value, name: str, *, where: str, ge: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``ge``, as a pair (:func:`ntuple` with ``n = 2``)."""
    return ntuple(value, 2, name, where=where, ge=ge)
