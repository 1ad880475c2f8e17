"""``visarch.optim.landscapes``: the test functions and the optimizer paths the chapter draws.

* ``Quadratic`` is ``0.5 (t - t*)^T A (t - t*)``: its autograd gradient is ``A (t - t*)``, its
  condition number the ratio of ``numpy``'s extreme eigenvalues; bad Hessians are refused;
* ``gradient`` is the same closed form, detached;
* ``rosenbrock`` is 0 at ``(a, a^2)``, and its gradient is the closed form of the textbook;
* ``trajectory`` with plain SGD reproduces the hand-written iteration ``t <- t - lr A (t - t*)``,
  with torch's and with visarch's optimizers alike, and a Newton step lands on a quadratic's minimum.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visarch.optim import SGD, Newton, Quadratic, gradient, rosenbrock, trajectory


def random_quadratic(seed, d=4):
    return Quadratic.random(d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(5))
def test_quadratic_value_gradient_and_condition(seed):
    f = random_quadratic(seed)
    theta = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(99 + seed)).requires_grad_()
    (grad,) = torch.autograd.grad(f(theta), theta)
    torch.testing.assert_close(grad, f.hessian @ (theta.detach() - f.minimum))
    by_helper = gradient(f, theta)
    torch.testing.assert_close(by_helper, f.hessian @ (theta.detach() - f.minimum))
    assert not by_helper.requires_grad and theta.grad is None
    assert f(f.minimum).item() == 0.0
    eig = np.linalg.eigvalsh(f.hessian.numpy())
    assert f.condition_number == pytest.approx(eig[-1] / eig[0], rel=1e-12)
    assert Quadratic.diagonal(1.0, 50.0).condition_number == 50.0


def test_random_quadratic_curvatures_lie_in_range():
    for seed in range(5):
        f = Quadratic.random(6, generator=torch.Generator().manual_seed(seed), low=0.5, high=2.0)
        assert f.eigenvalues.min() >= 0.5 - 1e-12 and f.eigenvalues.max() <= 2.0 + 1e-12
    with pytest.raises(ValueError, match="0 < low <= high"):
        Quadratic.random(3, generator=torch.Generator(), low=0.0)


@pytest.mark.parametrize("hessian, match", [
    (torch.ones(2, 3, dtype=torch.float64), "square matrix"),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64), "symmetric"),
    (torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)), "positive definite"),
])
def test_quadratic_refuses_bad_hessians(hessian, match):
    with pytest.raises(ValueError, match=match):
        Quadratic(hessian)


def test_rosenbrock_minimum_and_gradient():
    for a, b in ((1.0, 100.0), (2.0, 10.0)):
        assert rosenbrock(torch.tensor([a, a * a], dtype=torch.float64), a, b).item() == 0.0
        point = torch.tensor([-0.7, 1.3], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(rosenbrock(point, a, b), point)
        x, y = point.detach()
        expected = torch.stack([-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)])
        torch.testing.assert_close(grad, expected)
    with pytest.raises(ValueError, match=r"points \[\.\.\., 2\]"):
        rosenbrock(torch.zeros(3))


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, SGD])
def test_trajectory_of_sgd_is_the_iteration(optimizer):
    f, lr, steps = random_quadratic(7), 0.05, 30
    start = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    path, losses = trajectory(lambda params: optimizer(params, lr=lr), f, start, steps=steps)
    assert path.shape == (steps + 1, 4) and losses.shape == (steps + 1,)
    theta = start.clone()
    for t in range(steps + 1):
        torch.testing.assert_close(path[t], theta)
        assert losses[t].item() == pytest.approx(f(theta).item(), rel=1e-12)
        theta = theta - lr * f.hessian @ (theta - f.minimum)


def test_trajectory_with_newton_and_bad_arguments():
    f = random_quadratic(3)
    path, losses = trajectory(Newton, f, [0.0, 0.0, 0.0, 0.0], steps=1)
    torch.testing.assert_close(path[1], f.minimum)
    assert losses[1].item() < 1e-20
    with pytest.raises(ValueError, match="steps must be >= 0"):
        trajectory(Newton, f, [0.0] * 4, steps=-1)
    with pytest.raises(ValueError, match=r"start must be a point \[d\]"):
        trajectory(Newton, f, [[0.0] * 4], steps=1)


def test_quadratic_on_many_points_is_pointwise():
    f = random_quadratic(11)
    points = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values = f(points)
    assert values.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            assert values[i, j].item() == pytest.approx(f(points[i, j]).item(), rel=1e-12)
