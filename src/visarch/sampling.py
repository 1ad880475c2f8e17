"""Seeded random choices for the random configurations that claim cells check."""

from __future__ import annotations

import torch

__all__ = ["randint"]


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """A random int in ``[low, high]`` (both ends included), drawn from ``gen`` so runs repeat."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))
