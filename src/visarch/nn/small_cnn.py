"""The book's small convolutional network for the 8 x 8 digits (Normalization and Optimizers chapters).

Three 3 x 3 convolutions (16, 32 and 32 channels; the last two with stride 2), each followed by a
normalization layer and a ReLU, then global average pooling and a linear classifier::

    [B, 1, 8, 8] -> [B, 16, 8, 8] -> [B, 32, 4, 4] -> [B, 32, 2, 2] -> [B, 32] -> [B, 10]

With a normalization layer the convolutions have no bias, which the layer would cancel.  It is
small enough to train in seconds on a CPU, so experiments can repeat runs over seeds.
"""

from __future__ import annotations

from torch import nn

__all__ = ["NORMS", "small_cnn"]

NORMS = ("batch", "group", "none")  #: the normalization layers small_cnn offers (group norm with 4 channels a group)


def small_cnn(norm: str = "none") -> nn.Sequential:
    """The three-block CNN of the module docstring, ``[B, 1, 8, 8] -> [B, 10]`` class scores.

    Args:
        norm: the layer after each convolution: ``"batch"`` (batch norm), ``"group"`` (group norm,
            4 channels a group) or ``"none"`` (none, and the convolutions get biases).

    Returns:
        A fresh ``torch.nn.Sequential``, initialised by torch's global generator.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")

    def layer(channels):
        return {"batch": nn.BatchNorm2d(channels), "group": nn.GroupNorm(channels // 4, channels),
                "none": nn.Identity()}[norm]

    bias = norm == "none"
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=bias), layer(16), nn.ReLU(),             # [B, 16, 8, 8]
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=bias), layer(32), nn.ReLU(),  # [B, 32, 4, 4]
        nn.Conv2d(32, 32, 3, stride=2, padding=1, bias=bias), layer(32), nn.ReLU(),  # [B, 32, 2, 2]
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),                    # [B, 10]
    )
