r"""DINO: self-distillation with no labels (Caron et al., 2021).

A student :math:`g_{\theta_s}` and a teacher :math:`g_{\theta_t}` of the same architecture map an image to
:math:`K` logits.  Their distributions over the :math:`K` dimensions are

.. math::

    P_s(x) = \mathrm{softmax}\bigl(g_{\theta_s}(x) / \tau_s\bigr), \qquad
    P_t(x) = \mathrm{softmax}\bigl((g_{\theta_t}(x) - \mathbf{c}) / \tau_t\bigr),

and the student, shown one augmented view :math:`x_1`, learns to predict the teacher's output on another
view :math:`x_2` by minimising the cross-entropy :math:`H(P_t, P_s) = -\sum_k P_t^{(k)} \log P_s^{(k)}`,
symmetrised over the two views.  No gradient reaches the teacher; its weights follow the student's by an
exponential moving average, :math:`\theta_t \leftarrow \lambda \theta_t + (1 - \lambda)\theta_s`
(:math:`\lambda = 0.996`).  Two opposite forces keep the teacher from collapsing to a constant:
*centering* subtracts :math:`\mathbf{c}`, an EMA of the teacher's batch-mean logits
(:math:`\mathbf{c} \leftarrow m \mathbf{c} + (1 - m)\frac1B\sum_i g_{\theta_t}(x_i)`, :math:`m = 0.9`),
so no dimension can dominate on average, and *sharpening* with a low teacher temperature
(:math:`\tau_t = 0.04 < \tau_s = 0.1`) stops the output from drifting to the uniform distribution.
Subtracting the same vector from every logit leaves a softmax unchanged, so the center only matters
through what it does differently to different dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visarch.checks import check_int, check_real

__all__ = ["DINOConfig", "DINOLoss", "ema_update", "entropy"]


@dataclass(frozen=True)
class DINOConfig:
    """The paper's default hyper-parameters of the loss and the teacher."""

    out_dim: int = 65536  #: K, the number of output dimensions of the projection head
    student_temp: float = 0.1  #: tau_s
    teacher_temp: float = 0.04  #: tau_t, lower than tau_s, so the teacher is sharper
    center_momentum: float = 0.9  #: m, of the EMA that tracks the teacher's mean logits
    teacher_momentum: float = 0.996  #: lambda, of the EMA that moves the teacher's weights

    def __post_init__(self):
        check_int(self.out_dim, "output dimension K", where=type(self).__name__, ge=2)
        check_real(self.student_temp, "student temperature tau_s", where=type(self).__name__, gt=0)
        check_real(self.teacher_temp, "teacher temperature tau_t", where=type(self).__name__, gt=0)
        for name, value in (("center momentum m", self.center_momentum),
                            ("teacher momentum lambda", self.teacher_momentum)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of distributions over the last axis, ``[..., K] -> [...]``: -sum_k p_k log p_k in nats (0 log 0 = 0).

    Args:
        p: probabilities ``[..., K]``, each row summing to 1.

    Returns:
        The entropies ``[...]``.
    """
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


class DINOLoss(nn.Module):
    """DINO's loss: the mean of H(P_t(view a), P_s(view b)) over the pairs of views a != b.

    ``forward(student, teacher)`` takes the student's logits ``[V, B, K]`` for V >= 2 views and the
    teacher's ``[2, B, K]`` for the first two (the global views) and returns a scalar.  In training mode it
    also updates the center with the teacher's logits (see
    :meth:`~visarch.models.dino.DINOLoss.update_center`).

    Args:
        config: K, the temperatures and the center momentum; None for the paper's defaults.
        centering: subtract the center; False is the ablation without centering (the center stays 0).
    """

    def __init__(self, config: DINOConfig | None = None, *, centering: bool = True):
        super().__init__()
        self.config = config or DINOConfig()
        self.centering = centering  # False: the ablation without centering, the center stays 0
        self.register_buffer("center", torch.zeros(self.config.out_dim))

    def teacher_probs(self, teacher: torch.Tensor) -> torch.Tensor:
        """The teacher's centred and sharpened distributions, ``[..., K] -> [..., K]``: softmax((g_t - c) / tau_t).

        No gradient flows back to the teacher's logits.
        """
        return ((teacher.detach() - self.center) / self.config.teacher_temp).softmax(-1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.dim() != 3 or teacher.dim() != 3 or teacher.shape[0] != 2 or student.shape[0] < 2:
            raise ValueError(f"student must be [V >= 2, B, K] and teacher [2, B, K], got {list(student.shape)} "
                             f"and {list(teacher.shape)}")
        if student.shape[1:] != teacher.shape[1:] or student.shape[-1] != self.config.out_dim:
            raise ValueError(f"student {list(student.shape)} and teacher {list(teacher.shape)} need the same "
                             f"batch and K = {self.config.out_dim} outputs")
        p_t = self.teacher_probs(teacher)  # [2, B, K]
        log_p_s = (student / self.config.student_temp).log_softmax(-1)  # [V, B, K]
        total, pairs = student.new_zeros(()), 0
        for a in range(2):
            for b in range(student.shape[0]):
                if a != b:
                    total = total + (-(p_t[a] * log_p_s[b]).sum(-1)).mean()
                    pairs += 1
        if self.training and self.centering:
            self.update_center(teacher)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        """Move the center, c <- m c + (1 - m) times the mean of the teacher's logits over views and batch.

        Args:
            teacher: the teacher's logits ``[..., K]``.
        """
        batch_mean = teacher.detach().reshape(-1, teacher.shape[-1]).mean(0)
        self.center.mul_(self.config.center_momentum).add_(batch_mean, alpha=1 - self.config.center_momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float = 0.996) -> None:
    """Move the teacher towards the student, theta_t <- lambda theta_t + (1 - lambda) theta_s, in place.

    Every parameter is updated so; buffers (such as batch norm's statistics) are copied from the student.

    Args:
        teacher: the teacher network, changed in place.
        student: a network of the same architecture.
        momentum: lambda, in [0, 1].
    """
    if not 0 <= momentum <= 1:
        raise ValueError(f"teacher momentum lambda must be in [0, 1], got {momentum!r}")
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params) or any(t.shape != s.shape for t, s in zip(t_params, s_params, strict=True)):
        raise ValueError("teacher and student must have the same architecture")
    for t, s in zip(t_params, s_params, strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
