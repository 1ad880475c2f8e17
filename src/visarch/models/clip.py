r"""CLIP: contrastive language-image pre-training (Radford et al., 2021).

An image encoder and a text encoder map a batch of N (image, caption) pairs to feature vectors,
two linear maps without bias project them into one space of :math:`d_e` dimensions, and after
L2 normalisation the N x N matrix of cosine similarities, multiplied by a learned scale
:math:`s = e^{t}` (an inverse temperature, initialised to :math:`1/0.07` and clipped at 100),
serves as logits:

.. math::

    \ell_{ij} = s\, \frac{\mathbf{u}_i^\top \mathbf{v}_j}{\lVert\mathbf{u}_i\rVert\,\lVert\mathbf{v}_j\rVert}
    \in [-s, s], \qquad
    \mathcal{L} = \frac12\Bigl(\frac1N\sum_i -\log\frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}
        + \frac1N\sum_j -\log\frac{e^{\ell_{jj}}}{\sum_i e^{\ell_{ij}}}\Bigr),

the cross-entropy of matching each image to its caption among the N captions (rows) and each
caption to its image among the N images (columns), averaged.

The image encoder is the book's ViT (``visarch.models.vit``) with CLIP's three departures: the patch
embedding has no bias, the MLPs use QuickGELU :math:`x\,\sigma(1.702 x)`, and the head on the class
token is the bias-free projection to :math:`d_e`.  The ViT's ``embed_norm`` LayerNorm on the embedded
sequence is exactly the extra LayerNorm CLIP adds before the transformer (its ``ln_pre``).  The text
encoder embeds token ids, adds learned positions, runs pre-norm blocks with *causal* self-attention
(position t sees positions <= t), normalises, and reads the feature at the end-of-text token, the
largest id of each row (as in CLIP's vocabulary and in ``visarch.tokenizer``).  Shapes::

    images                       [B, C, H, W]
    image features (class token) [B, D_img] -> projection [B, d_e]
    tokens                       [B', L]    (L <= context length)
    text features (end of text)  [B', D_txt] -> projection [B', d_e]
    logits_per_image             [B, B']    (logits_per_text is its transpose)

The defaults are the released ViT-B/32 (224 x 224 images, 32 x 32 patches, width 768, 12 layers,
12 heads; text width 512, 12 layers, 8 heads, vocabulary 49,408, context 77; :math:`d_e = 512`):
151,277,313 parameters.  The released ResNet image encoders are not built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.registry import register
from visarch.models.vit import EncoderBlock, ViT, ViTConfig
from visarch.nn.transformer import causal_mask
from visarch.tokenizer import digit_tokenizer

__all__ = ["CLIP", "CLIPConfig", "CLIPTextEncoder", "CausalBlock", "QuickGELU", "contrastive_loss",
           "image_encoder"]


@dataclass(frozen=True)
class CLIPConfig:
    """Hyperparameters of CLIP's two encoders and their joint embedding.

    One field per choice; each field's comment says what it sets.
    """

    embed_dim: int = 512  #: d_e, the joint embedding space of images and texts
    image_size: int = 224  #: H = W of the input images
    in_channels: int = 3  #: C
    patch_size: int = 32  #: p, the "/32" of ViT-B/32
    vision_width: int = 768  #: D_img, the ViT's width
    vision_layers: int = 12  #: blocks of the image encoder
    vision_heads: int = 12  #: heads of the image encoder (width / 64 in the release)
    context_length: int = 77  #: most tokens per caption, start and end of text included
    vocab_size: int = 49408  #: token ids 0 .. V - 1; the end-of-text token is V - 1
    text_width: int = 512  #: D_txt, the text transformer's width
    text_layers: int = 12  #: blocks of the text encoder
    text_heads: int = 8  #: heads of the text encoder
    mlp_ratio: int = 4  #: hidden width of every MLP, in multiples of the block's width
    init_temperature: float = 0.07  #: tau; the learned logit scale t starts at log(1 / tau)
    max_logit_scale: float = 100.0  #: e^t is clipped here, against training instability
    eps: float = 1e-5  #: LayerNorm epsilon (torch's default, as in the release)

    def __post_init__(self):
        for name in ("embed_dim", "image_size", "in_channels", "patch_size", "vision_width", "vision_layers",
                     "vision_heads", "context_length", "vocab_size", "text_width", "text_layers", "text_heads",
                     "mlp_ratio"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not divisible by the patch size {self.patch_size}")
        for width, heads, what in ((self.vision_width, self.vision_heads, "image"),
                                   (self.text_width, self.text_heads, "text")):
            if width % heads:
                raise ValueError(f"{what} width {width} is not divisible by the number of heads {heads}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 (padding, start and end of text), got {self.vocab_size}")
        if self.context_length < 2:
            raise ValueError(f"context_length must be >= 2 (start and end of text), got {self.context_length}")
        check_real(self.init_temperature, "temperature tau", where=type(self).__name__, gt=0)
        if not isinstance(self.max_logit_scale, (int, float)) or not self.max_logit_scale >= 1 / self.init_temperature:
            raise ValueError(f"max_logit_scale must be >= 1 / tau = {1 / self.init_temperature:.4g}, "
                             f"got {self.max_logit_scale!r}")


class QuickGELU(nn.Module):
    r"""QuickGELU, ``x * sigmoid(1.702 x)``: the sigmoid approximation of GELU that CLIP was trained with.

    Elementwise, so any shape maps to the same shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def image_encoder(config: CLIPConfig) -> ViT:
    """The ViT of ``config``, turned into CLIP's image encoder: ``[B, C, H, W] -> [B, d_e]``.

    A :class:`~visarch.models.vit.ViT` with learned position embeddings and the LayerNorm on the embedded
    sequence, then CLIP's changes: a patch embedding without bias, QuickGELU in the MLPs, and a linear
    projection without bias to ``d_e`` as the head.

    Args:
        config: the image size, patch size and the ``vision_*`` sizes; ``embed_dim`` is d_e.

    Returns:
        The image encoder.
    """
    c = config
    vit = ViT(ViTConfig(image_size=c.image_size, patch_size=c.patch_size, in_channels=c.in_channels,
                        dim=c.vision_width, depth=c.vision_layers, heads=c.vision_heads,
                        mlp_dim=c.mlp_ratio * c.vision_width, num_classes=c.embed_dim, pos_embedding="learned",
                        embed_norm=True, eps=c.eps))
    vit.patch_embedding = nn.Conv2d(c.in_channels, c.vision_width, c.patch_size, stride=c.patch_size, bias=False)
    for block in vit.blocks:
        block.mlp[1] = QuickGELU()
    vit.head = nn.Linear(c.vision_width, c.embed_dim, bias=False)  # the image projection W_i
    return vit


