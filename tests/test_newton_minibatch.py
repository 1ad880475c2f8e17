"""``visarch.optim.Newton`` and ``minibatch_sgd``, against independent references.

* ``hessian`` equals ``torch.autograd.functional.hessian`` on random smooth functions of several
  parameter tensors;
* one Newton step with lr = 1 lands on the minimiser of a random positive-definite quadratic,
  ``-A^{-1} b`` from ``torch.linalg.solve``; on the Rosenbrock function Newton reaches (1, 1)
  in a few steps, and with damping it takes the damped step ``-(H + lambda I)^{-1} g``;
* ``minibatch_sgd`` takes ceil(N / B) steps per epoch, visits every example exactly once per
  epoch, and equals a hand-written loop with ``torch.optim.SGD`` over the same batches.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visarch.optim import Newton, hessian, minibatch_sgd


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_hessian_is_torchs(seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 4, generator=gen, dtype=torch.float64)

    def f(a, b):
        return (a @ c @ b).sin().sum() + (a**2).sum() * b.cosh().sum()

    h, _ = hessian(f(a, b), [a, b])
    blocks = torch.autograd.functional.hessian(f, (a, b))  # ((aa, ab), (ba, bb)) blocks
    expected = torch.cat([torch.cat([blk.reshape(p.numel(), q.numel()) for blk, q in zip(row, (a, b), strict=True)], 1)
                          for row, p in zip(blocks, (a, b), strict=True)])
    assert_close(h, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 8))
def test_one_newton_step_solves_a_quadratic(seed, k):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(k, k, generator=gen, dtype=torch.float64)
    a, b = m @ m.T + 0.5 * torch.eye(k, dtype=torch.float64), torch.randn(k, generator=gen, dtype=torch.float64)
    x = torch.randn(k, generator=gen, dtype=torch.float64, requires_grad=True)
    Newton([x]).step(lambda: 0.5 * x @ a @ x + b @ x)
    assert_close(x.detach(), -torch.linalg.solve(a, b), rtol=1e-9, atol=1e-10)


def test_newton_on_rosenbrock_and_damping():
    xy = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)

    def rosenbrock():
        return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2

    opt = Newton([xy])
    for _ in range(8):
        opt.step(rosenbrock)
    assert_close(xy.detach(), torch.tensor([1.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-8)

    start = torch.tensor([0.3, -0.4], dtype=torch.float64, requires_grad=True)
    h = torch.autograd.functional.hessian(lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2, start)
    g = torch.autograd.functional.jacobian(lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2, start)
    expected = start.detach() - 0.5 * torch.linalg.solve(h + 3.0 * torch.eye(2, dtype=torch.float64), g)
    xy = start.detach().clone().requires_grad_()
    Newton([xy], lr=0.5, damping=3.0).step(rosenbrock)
    assert_close(xy.detach(), expected, rtol=1e-12, atol=1e-12)


def test_newton_needs_a_closure():
    with pytest.raises(ValueError, match=r"needs a closure that returns the loss"):
        Newton([torch.zeros(2, requires_grad=True)]).step()


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (7, 7), (5, 8)])
def test_minibatch_sgd_is_the_notes_loop(n, batch_size):
    gen = torch.Generator().manual_seed(n)
    x, y = torch.randn(n, 3, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    seen = []

    def loss_fn(xb, yb):
        seen.append(xb)
        return ((xb @ w - yb) ** 2).mean()

    losses = minibatch_sgd(loss_fn, [w], x, y, batch_size=batch_size, epochs=2, lr=0.1, seed=5)
    steps = math.ceil(n / batch_size)
    assert len(losses) == 2 * steps
    for epoch in range(2):  # every example exactly once per epoch
        rows = torch.cat(seen[epoch * steps:(epoch + 1) * steps])
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, x.tolist()))

    # the same batches through torch.optim.SGD
    ref = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([ref], lr=0.1)
    for xb in seen:
        yb = y[[int((x == row).all(1).nonzero()) for row in xb]]
        opt.zero_grad()
        ((xb @ ref - yb) ** 2).mean().backward()
        opt.step()
    assert_close(w.detach(), ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"batch_size": 0}, ValueError, r"batch_size B must be >= 1, got 0"),
    ({"epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
    ({"lr": -0.1}, ValueError, r"minibatch_sgd: lr must be >= 0, got -0.1"),
    ({"targets": torch.zeros(3)}, ValueError, r"same number of examples, got 4 and 3"),
])
def test_minibatch_sgd_bad_arguments(kwargs, exc, match):
    w = torch.zeros(2, requires_grad=True)
    args = {"loss_fn": lambda xb, yb: (xb @ w).sum(), "params": [w], "inputs": torch.zeros(4, 2),
            "targets": torch.zeros(4), "batch_size": 2, "epochs": 1, "lr": 0.1}
    with pytest.raises(exc, match=match):
        minibatch_sgd(**{**args, **kwargs})
