"""``nn.Module`` versions of the building blocks, with keyword-only constructors."""

from visarch.nn.attention import MultiHeadSelfAttention, MultiHeadSelfAttention2d
from visarch.nn.nonlocal_block import NonLocalBlock
from visarch.nn.normalization import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from visarch.nn.small_cnn import small_cnn
from visarch.nn.transformer import (
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    TransformerSeq2Seq,
    causal_mask,
    sinusoidal_embeddings,
)

__all__ = ["BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "MultiHeadAttention", "MultiHeadSelfAttention",
           "MultiHeadSelfAttention2d", "NonLocalBlock", "SinusoidalPositionalEncoding", "TransformerDecoderBlock",
           "TransformerEncoderBlock", "TransformerSeq2Seq", "causal_mask",
           "sinusoidal_embeddings", "small_cnn"]
