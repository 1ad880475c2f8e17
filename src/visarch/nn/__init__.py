"""``nn.Module`` versions of the building blocks, with keyword-only constructors."""

from visarch.nn.attention import MultiHeadSelfAttention, MultiHeadSelfAttention2d
from visarch.nn.normalization import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from visarch.nn.small_cnn import small_cnn

__all__ = ["BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "MultiHeadSelfAttention",
           "MultiHeadSelfAttention2d", "small_cnn"]
