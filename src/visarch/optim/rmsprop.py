r"""RMSProp: AdaGrad with an exponential moving average of squared gradients (Tieleman and Hinton, 2012).

.. math::

    s_t = \alpha s_{t-1} + (1 - \alpha)\, g_t \odot g_t, \qquad
    \theta_{t+1} = \theta_t - \frac{\eta}{\sqrt{s_t} + \varepsilon} \odot g_t .

The notes call the decay rate :math:`\beta`; PyTorch calls it ``alpha`` (default 0.99).
``centered`` divides by an estimate of the standard deviation instead,
:math:`\sqrt{s_t - m_t^2}` with :math:`m_t` the moving average of :math:`g_t`; ``momentum``
accumulates the scaled steps, :math:`b_t = \mu b_{t-1} + g_t / (\sqrt{s_t} + \varepsilon)`,
:math:`\theta_{t+1} = \theta_t - \eta b_t`.
"""

from __future__ import annotations

import torch

from visarch.checks import check_real
from visarch.optim._base import GroupOptimizer, step_counter

__all__ = ["RMSprop"]


class RMSprop(GroupOptimizer):
    r"""``torch.optim.RMSprop`` with the same arguments and defaults.

    Follows ``torch.optim.RMSprop`` step for step, which ``tests/test_optim.py`` checks; the update is
    the module docstring's.

    Args:
        params: the parameters to optimise, or a list of parameter groups (dicts), as for torch.
        lr: :math:`\eta`.
        alpha: the decay rate of the moving average of squared gradients (the notes' :math:`\beta`).
        eps: :math:`\varepsilon`.
        weight_decay: the L2 term added to the gradient.
        momentum: :math:`\mu` of the accumulated scaled steps; 0 for none.
        centered: divide by the estimated standard deviation :math:`\sqrt{s_t - m_t^2}`.
        maximize: maximise the objective instead (step along the gradient).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        check_real(lr, "lr", where=type(self).__name__, ge=0)
        check_real(eps, "eps", where=type(self).__name__, ge=0)
        check_real(momentum, "momentum", where=type(self).__name__, ge=0)
        check_real(weight_decay, "weight_decay", where=type(self).__name__, ge=0)
        check_real(alpha, "alpha", where=type(self).__name__, ge=0)
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum,
                    "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _init_state(self, group, p):
        fresh = {"step": step_counter(), "square_avg": torch.zeros_like(p)}
        if group["momentum"] > 0:
            fresh["momentum_buffer"] = torch.zeros_like(p)
        if group["centered"]:
            fresh["grad_avg"] = torch.zeros_like(p)
        return fresh

    def _update(self, group, params, grads, states):
        alpha, mu = group["alpha"], group["momentum"]
        for s in states:
            s["step"] += 1
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        square_avg = [s["square_avg"] for s in states]
        torch._foreach_mul_(square_avg, alpha)
        torch._foreach_addcmul_(square_avg, grads, grads, value=1 - alpha)  # alpha s + (1 - alpha) g^2
        if group["centered"]:
            grad_avg = [s["grad_avg"] for s in states]
            torch._foreach_lerp_(grad_avg, grads, 1 - alpha)  # m = alpha m + (1 - alpha) g
            avg = torch._foreach_addcmul(square_avg, grad_avg, grad_avg, value=-1)  # s - m^2
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(square_avg)
        torch._foreach_add_(avg, group["eps"])
        if mu > 0:
            buffers = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(buffers, mu)
            torch._foreach_addcdiv_(buffers, grads, avg)  # mu b + g / avg
            torch._foreach_add_(params, buffers, alpha=-group["lr"])
        else:
            torch._foreach_addcdiv_(params, grads, avg, value=-group["lr"])
