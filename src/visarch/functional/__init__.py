"""From-scratch operations with the signatures of ``torch.nn.functional``."""

from visarch.functional.attention import attention_weights, chunked_attention, scaled_dot_product_attention
from visarch.functional.conv import (
    conv1d,
    conv2d,
    conv2d_loop,
    conv3d,
    conv_matrix,
    conv_nd,
    conv_output_size,
)
from visarch.functional.nonlocal_means import nl_means, nl_means_loop, nl_means_weights
from visarch.functional.normalization import (
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    normalize,
    normalize_loop,
)
from visarch.functional.transposed import conv_transpose2d, conv_transpose_output_size, dilate_and_pad, flip_weight

__all__ = [
    "attention_weights",
    "batch_norm",
    "chunked_attention",
    "conv1d",
    "conv2d",
    "conv2d_loop",
    "conv3d",
    "conv_matrix",
    "conv_nd",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "dilate_and_pad",
    "flip_weight",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "nl_means",
    "nl_means_loop",
    "nl_means_weights",
    "normalize",
    "normalize_loop",
    "scaled_dot_product_attention",
]
