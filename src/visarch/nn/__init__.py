"""``nn.Module`` versions of the building blocks, with keyword-only constructors."""

from visarch.nn.attention import MultiHeadSelfAttention, MultiHeadSelfAttention2d

__all__ = ["MultiHeadSelfAttention", "MultiHeadSelfAttention2d"]
