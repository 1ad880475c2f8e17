r"""Stochastic gradient descent with momentum and Nesterov momentum (Optimizers chapter).

With gradient :math:`g_t = \nabla L(\theta_t)` (plus :math:`\lambda\theta_t` with weight decay
:math:`\lambda`), learning rate :math:`\eta`, momentum :math:`\mu` and dampening :math:`\tau`,
PyTorch's form, which this class follows, is

.. math::

    b_1 = g_1, \qquad b_t = \mu b_{t-1} + (1 - \tau) g_t, \qquad
    \theta_{t+1} = \theta_t - \eta\,d_t, \quad
    d_t = \begin{cases} g_t + \mu b_t & \text{Nesterov} \\ b_t & \text{otherwise.} \end{cases}

The notes write momentum with a velocity :math:`v_{t+1} = \mu v_t - \eta g_t`,
:math:`\theta_{t+1} = \theta_t + v_{t+1}`: with :math:`\tau = 0` and a constant :math:`\eta`,
:math:`v_t = -\eta b_t`, the same trajectory.  Their Nesterov step evaluates the gradient at the
look-ahead point :math:`\theta_t + \mu v_t`; PyTorch's form is the same algorithm written in the
look-ahead variable :math:`\theta_t + \mu v_t`, which is why it needs no second gradient.
"""

from __future__ import annotations

import torch

from visarch.checks import check_real
from visarch.optim._base import GroupOptimizer

__all__ = ["SGD"]


class SGD(GroupOptimizer):
    r"""``torch.optim.SGD`` with the same arguments and defaults (``foreach``/``fused`` are not offered).

    Follows ``torch.optim.SGD`` step for step, which ``tests/test_optim.py`` checks; the update is the
    module docstring's.

    Args:
        params: the parameters to optimise, or a list of parameter groups (dicts), as for torch.
        lr: :math:`\eta`.
        momentum: :math:`\mu`; 0 for plain gradient descent.
        dampening: :math:`\tau`.
        weight_decay: :math:`\lambda`, the L2 term added to the gradient.
        nesterov: Nesterov momentum (needs a momentum and zero dampening).
        maximize: maximise the objective instead (step along the gradient).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        check_real(lr, "lr", where=type(self).__name__, ge=0)
        check_real(momentum, "momentum", where=type(self).__name__, ge=0)
        check_real(weight_decay, "weight_decay", where=type(self).__name__, ge=0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _init_state(self, group, p):
        return {"momentum_buffer": None}

    def _update(self, group, params, grads, states):
        # Every term is added in place: a new tensor the size of the parameters costs page faults
        # that dominate a step on a large model, so g + lambda theta is never formed on its own.
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if not mu:
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)  # theta - eta lambda theta ...
            torch._foreach_add_(params, grads, alpha=-lr)  # ... - eta g
            return
        damp = 1 - group["dampening"]
        fresh = [s["momentum_buffer"] is None for s in states]
        for s, g, p, new in zip(states, grads, params, fresh, strict=True):
            if new:  # first step of this parameter: b_1 = g_1 (+ lambda theta_1), undamped
                s["momentum_buffer"] = g.clone() if not wd else torch.add(g, p, alpha=wd)
        old = [s["momentum_buffer"] for s, new in zip(states, fresh, strict=True) if not new]
        if old:
            old_g = [g for g, new in zip(grads, fresh, strict=True) if not new]
            torch._foreach_mul_(old, mu)
            torch._foreach_add_(old, old_g, alpha=damp)  # mu b + (1 - tau) g ...
            if wd:
                old_p = [p for p, new in zip(params, fresh, strict=True) if not new]
                torch._foreach_add_(old, old_p, alpha=damp * wd)  # ... + (1 - tau) lambda theta
        buffers = [s["momentum_buffer"] for s in states]
        if group["nesterov"]:  # d = g + lambda theta + mu b, one term at a time
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_add_(params, grads, alpha=-lr)
            torch._foreach_add_(params, buffers, alpha=-lr * mu)
        else:
            torch._foreach_add_(params, buffers, alpha=-lr)  # theta - eta b
