r"""DeiT, the data-efficient image transformer (Touvron et al., 2021): a ViT trained with a teacher.

The architecture of the plain DeiT models is the ViT's (:mod:`visarch.models.vit`) with learned
position embeddings: DeiT-Ti and DeiT-S are ViT-Ti and ViT-S, patch 16 at 224 x 224 pixels,
D = 192 / 384, 12 blocks, 3 / 6 heads, MLP 4D.  The *distilled* variants add a second learned token,
the distillation token, after the class token, with its own position embedding, and a second linear
head on its final state.  With class-head scores :math:`Z_c` and distillation-head scores
:math:`Z_d`, hard-label distillation from a teacher with scores :math:`Z_t` minimises

.. math::

    \mathcal L = \tfrac12\,\mathrm{CE}(Z_c, y) + \tfrac12\,\mathrm{CE}(Z_d, \arg\max Z_t),

and at test time the prediction is the mean of the two heads, :math:`(Z_c + Z_d)/2`.  Shapes::

    image                              [B, C, H, W]
    patch embedding (conv p/p)         [B, H'W', D]
    class and distillation tokens      [B, 2 + H'W', D]   (+ position embeddings)
    L encoder blocks, LayerNorm        [B, 2 + H'W', D]
    heads on tokens 0 and 1            [B, num_classes] each; forward returns their mean

The distillation token adds D + D + (D K + K) parameters (token, position embedding, head with K
classes): 5,717,416 -> 5,910,800 for DeiT-Ti and 22,050,664 -> 22,436,432 for DeiT-S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.models.registry import register
from visarch.models.vit import PUBLISHED, ViT, ViTConfig

__all__ = ["DeiTConfig", "DistilledViT", "hard_distillation_loss"]


@dataclass(frozen=True)
class DeiTConfig(ViTConfig):
    """A ViT config whose sequence also holds the distillation token (always learned embeddings)."""

    pos_embedding: str = "learned"  #: DeiT learns its position embeddings, one per token
    embed_norm: bool = False  #: no LayerNorm on the embedded sequence, as in ViT and DeiT

    def __post_init__(self):
        super().__post_init__()
        if self.pos_embedding != "learned":
            raise ValueError(f"the distillation token needs learned position embeddings, got {self.pos_embedding!r}")

    @property
    def tokens(self) -> int:
        """Sequence length T = 2 + H'W', the class token, the distillation token and the H'W' patches."""
        return 2 + (self.image_size // self.patch_size) ** 2


class DistilledViT(ViT):
    """DeiT's distilled ViT: a distillation token and a second head; ``forward`` averages the two heads.

    Maps images ``[B, C, H, W]`` to the mean of the class-head and distillation-head scores,
    ``[B, num_classes]``; :meth:`~visarch.models.deit.DistilledViT.heads` returns the two separately, for
    :func:`~visarch.models.deit.hard_distillation_loss`.

    Args:
        config: the ViT's sizes; position embeddings are always learned.
    """

    def __init__(self, config: DeiTConfig):
        super().__init__(config)
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.distillation_head = nn.Linear(config.dim, config.num_classes)

    def prefix_tokens(self, batch: int) -> torch.Tensor:
        """The class token, then the distillation token, before the patches: ``[B, 2, D]``."""
        return torch.cat([self.class_token, self.distillation_token], dim=1).expand(batch, -1, -1)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-head and distillation-head scores, each ``[B, num_classes]`` (for the training loss).

        Args:
            x: images ``[B, C, H, W]``.

        Returns:
            ``(class_scores, distillation_scores)``, from tokens 0 and 1 after the final LayerNorm.
        """
        z = self.embed(x)
        for block in self.blocks:
            z = block(z)
        z = self.norm(z)
        return self.head(z[:, 0]), self.distillation_head(z[:, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        class_scores, distillation_scores = self.heads(x)
        return (class_scores + distillation_scores) / 2  # the paper's prediction at test time


def hard_distillation_loss(class_scores: torch.Tensor, distillation_scores: torch.Tensor, labels: torch.Tensor,
                           teacher_scores: torch.Tensor) -> torch.Tensor:
    """The hard-label distillation loss of DeiT, averaged over the batch.

    Half the cross-entropy of the class head against the labels, half that of the distillation head
    against the teacher's decisions (its argmax, not its probabilities).

    Args:
        class_scores: the class head's scores ``[B, K]``.
        distillation_scores: the distillation head's scores ``[B, K]``.
        labels: the true classes ``[B]``.
        teacher_scores: the teacher's scores ``[B, K]``.

    Returns:
        The scalar loss.
    """
    if not class_scores.shape == distillation_scores.shape == teacher_scores.shape:
        raise ValueError(f"the class, distillation and teacher scores must have one shape, got "
                         f"{tuple(class_scores.shape)}, {tuple(distillation_scores.shape)}, "
                         f"{tuple(teacher_scores.shape)}")
    return (F.cross_entropy(class_scores, labels) + F.cross_entropy(distillation_scores, teacher_scores.argmax(1))) / 2


TINY = {"patch_size": 16, "dim": 192, "depth": 12, "heads": 3, "mlp_dim": 768}
SMALL = {"patch_size": 16, "dim": 384, "depth": 12, "heads": 6, "mlp_dim": 1536}


@register("deit_tiny", ViTConfig, **TINY, **PUBLISHED)
@register("deit_small", ViTConfig, **SMALL, **PUBLISHED)
def build_deit(config: ViTConfig) -> ViT:
    """DeiT-Ti / DeiT-S (Touvron et al., 2021): the ViT-Ti / ViT-S architecture."""
    return ViT(config)


@register("deit_tiny_distilled", DeiTConfig, **TINY, **PUBLISHED)
@register("deit_small_distilled", DeiTConfig, **SMALL, **PUBLISHED)
def build_distilled_deit(config: DeiTConfig) -> DistilledViT:
    """DeiT-Ti / DeiT-S with the distillation token and its head (Touvron et al., 2021)."""
    return DistilledViT(config)
