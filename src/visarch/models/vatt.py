r"""VATT: a video-audio-text transformer trained by contrast (Akbari et al., 2021).

Each modality is cut into tokens by one linear map and read by its own transformer encoder:

* video ``[B, C, T, H, W]`` is split into :math:`\lceil T/t \rceil \lceil H/h \rceil \lceil W/w \rceil`
  patches of :math:`t \times h \times w` voxels (zero-padded at the far ends when a size is not a
  multiple), each projected linearly to :math:`d` numbers, a 3D version of the ViT's patch embedding;
  the position of patch :math:`(i, j, k)` is the sum :math:`e_{T,i} + e_{H,j} + e_{W,k}` of three
  learned embeddings, one per axis, so :math:`\lceil T/t \rceil + \lceil H/h \rceil + \lceil W/w \rceil`
  vectors encode every position;
* the waveform ``[B, T']`` is split into :math:`\lceil T'/t' \rceil` segments of :math:`t'` samples, each
  projected linearly, with one learned position per segment;
* the words ``[B, L]`` are one-hot vectors times a matrix :math:`W_{tp} \in \mathbb{R}^{v \times d}`,
  an embedding table, with one learned position per word.

*DropToken* keeps a random subset of the video and audio tokens during training.  A learned
aggregation token is put in front, and its final state is the modality's feature.  The features go to
two common spaces of different granularity: video and audio meet in :math:`S_{va}`, video and text in
:math:`S_{vt}`, and the video reaches :math:`S_{vt}` *through* :math:`S_{va}`,

.. math::

    z_{v,va} = g_{v\to va}(z_v), \quad z_{a,va} = g_{a\to va}(z_a), \quad
    z_{t,vt} = g_{t\to vt}(z_t), \quad z_{v,vt} = g_{v\to vt}(z_{v,va}),

with a two-layer head (ReLU between) for :math:`g_{v\to va}`, linear ones for the rest, and a batch
norm after every linear layer.  The losses are noise-contrastive estimation for video and audio and its
multiple-instance version (several positive captions per clip) for video and text, both with the
negatives of *every* non-matching pair of the batch (:func:`nce_loss`, :func:`mil_nce_loss`).  Shapes::

    video [B, C, T, H, W] -> tokens [B, N_v, d_v] -> (DropToken) -> encoder -> z_v [B, d_v]
    audio [B, T']         -> tokens [B, N_a, d_a] -> (DropToken) -> encoder -> z_a [B, d_a]
    words [B, L]          -> tokens [B, L, d_t]                  -> encoder -> z_t [B, d_t]
    z_{v,va}, z_{a,va} [B, d_va];  z_{v,vt}, z_{t,vt} [B, d_vt]

The defaults are the paper's Medium-Base-Small model (video, audio, text backbones of Medium, Base and
Small size, its table 7) at its pre-training input: 32 frames of 224 x 224 pixels in patches of
4 x 16 x 16, 3.2 s of 48 kHz audio in segments of 128 samples, 16 words from a vocabulary of 2^16,
:math:`d_{va} = 512`, :math:`d_{vt} = 256`.  One departure: the paper's text encoder replaces the
learned positions by a relative-position bias in its first layer (for compatibility with T5); this one
keeps learned positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real
from visarch.models.registry import register
from visarch.models.vit import EncoderBlock
from visarch.tokenizer import digit_tokenizer

__all__ = ["AudioTokenizer", "Encoder", "VATT", "VATTConfig", "VideoTokenizer", "drop_tokens", "mil_nce_loss",
           "nce_loss"]


@dataclass(frozen=True)
class VATTConfig:
    """Hyperparameters of VATT, the video, audio and text transformer.

    One field per choice; each field's comment says what it sets.
    """

    frames: int = 32  #: T, frames of a clip (3.2 s at 10 frames per second)
    image_size: int = 224  #: H = W of the frames
    in_channels: int = 3  #: C, RGB
    video_patch: tuple[int, int, int] = (4, 16, 16)  #: t x h x w voxels per video token
    audio_samples: int = 153_600  #: T', samples of the clip's waveform (3.2 s at 48 kHz)
    audio_patch: int = 128  #: t', samples per audio token
    vocab_size: int = 2**16  #: v, words of the vocabulary
    text_length: int = 16  #: L, words per caption, clipped or padded
    video: tuple[int, int, int, int] = (1024, 12, 16, 4096)  #: (width, blocks, heads, MLP) of Medium
    audio: tuple[int, int, int, int] = (768, 12, 12, 3072)  #: Base
    text: tuple[int, int, int, int] = (512, 6, 8, 2048)  #: Small
    va_dim: int = 512  #: d_va, the dimension of the video-audio space
    vt_dim: int = 256  #: d_vt, the dimension of the video-text space
    drop_rate: float = 0.5  #: DropToken's share of the video and audio tokens dropped in training
    temperature: float = 0.07  #: tau of the two contrastive losses

    def __post_init__(self):
        for name in ("frames", "image_size", "in_channels", "audio_samples", "audio_patch", "vocab_size",
                     "text_length", "va_dim", "vt_dim"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if len(self.video_patch) != 3:
            raise ValueError(f"video_patch must be (t, h, w), got {self.video_patch!r}")
        for side in self.video_patch:
            check_int(side, "video_patch side", where=type(self).__name__, ge=1)
        for name in ("video", "audio", "text"):
            size = getattr(self, name)
            if len(size) != 4:
                raise ValueError(f"{name} must be (width, blocks, heads, MLP width), got {size!r}")
            for value in size:
                check_int(value, f"{name} size", where=type(self).__name__, ge=1)
            if size[0] % size[2]:
                raise ValueError(f"{name} width {size[0]} is not divisible by its {size[2]} heads")
        check_real(self.drop_rate, "drop_rate", where=type(self).__name__, ge=0, lt=1)
        check_real(self.temperature, "temperature", where=type(self).__name__, gt=0)

    @property
    def video_grid(self) -> tuple[int, int, int]:
        """Video tokens along time, rows and columns, the ceilings of T/t, H/h and W/w."""
        t, h, w = self.video_patch
        return math.ceil(self.frames / t), math.ceil(self.image_size / h), math.ceil(self.image_size / w)

    @property
    def audio_tokens(self) -> int:
        """N_a, the audio tokens of a clip, the ceiling of T'/t'."""
        return math.ceil(self.audio_samples / self.audio_patch)


def _pad_to_multiple(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Zeros after the last entry of each of the last ``len(sizes)`` axes, up to a multiple of ``sizes``."""
    pad = []
    for axis, size in zip(reversed(range(x.dim() - len(sizes), x.dim())), reversed(sizes), strict=True):
        pad += [0, -x.shape[axis] % size]
    return F.pad(x, pad)


