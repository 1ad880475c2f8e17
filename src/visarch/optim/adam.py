r"""Adam and AdamW (Kingma and Ba, 2015; Loshchilov and Hutter, 2019).

Adam keeps moving averages of the gradient and of its square, corrects their bias towards the
zero they start from, and divides one by the root of the other:

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t \odot g_t, \qquad
    \theta_{t+1} = \theta_t - \eta\, \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \varepsilon}.

The notes write this update with the notes' names (:math:`g` for the first moment, :math:`s`
for the second).  ``amsgrad`` divides by the running maximum of :math:`v_t` instead.

Weight decay :math:`\lambda`: Adam adds :math:`\lambda\theta_t` to the gradient (L2
regularisation), which then passes through the moving averages and the division; AdamW
shrinks the parameters directly, :math:`\theta_t \leftarrow (1 - \eta\lambda)\,\theta_t`,
before the Adam step (decoupled weight decay).  The notes subtract :math:`\lambda\theta_t`
without the factor :math:`\eta`, which is a different algorithm unless the learning rate is constant
and the notes' :math:`\lambda` is read as :math:`\eta\lambda`.
"""

from __future__ import annotations

import torch

from visarch.checks import check_real
from visarch.optim._base import GroupOptimizer, step_counter

__all__ = ["Adam", "AdamW"]


class Adam(GroupOptimizer):
    r"""``torch.optim.Adam`` with the same arguments and defaults, ``decoupled_weight_decay`` included.

    Follows ``torch.optim.Adam`` step for step, which ``tests/test_optim.py`` checks; the update is the
    module docstring's.

    Args:
        params: the parameters to optimise, or a list of parameter groups (dicts), as for torch.
        lr: :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1).
        eps: :math:`\varepsilon`.
        weight_decay: :math:`\lambda`, added to the gradient (L2) or, with ``decoupled_weight_decay``,
            shrinking the parameters directly.
        amsgrad: divide by the running maximum of :math:`v_t`.
        maximize: maximise the objective instead (step along the gradient).
        decoupled_weight_decay: AdamW's weight decay.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        check_real(lr, "lr", where=type(self).__name__, ge=0)
        check_real(eps, "eps", where=type(self).__name__, ge=0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_real(betas[0], "betas[0]", where=type(self).__name__, ge=0, lt=1)
        check_real(betas[1], "betas[1]", where=type(self).__name__, ge=0, lt=1)
        check_real(weight_decay, "weight_decay", where=type(self).__name__, ge=0)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _init_state(self, group, p):
        fresh = {"step": step_counter(), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        if group["amsgrad"]:
            fresh["max_exp_avg_sq"] = torch.zeros_like(p)
        return fresh

    def _update(self, group, params, grads, states):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd:
            if group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * wd)  # AdamW: theta (1 - eta lambda)
            else:
                grads = torch._foreach_add(grads, params, alpha=wd)  # Adam: L2 term in the gradient
        exp_avg, exp_avg_sq = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)  # m = beta1 m + (1 - beta1) g
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
        if group["amsgrad"]:
            second = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(second, exp_avg_sq)
        else:
            second = exp_avg_sq
        for s in states:
            s["step"] += 1
        steps = [s["step"].item() for s in states]
        # bias corrections 1 - beta^t, one per parameter (their step counts may differ)
        correction2_sqrt = [(1 - beta2**t) ** 0.5 for t in steps]
        step_sizes = [-lr / (1 - beta1**t) for t in steps]
        denom = torch._foreach_sqrt(second)
        torch._foreach_div_(denom, correction2_sqrt)
        torch._foreach_add_(denom, eps)  # sqrt(v / (1 - beta2^t)) + eps
        torch._foreach_addcdiv_(params, exp_avg, denom, step_sizes)  # theta - eta m / (1 - beta1^t) / denom


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay, default ``weight_decay=1e-2``.

    Follows ``torch.optim.AdamW`` step for step, which ``tests/test_optim.py`` checks.  The arguments
    are those of :class:`~visarch.optim.adam.Adam` without ``decoupled_weight_decay``, which is always on.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
