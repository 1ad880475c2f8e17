r"""Test functions for optimizers, and the path an optimizer takes on one (Optimizers chapter).

Two landscapes of the notes' remarks:

* a *quadratic* :math:`f(\theta) = \tfrac12 (\theta - \theta^\star)^\top A\, (\theta - \theta^\star)`
  with a symmetric positive definite :math:`A`.  Its condition number
  :math:`\kappa = \lambda_{\max}/\lambda_{\min}` makes it a sphere (:math:`\kappa = 1`) or a canyon
  (:math:`\kappa \gg 1`): gradient descent must keep :math:`\eta < 2/\lambda_{\max}` to converge,
  and then progresses along the flat direction at a rate set by :math:`\lambda_{\min}`.
* the *Rosenbrock* function :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`, a curved valley with
  its minimum 0 at :math:`(a, a^2)`.

:func:`trajectory` runs any ``torch.optim.Optimizer`` (``visarch.optim``'s or torch's) on such a
function from a starting point and returns the iterates and the losses, for figures and checks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from visarch.checks import check_floating, check_int
from visarch.optim.newton import Newton

__all__ = ["Quadratic", "gradient", "rosenbrock", "trajectory"]


class Quadratic:
    r"""The quadratic :math:`f(\theta) = \frac12 (\theta - \theta^\star)^\top A (\theta - \theta^\star)`.

    Its minimum, 0, is at ``minimum``.  It can be called on a point ``[d]`` (a scalar value) or on
    points ``[..., d]`` (values ``[...]``).

    Args:
        hessian: A, ``[d, d]``, symmetric positive definite.
        minimum: :math:`\theta^\star`, ``[d]`` (zeros by default).
    """

    def __init__(self, hessian: torch.Tensor, minimum: torch.Tensor | None = None):
        check_floating(where=type(self).__name__, hessian=hessian, minimum=minimum)
        if hessian.dim() != 2 or hessian.shape[0] != hessian.shape[1]:
            raise ValueError(f"hessian must be a square matrix [d, d], got shape {tuple(hessian.shape)}")
        if not torch.allclose(hessian, hessian.T):
            raise ValueError("hessian must be symmetric")
        eigenvalues = torch.linalg.eigvalsh(hessian)
        if not eigenvalues[0] > 0:
            raise ValueError(f"hessian must be positive definite, its smallest eigenvalue is {eigenvalues[0]:.3g}")
        d = hessian.shape[0]
        minimum = torch.zeros(d, dtype=hessian.dtype) if minimum is None else minimum
        if tuple(minimum.shape) != (d,):
            raise ValueError(f"minimum must have shape ({d},), got {tuple(minimum.shape)}")
        self.hessian, self.minimum, self.eigenvalues = hessian, minimum, eigenvalues  # eigenvalues ascending

    @classmethod
    def diagonal(cls, *curvatures: float, dtype=torch.float64):
        """The axis-aligned quadratic with these curvatures (eigenvalues) along the coordinate axes.

        Args:
            *curvatures: the diagonal of A, one positive number per coordinate.
            dtype: the dtype of A.
        """
        return cls(torch.diag(torch.tensor(curvatures, dtype=dtype)))

    @classmethod
    def random(cls, d: int, *, generator: torch.Generator, low: float = 0.1, high: float = 10.0,
               dtype=torch.float64):
        r"""A rotated quadratic: Hessian :math:`Q \operatorname{diag}(\lambda) Q^\top` with a random rotation Q.

        Its curvatures :math:`\lambda` are uniform in ``[low, high]`` and its minimum is standard normal,
        all drawn from ``generator``.

        Args:
            d: the dimension.
            generator: the source of every random number.
            low: the smallest curvature that can be drawn, > 0.
            high: the largest, at least ``low``.
            dtype: the dtype of the Hessian and the minimum.
        """
        check_int(d, "dimension d", where="Quadratic", ge=1)
        if not 0 < low <= high:
            raise ValueError(f"curvatures need 0 < low <= high, got low={low}, high={high}")
        q = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=dtype))[0]
        curvatures = low + (high - low) * torch.rand(d, generator=generator, dtype=dtype)
        hessian = q @ torch.diag(curvatures) @ q.T
        return cls((hessian + hessian.T) / 2, torch.randn(d, generator=generator, dtype=dtype))

    @property
    def condition_number(self) -> float:
        r""":math:`\kappa = \lambda_{\max} / \lambda_{\min}`, the ratio of the extreme eigenvalues of the Hessian."""
        return float(self.eigenvalues[-1] / self.eigenvalues[0])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """The value at a point ``[d]`` (a scalar) or at each of many points ``[..., d]``."""
        delta = theta - self.minimum  # [..., d]
        return 0.5 * ((delta @ self.hessian) * delta).sum(-1)


def rosenbrock(theta: torch.Tensor, a: float = 1.0, b: float = 100.0) -> torch.Tensor:
    """The Rosenbrock function :math:`(a - x)^2 + b (y - x^2)^2` of ``theta = [x, y]``; minimum 0 at ``(a, a**2)``.

    Args:
        theta: points ``[..., 2]``.
        a: the x coordinate of the minimum.
        b: the steepness of the valley's walls.

    Returns:
        The values ``[...]``.
    """
    if theta.shape[-1] != 2:
        raise ValueError(f"rosenbrock takes points [..., 2], got shape {tuple(theta.shape)}")
    x, y = theta[..., 0], theta[..., 1]
    return (a - x) ** 2 + b * (y - x**2) ** 2


def gradient(loss: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
    """The gradient of ``loss`` at the point ``theta``, detached (for writing an update rule by hand).

    Args:
        loss (``callable``): a function of one tensor that returns a scalar.
        theta: the point, any shape (``[d]`` for the landscapes here).

    Returns:
        The gradient, of the shape of ``theta``.
    """
    theta = theta.detach().requires_grad_()
    return torch.autograd.grad(loss(theta), theta)[0]


def trajectory(make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
               loss: Callable[[torch.Tensor], torch.Tensor], start, *, steps: int):
    """Run ``steps`` steps of ``make_optimizer([theta])`` on ``loss`` from ``start``.

    Args:
        make_optimizer (``callable``): builds the optimizer from a list holding the one parameter, for instance
            ``lambda ps: SGD(ps, lr=0.1)``; :class:`~visarch.optim.newton.Newton` works too.
        loss (``callable``): a function of a point ``[d]`` that returns a scalar.
        start: a sequence or a tensor ``[d]`` (float64 unless it is already a floating tensor).
        steps: the number of optimizer steps, at least 0.

    Returns:
        ``(path, losses)``, with ``path`` ``[steps + 1, d]`` the start and every iterate, and
        ``losses`` ``[steps + 1]`` (float64) the loss at each of them.
    """
    check_int(steps, "steps", where="trajectory", ge=0)
    start = start if isinstance(start, torch.Tensor) and start.is_floating_point() else torch.tensor(
        start, dtype=torch.float64)
    if start.dim() != 1:
        raise ValueError(f"start must be a point [d], got shape {tuple(start.shape)}")
    theta = start.detach().clone().requires_grad_()
    optimizer = make_optimizer([theta])

    def closure():  # Newton differentiates the loss itself; first-order optimizers need .grad
        optimizer.zero_grad()
        value = loss(theta)
        if not isinstance(optimizer, Newton):
            value.backward()
        return value

    path, losses = [theta.detach().clone()], []
    for _ in range(steps):
        losses.append(float(optimizer.step(closure).detach()))
        path.append(theta.detach().clone())
    with torch.no_grad():
        losses.append(float(loss(theta)))
    return torch.stack(path), torch.tensor(losses, dtype=torch.float64)
