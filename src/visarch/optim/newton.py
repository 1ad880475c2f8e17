r"""Newton's method for small problems (Optimizers chapter).

Around :math:`\theta_t`, the second-order Taylor expansion of the loss is the quadratic
:math:`L(\theta_t) + g^\top \Delta + \tfrac12 \Delta^\top H \Delta` with gradient :math:`g` and
Hessian :math:`H`; when :math:`H` is positive definite its minimum is at :math:`\Delta = -H^{-1} g`,
and the step is

.. math:: \theta_{t+1} = \theta_t - \eta\, (H + \lambda I)^{-1} g

with learning rate :math:`\eta` (1 for the pure method) and optional damping :math:`\lambda`.
On a quadratic loss one step with :math:`\eta = 1` lands on the minimum.  The Hessian of all
parameters together is formed row by row (one backward pass through the gradient per row) and
a linear system is solved: :math:`O(k^2)` memory and :math:`O(k^3)` time for k parameters, as
the notes warn, so this is for problems of at most a few thousand numbers.
"""

from __future__ import annotations

import torch

from visarch.checks import check_real

__all__ = ["Newton", "hessian"]


def hessian(loss, params):
    """The full Hessian ``[k, k]`` and the gradient of the scalar ``loss`` with respect to ``params`` (flattened).

    Checked against ``torch.autograd.functional.hessian`` in ``tests/test_newton_minibatch.py``.

    Args:
        loss: a scalar tensor computed from ``params``, its graph intact.
        params: the list of tensors (requiring gradients) to differentiate by, k entries in all.

    Returns:
        The pair ``(H, g)``, the Hessian ``[k, k]`` and the gradient ``[k]`` (detached).
    """
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])  # [k], still a function of params
    rows = []
    for i in range(flat.numel()):
        row = torch.autograd.grad(flat[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([torch.zeros_like(p).reshape(-1) if r is None else r.reshape(-1)
                               for r, p in zip(row, params, strict=True)]))
    return torch.stack(rows), flat.detach()


class Newton(torch.optim.Optimizer):
    r"""Newton steps on all parameters at once; ``step(closure)`` needs a closure that returns the loss.

    The closure only has to compute the loss (no ``backward``): the step differentiates it twice.
    All parameter groups share one Hessian, so ``lr`` and ``damping`` are taken from the first group.

    Args:
        params: the parameters, or a list of parameter groups (dicts), as for a ``torch.optim`` optimizer.
        lr: :math:`\eta`, 1 for the pure method.
        damping: :math:`\lambda`, added to the Hessian's diagonal.
    """

    def __init__(self, params, lr=1.0, damping=0.0):
        check_real(lr, "lr", where=type(self).__name__, ge=0)
        check_real(damping, "damping", where=type(self).__name__, ge=0)
        super().__init__(params, {"lr": lr, "damping": damping})

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError("Newton.step needs a closure that returns the loss (it differentiates it twice)")
        params = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
        with torch.enable_grad():
            loss = closure()
            h, g = hessian(loss, params)  # [k, k], [k]
        lr, damping = self.param_groups[0]["lr"], self.param_groups[0]["damping"]
        if damping:
            h = h + damping * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        delta = torch.linalg.solve(h, g)  # H^{-1} g without forming the inverse
        offset = 0
        for p in params:
            p.sub_(lr * delta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return loss.detach()