class CausalBlock(EncoderBlock):
    """The ViT's pre-norm block with QuickGELU and a causal mask: token t attends to tokens <= t.

    Maps ``[B, T, D]`` to ``[B, T, D]``, as :class:`~visarch.models.vit.EncoderBlock`.

    Args:
        dim: D.
        heads: K.
        mlp_dim: hidden width of the MLP.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, *, heads: int, mlp_dim: int, eps: float = 1e-5):
        super().__init__(dim, heads=heads, mlp_dim=mlp_dim, eps=eps)
        self.mlp[1] = QuickGELU()

    def attention(self, x: torch.Tensor, *, weights: bool = False):
        """Causal multi-head self-attention of ``x`` ``[B, T, D]``; with ``weights``, the maps ``[B, K, T, T]``.

        Args:
            x: the normalised tokens ``[B, T, D]``.
            weights: also return the attention maps, zero above the diagonal.

        Returns:
            ``(out, maps)``: the projected output ``[B, T, D]``, and the maps ``[B, K, T, T]`` or None.
        """
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [B, K, T, d]
        if weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
            maps = torch.softmax(scores.masked_fill(causal_mask(t, device=x.device), -math.inf), dim=-1)
            out = maps @ v
        else:
            maps, out = None, F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(b, t, d)), maps


class CLIPTextEncoder(nn.Module):
    """CLIP's text encoder, token ids ``[B, L]`` -> text features ``[B, d_e]`` read at the end-of-text token.

    Token and position embeddings, causal blocks, a final LayerNorm, and a linear projection without bias
    of the state at the end-of-text token (id V - 1, the largest of each row).

    Args:
        config: the ``text_*`` sizes, the context length, the vocabulary and ``embed_dim`` d_e.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        c = self.config = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.pos_embedding = nn.Parameter(torch.empty(c.context_length, c.text_width))
        self.blocks = nn.ModuleList(
            CausalBlock(c.text_width, heads=c.text_heads, mlp_dim=c.mlp_ratio * c.text_width, eps=c.eps)
            for _ in range(c.text_layers))
        self.norm = nn.LayerNorm(c.text_width, eps=c.eps)
        self.projection = nn.Linear(c.text_width, c.embed_dim, bias=False)  # the text projection W_t
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # the release's initialisation
        nn.init.normal_(self.pos_embedding, std=0.01)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``tokens`` is ``[B, L]`` integer ids in 0 .. V - 1, L <= context length.

        Each row must also hold exactly one end-of-text id V - 1, the position the feature is read at.
        """
        c = self.config
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be an integer tensor of ids, got "
                             f"{tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > c.context_length:
            raise ValueError(f"captions of {tokens.shape[1]} tokens are longer than the context length "
                             f"{c.context_length}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= c.vocab_size):
            raise ValueError(f"token ids must be in 0 .. {c.vocab_size - 1} (vocab_size {c.vocab_size})")
        if not bool(((tokens == c.vocab_size - 1).sum(1) == 1).all()):
            raise ValueError(f"every caption needs exactly one end-of-text token (id {c.vocab_size - 1})")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.check_tokens(tokens)
        x = self.token_embedding(tokens) + self.pos_embedding[: tokens.shape[1]]  # [B, L, D_txt]
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        eot = tokens.argmax(-1)  # the end-of-text token has the largest id: [B]
        return self.projection(x[torch.arange(x.shape[0], device=x.device), eot])  # [B, d_e]


class CLIP(nn.Module):
    """CLIP: image encoder, text encoder and the learned logit scale.

    ``forward(images, tokens)`` maps images ``[B, C, H, W]`` and token ids ``[B', L]`` to
    ``logits_per_image`` ``[B, B']``, the scaled cosine similarities (its transpose is
    ``logits_per_text``); :func:`~visarch.models.clip.contrastive_loss` scores them.

    Args:
        config: both encoders' sizes, the joint dimension d_e and the temperature's start and bound.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.visual = image_encoder(config)
        self.text = CLIPTextEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.init_temperature)))  # t

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, d_e]`` image embeddings (not normalised)."""
        return self.visual(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` token ids -> ``[B, d_e]`` text embeddings (not normalised)."""
        return self.text(tokens)

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine similarities, ``min(e^t, max_logit_scale)``."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.encode_image(images), dim=-1)  # [B, d_e], unit rows
        text = F.normalize(self.encode_text(tokens), dim=-1)  # [B', d_e]
        return self.scale() * image @ text.T  # [B, B'] scaled cosine similarities


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss on the ``[N, N]`` logits of N matching pairs (pair i on the diagonal).

    The mean of the cross-entropies over the rows (image -> caption) and over the columns
    (caption -> image).

    Args:
        logits_per_image: the ``[N, N]`` output of :class:`~visarch.models.clip.CLIP` for N images and
            their N captions, in the same order.

    Returns:
        The scalar loss.
    """
    if logits_per_image.dim() != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        shape = tuple(logits_per_image.shape)
        detail = f"{shape[0]} images and {shape[1]} captions" if len(shape) == 2 else f"shape {shape}"
        raise ValueError(f"the contrastive loss needs a square [N, N] matrix of N images by their N captions, "
                         f"got {detail}")
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


# The tiny CLIP of the book for 8 x 8 grey digits and the digit captions' word vocabulary.
TINY = {"embed_dim": 32, "image_size": 8, "in_channels": 1, "patch_size": 2, "vision_width": 32,
        "vision_layers": 2, "vision_heads": 2, "context_length": 12, "vocab_size": len(digit_tokenizer()),
        "text_width": 32, "text_layers": 2, "text_heads": 2}


@register("clip_vit_b_32", CLIPConfig)
@register("clip_tiny", CLIPConfig, **TINY)
def build_clip(config: CLIPConfig) -> CLIP:
    """CLIP (Radford et al., 2021): ``clip_vit_b_32`` is the released ViT-B/32, ``clip_tiny`` the book's
    small model for digits."""
    return CLIP(config)
