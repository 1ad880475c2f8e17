r"""AdaGrad: each coordinate's step divided by the root of its summed squared gradients (Duchi et al., 2011).

.. math::

    s_t = s_{t-1} + g_t \odot g_t, \qquad
    \theta_{t+1} = \theta_t - \frac{\eta_t}{\sqrt{s_t} + \varepsilon} \odot g_t,
    \qquad \eta_t = \frac{\eta}{1 + (t-1)\,\text{lr\_decay}},

with :math:`s_0` = ``initial_accumulator_value`` and :math:`g_t` including weight decay.  The
notes write the same update (without lr_decay).  Because :math:`s_t` only grows, the steps only
shrink: AdaGrad can stop short of a distant minimum.
"""

from __future__ import annotations

import torch

from visarch.checks import check_real
from visarch.optim._base import GroupOptimizer, step_counter

__all__ = ["Adagrad"]


class Adagrad(GroupOptimizer):
    r"""``torch.optim.Adagrad`` with the same arguments and defaults.

    Follows ``torch.optim.Adagrad`` step for step, which ``tests/test_optim.py`` checks; the update is
    the module docstring's.

    Args:
        params: the parameters to optimise, or a list of parameter groups (dicts), as for torch.
        lr: :math:`\eta`.
        lr_decay: divides the learning rate by :math:`1 + (t-1)\,\text{lr\_decay}` at step t.
        weight_decay: the L2 term added to the gradient.
        initial_accumulator_value: :math:`s_0`, every entry of the starting sum.
        eps: :math:`\varepsilon`.
        maximize: maximise the objective instead (step along the gradient).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        check_real(lr, "lr", where=type(self).__name__, ge=0)
        check_real(lr_decay, "lr_decay", where=type(self).__name__, ge=0)
        check_real(weight_decay, "weight_decay", where=type(self).__name__, ge=0)
        check_real(initial_accumulator_value, "initial_accumulator_value", where=type(self).__name__, ge=0)
        check_real(eps, "eps", where=type(self).__name__, ge=0)
        defaults = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay, "eps": eps,
                    "initial_accumulator_value": initial_accumulator_value, "maximize": maximize}
        super().__init__(params, defaults)

    def _init_state(self, group, p):
        return {"step": step_counter(), "sum": torch.full_like(p, group["initial_accumulator_value"])}

    def _update(self, group, params, grads, states):
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        sums = [s["sum"] for s in states]
        torch._foreach_addcmul_(sums, grads, grads)  # s + g * g
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, group["eps"])  # sqrt(s) + eps
        for s, p, g, d in zip(states, params, grads, std, strict=True):
            s["step"] += 1  # steps can differ between parameters whose gradients come and go
            lr = group["lr"] / (1 + (s["step"].item() - 1) * group["lr_decay"])
            p.addcdiv_(g, d, value=-lr)
