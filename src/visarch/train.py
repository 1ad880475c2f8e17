"""A small, seeded training loop for classifiers on in-memory tensors (CPU by default).

Every run with the same seed, model initialisation and data sees the same mini-batches in
the same order, so results printed in the book are reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm  # the plain bar: tqdm.auto warns on stderr in notebooks without ipywidgets

from visarch.functional._checks import check_int

__all__ = ["accuracy", "train_classifier"]


def train_classifier(model, images, labels, *, epochs, batch_size, lr=None, momentum=0.9, weight_decay=0.0,
                     make_optimizer=None, seed=0, progress=False, on_epoch_end=None):
    """Minimise cross-entropy over shuffled mini-batches; return each epoch's mean loss.

    The optimizer is ``torch.optim.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)``,
    or ``make_optimizer(model.parameters())`` when that is given (then ``lr``, ``momentum`` and
    ``weight_decay`` belong to it and must not be passed here).  A last batch smaller than
    ``batch_size`` is dropped, so every step sees exactly ``batch_size`` examples (batch norm's
    statistics need a known batch size).  ``on_epoch_end(epoch, optimizer)``, if given, is called
    after every epoch (0-based), for instance to read the optimizer's state as training goes.
    """
    check_int(epochs, "epochs", low=1)
    check_int(batch_size, "batch_size", low=1)
    if make_optimizer is None and lr is None:
        raise ValueError("lr is required unless make_optimizer is given")
    if make_optimizer is not None and (lr is not None or momentum != 0.9 or weight_decay != 0.0):
        raise ValueError("with make_optimizer, give lr, momentum and weight_decay to the optimizer it builds")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels must have the same length, got {images.shape[0]} and "
                         f"{labels.shape[0]}")
    if batch_size > images.shape[0]:
        raise ValueError(f"batch_size={batch_size} exceeds the {images.shape[0]} training examples")
    gen = torch.Generator().manual_seed(seed)
    if make_optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        optimizer = make_optimizer(model.parameters())
    steps = images.shape[0] // batch_size
    losses = []
    model.train()
    for _ in tqdm(range(epochs), disable=not progress, desc="epochs"):
        order = torch.randperm(images.shape[0], generator=gen)
        total = 0.0
        for step in range(steps):
            batch = order[step * batch_size:(step + 1) * batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / steps)
        if on_epoch_end is not None:
            on_epoch_end(len(losses) - 1, optimizer)
    return losses


@torch.no_grad()
def accuracy(model, images, labels, *, batch_size=512):
    """Fraction of ``images`` whose highest-scoring class is the label, in evaluation mode."""
    model.eval()
    correct = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, images.shape[0], batch_size))
    return correct / images.shape[0]
