"""``nn.Module`` versions of the building blocks, with keyword-only constructors."""

from visarch.nn.attention import MultiHeadSelfAttention, MultiHeadSelfAttention2d
from visarch.nn.normalization import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm

__all__ = ["BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "MultiHeadSelfAttention",
           "MultiHeadSelfAttention2d"]