class VideoTokenizer(nn.Module):
    """VATT's video tokenizer, ``[B, C, T, H, W] -> [B, N_v, d]``: a linear map of each voxel patch, plus its position.

    The clip is zero-padded at the far ends to whole patches; the position of patch (i, j, k) is the sum
    of three learned embeddings, one per axis.  ``N_v`` is the product of the grid's sides.

    Args:
        channels: C.
        patch: ``(t, h, w)`` voxels per patch.
        grid: patches along time, rows and columns (the config's ``video_grid``).
        dim: d, the video encoder's width.
    """

    def __init__(self, channels: int, *, patch: tuple[int, int, int], grid: tuple[int, int, int], dim: int):
        super().__init__()
        self.patch, self.grid = patch, grid
        self.project = nn.Conv3d(channels, dim, patch, stride=patch)  # W_vp on each patch of t h w C voxels
        self.temporal, self.rows, self.cols = (nn.Parameter(torch.empty(n, dim).normal_(std=0.02)) for n in grid)

    def positions(self) -> torch.Tensor:
        """The position embeddings of all patches, ``[N_v, d]``.

        Row ``(i, j, k)`` (time-major) is ``e_T[i] + e_H[j] + e_W[k]``.
        """
        return (self.temporal[:, None, None] + self.rows[None, :, None] + self.cols[None, None]).flatten(0, 2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        tokens = self.project(_pad_to_multiple(video, self.patch))  # [B, d, T/t, H/h, W/w]
        if tuple(tokens.shape[2:]) != self.grid:
            raise ValueError(f"the video gives a {tuple(tokens.shape[2:])} grid of patches, expected {self.grid}")
        return tokens.flatten(2).transpose(1, 2) + self.positions()  # [B, N_v, d]


class AudioTokenizer(nn.Module):
    """VATT's audio tokenizer, ``[B, T'] -> [B, N_a, d]``: a linear map of each waveform segment, plus its position.

    The waveform is zero-padded at the end to whole segments of t' samples.

    Args:
        patch: t', samples per segment.
        tokens: N_a, the segments of a clip (one learned position each).
        dim: d, the audio encoder's width.
    """

    def __init__(self, *, patch: int, tokens: int, dim: int):
        super().__init__()
        self.patch = patch
        self.project = nn.Conv1d(1, dim, patch, stride=patch)  # W_ap on each segment of t' samples
        self.position = nn.Parameter(torch.empty(tokens, dim).normal_(std=0.02))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        tokens = self.project(_pad_to_multiple(audio[:, None], (self.patch,)))  # [B, d, N_a]
        if tokens.shape[-1] != self.position.shape[0]:
            raise ValueError(f"the waveform gives {tokens.shape[-1]} segments, expected {self.position.shape[0]}")
        return tokens.transpose(1, 2) + self.position


def drop_tokens(tokens: torch.Tensor, rate: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """DropToken: keep a random ``round((1 - rate) N)`` (at least one) of the N tokens of each example.

    The kept tokens stay in their original order.  The positions must already be added.

    Args:
        tokens: ``[B, N, d]``.
        rate: the share of the tokens to drop, in [0, 1).
        generator: the random generator; None uses the global one.

    Returns:
        The kept tokens ``[B, N_kept, d]``, a different subset for every example.
    """
    check_real(rate, "rate", where="drop_tokens", ge=0, lt=1)
    b, n, _ = tokens.shape
    keep = max(1, round((1 - rate) * n))
    order = torch.rand(b, n, generator=generator, device=tokens.device).argsort(dim=1)[:, :keep]  # [B, kept]
    return tokens.gather(1, order.sort(dim=1).values[..., None].expand(-1, -1, tokens.shape[-1]))


class Encoder(nn.Module):
    """A modality's transformer encoder, ``[B, N, d] -> [B, d]``: the final state of an aggregation token.

    A learned aggregation token is put in front of the tokens; then ViT encoder blocks and a final
    LayerNorm of that token's state.

    Args:
        width: d.
        blocks: the number of encoder blocks.
        heads: attention heads, dividing d.
        mlp: hidden width of each block's MLP.
    """

    def __init__(self, width: int, *, blocks: int, heads: int, mlp: int):
        super().__init__()
        self.aggregate = nn.Parameter(torch.zeros(1, 1, width))  # x_AGG
        self.blocks = nn.ModuleList(EncoderBlock(width, heads=heads, mlp_dim=mlp) for _ in range(blocks))
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        z = torch.cat([self.aggregate.expand(tokens.shape[0], -1, -1), tokens], dim=1)  # [B, 1 + N, d]
        for block in self.blocks:
            z = block(z)
        return self.norm(z[:, 0])  # the aggregation token's final state


def _linear_bn(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out))


class VATT(nn.Module):
    """VATT: three tokenizers, three encoders and the four common-space heads.

    ``forward(video, audio, words)`` maps clips ``[B, C, T, H, W]``, waveforms ``[B, T']`` and captions
    ``[B, L]`` (one per clip) to the video-audio and video-text similarity matrices over the temperature,
    stacked as ``[2, B, B]``; the ``embed_*`` methods give the normalised embeddings.  In training mode
    DropToken thins the video and audio tokens.

    Args:
        config: the input sizes, the three encoders' sizes, the common spaces, DropToken and temperature.
    """

    def __init__(self, config: VATTConfig):
        super().__init__()
        c = self.config = config
        dv, da, dt = c.video[0], c.audio[0], c.text[0]  # the three widths
        self.video_tokens = VideoTokenizer(c.in_channels, patch=c.video_patch, grid=c.video_grid, dim=dv)
        self.audio_tokens = AudioTokenizer(patch=c.audio_patch, tokens=c.audio_tokens, dim=da)
        self.word_embedding = nn.Embedding(c.vocab_size, dt)  # one-hot words times W_tp
        self.text_position = nn.Parameter(torch.empty(c.text_length, dt).normal_(std=0.02))
        self.video_encoder, self.audio_encoder, self.text_encoder = (
            Encoder(width, blocks=blocks, heads=heads, mlp=mlp)
            for width, blocks, heads, mlp in (c.video, c.audio, c.text))
        self.video_to_va = nn.Sequential(_linear_bn(dv, c.va_dim), nn.ReLU(), _linear_bn(c.va_dim, c.va_dim))
        self.audio_to_va = _linear_bn(da, c.va_dim)
        self.text_to_vt = _linear_bn(dt, c.vt_dim)
        self.va_to_vt = _linear_bn(c.va_dim, c.vt_dim)  # the video's path from S_va on to S_vt

    def _maybe_drop(self, tokens: torch.Tensor) -> torch.Tensor:
        return drop_tokens(tokens, self.config.drop_rate) if self.training and self.config.drop_rate else tokens

    def embed_video(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The clips ``[B, C, T, H, W]`` in both spaces, unit length: ``[B, d_va]`` and ``[B, d_vt]``."""
        v_va = self.video_to_va(self.video_encoder(self._maybe_drop(self.video_tokens(video))))  # [B, d_va]
        return F.normalize(v_va, dim=-1), F.normalize(self.va_to_vt(v_va), dim=-1)  # S_vt only through S_va

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """The waveforms ``[B, T']`` in the video-audio space, unit length: ``[B, d_va]``."""
        z_a = self.audio_encoder(self._maybe_drop(self.audio_tokens(audio)))  # [B, d_a]
        return F.normalize(self.audio_to_va(z_a), dim=-1)

    def encode_text(self, words: torch.Tensor) -> torch.Tensor:
        """The text encoder's feature of each caption, before the head: ``[B', L]`` token ids ``-> z_t [B', d_t]``.

        The words become one-hot vectors times :math:`W_{tp}` (the embedding table), plus one learned
        position each, and the text encoder reads them.
        """
        c = self.config
        if words.dim() != 2 or words.shape[1] != c.text_length:
            raise ValueError(f"words must be [B, {c.text_length}] token ids, got shape {tuple(words.shape)}")
        return self.text_encoder(self.word_embedding(words) + self.text_position)  # [B', d_t]

    def embed_text(self, words: torch.Tensor, *, pick: torch.Tensor | None = None) -> torch.Tensor:
        """The captions ``[B', L]`` (token ids) in the video-text space, unit length: ``[B', d_vt]``.

        With ``pick``, row indices ``[B'']`` into ``words``, the result is ``embed_text(words[pick])``
        ``[B'', d_vt]`` (the head's batch norm sees the B'' picked captions), but the text encoder runs
        once per row of ``words``: when a batch draws its captions, repeated, from a few distinct ones,
        pass those as ``words``.
        """
        z_t = self.encode_text(words)  # [B', d_t]
        if pick is not None:
            if pick.dim() != 1 or pick.dtype != torch.long:
                raise ValueError(f"VATT.embed_text: pick must be a [B''] int64 tensor of row indices, got {pick.dtype} "
                                 f"{tuple(pick.shape)}")
            z_t = z_t[pick]  # [B'', d_t]
        return F.normalize(self.text_to_vt(z_t), dim=-1)

    def embed(self, video: torch.Tensor, audio: torch.Tensor, words: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four common-space embeddings, L2-normalised: ``v_va``, ``a_va`` ``[B, d_va]``; ``v_vt``,
        ``t_vt`` ``[B', d_vt]`` (``words`` may hold several captions per clip, ``B' = K B``)."""
        v_va, v_vt = self.embed_video(video)
        return {"v_va": v_va, "a_va": self.embed_audio(audio), "v_vt": v_vt, "t_vt": self.embed_text(words)}

    def forward(self, video: torch.Tensor, audio: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """The two matrices of cosine similarities over the temperature, video-audio and video-text,
        stacked: ``[2, B, B]`` (one caption per clip)."""
        z = self.embed(video, audio, words)
        return torch.stack([z["v_va"] @ z["a_va"].T, z["v_vt"] @ z["t_vt"].T]) / self.config.temperature


def _check_pairs(name: str, left: torch.Tensor, right: torch.Tensor) -> None:
    if left.dim() != 2 or right.dim() != 2 or left.shape != right.shape:
        raise ValueError(f"{name} needs two [B, d] batches of matching pairs, got {tuple(left.shape)} and "
                         f"{tuple(right.shape)}")


def nce_loss(video: torch.Tensor, audio: torch.Tensor, *, temperature: float = 0.07) -> torch.Tensor:
    r"""VATT's noise-contrastive loss of B matching (video, audio) pairs, the paper's equation 4.

    .. math::

        -\frac1B \sum_i \log \frac{e^{s_{ii}}}{e^{s_{ii}} + \sum_{j \ne k} e^{s_{jk}}}, \qquad
        s_{jk} = z_{v,j}^\top z_{a,k} / \tau,

    where the negatives are *all* :math:`B^2 - B` non-matching pairs of the batch (not only those of row
    i, as in CLIP's loss).

    Args:
        video: video embeddings ``[B, d]``, normalised.
        audio: the matching audio embeddings ``[B, d]``, normalised.
        temperature: :math:`\tau`.

    Returns:
        The scalar loss.
    """
    _check_pairs("nce_loss", video, audio)
    check_real(temperature, "temperature", where="nce_loss", gt=0)
    scores = video @ audio.T / temperature  # [B, B]
    off = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    negatives = torch.logsumexp(scores[off], dim=0)  # log sum over the B^2 - B non-matching pairs
    positives = scores.diagonal()  # [B]
    return (torch.logaddexp(positives, negatives) - positives).mean()


def mil_nce_loss(video: torch.Tensor, texts: torch.Tensor, *, temperature: float = 0.07) -> torch.Tensor:
    r"""Multiple-instance NCE, the paper's equation 5: several positive captions per clip.

    Clip i has K positive captions ``texts[i]`` (the paper takes the K = 5 nearest in time), and the
    negatives are all pairs of a clip with a caption of another clip:

    .. math::

        -\frac1B \sum_i \log \frac{\sum_{p} e^{s_{i,ip}}}{\sum_{p} e^{s_{i,ip}} + \sum_{j \ne k,\,p} e^{s_{j,kp}}}.

    With K = 1 it is :func:`~visarch.models.vatt.nce_loss`.

    Args:
        video: video embeddings ``[B, d]``, normalised.
        texts: the K caption embeddings of each clip ``[B, K, d]``, normalised.
        temperature: :math:`\tau`.

    Returns:
        The scalar loss.
    """
    if texts.dim() != 3 or video.dim() != 2 or texts.shape[0] != video.shape[0] or texts.shape[2] != video.shape[1]:
        raise ValueError(f"mil_nce_loss needs video [B, d] and texts [B, K, d], got {tuple(video.shape)} and "
                         f"{tuple(texts.shape)}")
    check_real(temperature, "temperature", where="mil_nce_loss", gt=0)
    scores = torch.einsum("id,kpd->ikp", video, texts) / temperature  # [B, B, K]: clip i, captions of clip k
    same = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    positives = torch.logsumexp(scores[same], dim=-1)  # [B]: log of the sum over clip i's own captions
    negatives = torch.logsumexp(scores[~same].flatten(), dim=0)
    return (torch.logaddexp(positives, negatives) - positives).mean()


# The book's small VATT for moving digits: 5 frames of 12 x 12 pixels, a 400-sample sound, 12-word captions.
TINY = {"frames": 5, "image_size": 12, "in_channels": 1, "video_patch": (2, 4, 4), "audio_samples": 400,
        "audio_patch": 16, "vocab_size": len(digit_tokenizer()), "text_length": 12, "video": (32, 2, 2, 64),
        "audio": (32, 2, 2, 64), "text": (32, 2, 2, 64), "va_dim": 32, "vt_dim": 16}


@register("vatt_tiny", VATTConfig, **TINY)
def build_vatt(config: VATTConfig) -> VATT:
    """VATT (Akbari et al., 2021), the book's small model for moving digits; ``VATT(VATTConfig())`` is
    the paper's Medium-Base-Small layout."""
    return VATT(config)
