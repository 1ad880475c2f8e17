"""A small, seeded training loop on in-memory tensors, and the history a notebook plots.

:func:`fit` runs any loss over shuffled mini-batches; :func:`train_classifier` is :func:`fit`
with cross-entropy and SGD, the loop of the normalization and optimizer chapters.  Every run with
the same seed, model initialisation and data sees the same mini-batches in the same order and,
because the loop seeds a private copy of torch's global generator, the same dropout masks and
noise drawn inside ``loss_fn``; the caller's random state is left untouched.  Training runs on
the GPU when one is present (``device=None``) and on the CPU otherwise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm  # the plain bar: tqdm.auto warns on stderr in notebooks without ipywidgets

from visarch.functional._checks import check_int

__all__ = ["History", "accuracy", "default_device", "fit", "train_classifier"]


@dataclass
class History:
    """What a run recorded, one entry per epoch, ready for :func:`visarch.plot.loss_curves`."""

    loss: list[float] = field(default_factory=list)  # mean training loss over the epoch's steps
    metrics: dict[str, list[float]] = field(default_factory=dict)  # what ``evaluate`` returned

    def record(self, loss: float, metrics: dict[str, float]) -> None:
        self.loss.append(loss)
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append(float(value))


def default_device() -> torch.device:
    """The first CUDA GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit(model, loss_fn, tensors, *, epochs, batch_size, optimizer, scheduler=None, evaluate=None, seed=0,
        device=None, progress=False, on_epoch_end=None) -> History:
    """Minimise ``loss_fn(model, *batch)`` over shuffled mini-batches of ``tensors``.

    ``tensors`` is a tuple of tensors sharing their first dimension (images and labels, say); each
    step slices the same rows of all of them, moves them to ``device`` (default:
    :func:`default_device`) and calls ``loss_fn``, which returns a scalar loss.  ``optimizer`` is
    built on ``model.parameters()`` (moving the model keeps those parameter objects);
    ``scheduler``, if given, steps after every optimizer step.  A last batch smaller than
    ``batch_size`` is dropped, so every step sees exactly ``batch_size`` examples (batch norm's
    statistics need a known batch size).  After every epoch, ``evaluate(model)``, if given,
    returns a dict of named numbers (a test accuracy, say) that the history records, and
    ``on_epoch_end(epoch, optimizer)`` is called (0-based), for instance to read the optimizer's
    state.  ``progress=True`` shows a tqdm bar over the epochs on stdout with the last loss.
    """
    check_int(epochs, "epochs", low=1)
    check_int(batch_size, "batch_size", low=1)
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError("tensors must be a non-empty tuple of tensors")
    lengths = [t.shape[0] for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"the tensors must have the same length, got {' and '.join(map(str, lengths))}")
    if batch_size > lengths[0]:
        raise ValueError(f"batch_size={batch_size} exceeds the {lengths[0]} training examples")
    device = default_device() if device is None else torch.device(device)
    model.to(device)
    order_gen = torch.Generator().manual_seed(seed)  # shuffling stays on the CPU: the same order everywhere
    steps = lengths[0] // batch_size
    history = History()
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)  # dropout and noise drawn inside loss_fn
        bar = tqdm(range(epochs), disable=not progress, desc="epochs", file=sys.stdout)
        for epoch in bar:
            model.train()
            order = torch.randperm(lengths[0], generator=order_gen)
            total = 0.0
            for step in range(steps):
                rows = order[step * batch_size:(step + 1) * batch_size]
                loss = loss_fn(model, *(t[rows].to(device) for t in tensors))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.item()
            history.record(total / steps, evaluate(model) if evaluate is not None else {})
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, optimizer)
    return history


def _cross_entropy(model, images, labels):
    return F.cross_entropy(model(images), labels)


def train_classifier(model, images, labels, *, epochs, batch_size, lr=None, momentum=0.9, weight_decay=0.0,
                     make_optimizer=None, **fit_options) -> History:
    """:func:`fit` with cross-entropy; the optimizer is ``torch.optim.SGD(lr=lr, momentum=momentum,
    weight_decay=weight_decay)``, or ``make_optimizer(model.parameters())`` when that is given (then
    ``lr``, ``momentum`` and ``weight_decay`` belong to it and must not be passed here).
    ``fit_options`` are :func:`fit`'s (``seed``, ``evaluate``, ``device``, ``progress``, ...)."""
    if make_optimizer is None and lr is None:
        raise ValueError("lr is required unless make_optimizer is given")
    if make_optimizer is not None and (lr is not None or momentum != 0.9 or weight_decay != 0.0):
        raise ValueError("with make_optimizer, give lr, momentum and weight_decay to the optimizer it builds")
    if make_optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        optimizer = make_optimizer(model.parameters())
    return fit(model, _cross_entropy, (images, labels), epochs=epochs, batch_size=batch_size,
               optimizer=optimizer, **fit_options)


@torch.no_grad()
def accuracy(model, images, labels, *, batch_size=512):
    """Fraction of ``images`` whose highest-scoring class is the label, in evaluation mode (on the
    model's device)."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a parameter-free model runs on the CPU
    correct = sum(int((model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                       == labels[i:i + batch_size]).sum())
                  for i in range(0, images.shape[0], batch_size))
    return correct / images.shape[0]
