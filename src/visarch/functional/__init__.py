"""From-scratch operations with the signatures of ``torch.nn.functional``."""

from visarch.functional.conv import (
    conv1d,
    conv2d,
    conv2d_loop,
    conv3d,
    conv_matrix,
    conv_nd,
    conv_output_size,
)

__all__ = ["conv1d", "conv2d", "conv2d_loop", "conv3d", "conv_matrix", "conv_nd", "conv_output_size"]
