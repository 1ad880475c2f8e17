r"""The notes' mini-batch SGD loop, as a function a reader can run (Optimizers chapter).

One epoch shuffles the N training examples, cuts them into :math:`U = \lceil N / B \rceil`
consecutive mini-batches of B examples (the last one smaller when B does not divide N), and
takes one plain gradient step per mini-batch, :math:`\theta \leftarrow \theta - \eta \nabla L`.
With 0-based batch index u the batches are examples :math:`uB, \dots, \min((u+1)B, N) - 1` of
the shuffled order, for :math:`u = 0, \dots, U - 1`.
"""

from __future__ import annotations

import math

import torch

from visarch.checks import check_int, check_real

__all__ = ["minibatch_sgd"]


def minibatch_sgd(loss_fn, params, inputs, targets, *, batch_size, epochs, lr, seed=0):
    """Run the notes' loop; return the loss of every step (``epochs * ceil(N / batch_size)`` of them).

    Checked against a hand-written loop with ``torch.optim.SGD`` in ``tests/test_newton_minibatch.py``.

    Args:
        loss_fn: ``loss_fn(x, y)`` computes the scalar loss of a mini-batch from the current ``params``.
        params: a list of tensors that require gradients; they are updated in place.
        inputs: ``[N, ...]``, the training examples.
        targets: ``[N, ...]``, their targets.
        batch_size: B, the examples per mini-batch.
        epochs: the number of passes over the data.
        lr: the learning rate.
        seed: the seed of the shuffling generator.

    Returns:
        The list of the ``epochs * ceil(N / B)`` mini-batch losses, as floats, in order.
    """
    check_int(batch_size, "batch_size B", where="minibatch_sgd", ge=1)
    check_int(epochs, "epochs", where="minibatch_sgd", ge=1)
    check_real(lr, "lr", where="minibatch_sgd", ge=0)
    n = inputs.shape[0]
    if targets.shape[0] != n:
        raise ValueError(f"inputs and targets must have the same number of examples, got {n} and {targets.shape[0]}")
    gen = torch.Generator().manual_seed(seed)
    batches = math.ceil(n / batch_size)  # U
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)  # 1. shuffle
        for u in range(batches):  # 2. u = 0, ..., U - 1
            chosen = order[u * batch_size:(u + 1) * batch_size]
            loss = loss_fn(inputs[chosen], targets[chosen])  # a) predict and score
            grads = torch.autograd.grad(loss, params)  # b) gradient
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(lr * g)  # c) theta - eta grad
            losses.append(loss.item())
    return losses
