"""From-scratch operations with the signatures of ``torch.nn.functional``."""

from visarch.functional.conv import conv2d, conv2d_loop, conv_matrix, conv_output_size

__all__ = ["conv2d", "conv2d_loop", "conv_matrix", "conv_output_size"]
