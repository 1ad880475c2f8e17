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
from visarch.functional.pooling import avg_pool2d, global_avg_pool2d, max_pool2d, pool_output_size
from visarch.functional.transposed import conv_transpose2d, conv_transpose_output_size, dilate_and_pad, flip_weight

__all__ = [
    "attention_weights",
    "avg_pool2d",
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
    "global_avg_pool2d",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "max_pool2d",
    "nl_means",
    "nl_means_loop",
    "nl_means_weights",
    "normalize",
    "normalize_loop",
    "pool_output_size",
    "scaled_dot_product_attention",
]
