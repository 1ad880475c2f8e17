"""The training loop: a small, seeded loop on in-memory tensors, and the history a notebook plots.

:func:`fit` runs any loss over shuffled mini-batches; :func:`train_classifier` is :func:`fit`
with cross-entropy and SGD, the loop of the normalization and optimizer chapters.  Every run with
the same seed, model initialisation and data sees the same mini-batches in the same order and,
because the loop draws from seeded private copies of the global generators (torch's, Python's
``random``, numpy's), the same dropout masks and noise drawn inside ``loss_fn``; the caller's random
state is left untouched.  Training runs on the GPU when one is present (``device=None``) and on the
CPU otherwise.

The same :func:`fit` scales out without a change to the caller's code: under ``torchrun`` it trains
data-parallel (each process computes the gradient of its share of every mini-batch and
``DistributedDataParallel`` averages them, which is the gradient of the whole mini-batch), with
``autocast_dtype=torch.bfloat16`` it computes in bfloat16, and with ``checkpoint=`` it saves after
every epoch and can resume exactly where it stopped.  What a checkpoint holds, and how the random
state is forked, captured and restored, is :mod:`visarch.checkpoint`'s business
(:func:`~visarch.checkpoint.save_run`, :func:`~visarch.checkpoint.load_run`,
:func:`~visarch.checkpoint.fork_rng`); the loop gathers every process's state and calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm  # the plain bar: tqdm.auto warns on stderr in notebooks without ipywidgets

from visarch import distributed
from visarch.checkpoint import capture_rng_state, fork_rng, load_run, save_run
from visarch.checks import check_int

__all__ = ["History", "accuracy", "default_device", "fit", "train_classifier"]


@dataclass
class History:
    """What a run recorded, one entry per epoch, ready for :func:`visarch.plot.loss_curves`."""

    loss: list[float] = field(default_factory=list)  #: mean training loss over the epoch's steps
    metrics: dict[str, list[float]] = field(default_factory=dict)  #: what ``evaluate`` returned

    def record(self, loss: float, metrics: dict[str, float]) -> None:
        """Append one epoch's mean loss and its metrics (a dict of named numbers)."""
        self.loss.append(loss)
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append(float(value))


def default_device() -> torch.device:
    """The first CUDA GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _run_device(device) -> torch.device:
    """``device`` (default: :func:`default_device`); under ``torchrun`` a bare ``cuda`` means this
    process's GPU, ``cuda:LOCAL_RANK``."""
    device = default_device() if device is None else torch.device(device)
    if device.type == "cuda" and device.index is None and distributed.in_torchrun():
        device = torch.device("cuda", distributed.local_rank())
    return device


def _autocast(device: torch.device, dtype):
    """The context the forward pass and loss run in, and the gradient scaler float16 needs (or None)."""
    if dtype is None:
        return contextlib.nullcontext, None
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"autocast_dtype must be a torch.dtype such as torch.bfloat16, got {type(dtype).__name__}")
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"autocast_dtype must be torch.bfloat16 (CPU or CUDA) or torch.float16 (CUDA only), "
                         f"got {dtype}")
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError(f"autocast_dtype=torch.float16 needs a CUDA device, got {device}: on the CPU use "
                         "torch.bfloat16, which has float32's range and needs no loss scaling")
    # float16's small range lets gradients underflow to zero; the scaler multiplies the loss before
    # backward and divides the gradients again before the step.  bfloat16 needs no such help.
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def fit(model, loss_fn, tensors, *, epochs, batch_size, optimizer, scheduler=None, evaluate=None, seed=0,
        device=None, progress=False, on_epoch_end=None, autocast_dtype=None, checkpoint=None, resume=False,
        report=None) -> History:
    """Minimise ``loss_fn(model, *batch)`` over shuffled mini-batches of ``tensors``.

    Each step slices the same rows of all the tensors, moves them to ``device`` and calls
    ``loss_fn``.  A last batch smaller than ``batch_size`` is dropped, so every step sees exactly
    ``batch_size`` examples (batch norm's statistics need a known batch size).

    Under ``torchrun`` (see :mod:`visarch.distributed`) the same call trains data-parallel: the
    process group is joined (gloo on the CPU, NCCL on GPUs), the model is wrapped in
    ``DistributedDataParallel`` (``loss_fn`` then receives the wrapper and must call it, since its
    forward pass is what averages the gradients), and each of the W processes takes every W-th row of
    each global mini-batch of ``batch_size`` rows, which must be divisible by W.  Every process
    shuffles with the same seed, so the global mini-batches are those of a single-process run, and
    the recorded loss is the mean over the processes: the history is the same on every process, and
    that of one process up to rounding.  Process r draws its dropout masks from ``seed + r``, and batch
    norm normalises over each process's share (``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` makes
    it use the whole mini-batch); so models with either match a single process in distribution only.
    Call :func:`~visarch.distributed.cleanup` at the end of the script.

    Args:
        model: the ``torch.nn.Module``; it is moved to ``device`` and trained in place.
        loss_fn: ``loss_fn(model, *batch)`` returns the scalar loss of one mini-batch, ``batch`` holding
            one slice of each tensor, on ``device``.
        tensors: a tuple of tensors sharing their first dimension N (images ``[N, C, H, W]`` and labels
            ``[N]``, say).
        epochs: the number of passes over the data.
        batch_size: B, the examples of one step (over all processes), at most N.
        optimizer: built on ``model.parameters()`` (moving the model keeps those parameter objects).
        scheduler: a learning-rate scheduler that steps after every optimizer step, or ``None``.
        evaluate: ``evaluate(model)`` returns a dict of named numbers (a test accuracy, say), called after
            every epoch and recorded in the history; or ``None``.
        seed: an int >= 0, the seed of the shuffling and, through private copies of the global generators
            (:func:`~visarch.checkpoint.fork_rng`: torch's, Python's ``random``, numpy's), of dropout and
            noise drawn inside ``loss_fn``; the caller's generators are as they were afterwards.
        device: where the model and the batches go (default: :func:`~visarch.train.loop.default_device`).
        progress: show a tqdm bar over the epochs on stdout with the last loss.
        on_epoch_end: ``on_epoch_end(epoch, optimizer)``, called after every epoch (0-based), for instance
            to read the optimizer's state; or ``None``.
        autocast_dtype: ``torch.bfloat16`` runs ``loss_fn`` under ``torch.autocast`` on the CPU or a GPU
            (``torch.float16`` on a GPU only, with a gradient scaler); ``None`` computes in the model's dtype.
        checkpoint: a path; every epoch ends by saving (rank 0 only) the model, optimizer, scheduler,
            gradient scaler, the shuffling generator, every process's random state and the history with
            :func:`~visarch.checkpoint.save_run`.  Or ``None``.
        resume: continue from ``checkpoint``, if it exists, exactly as if the run had not stopped
            (:func:`~visarch.checkpoint.load_run`: same ``seed``, ``batch_size`` and number of processes
            required).
        report: ``report(epoch, history)``, called on every process after each epoch's record and
            checkpoint, with the history so far (a command line prints it); or ``None``.

    Returns:
        The :class:`~visarch.train.loop.History`, one entry per epoch (the epochs of a resumed run included).
    """
    check_int(epochs, "epochs", where="fit", ge=1)
    check_int(batch_size, "batch_size", where="fit", ge=1)
    check_int(seed, "seed", where="fit", ge=0)
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError("tensors must be a non-empty tuple of tensors")
    lengths = [t.shape[0] for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"the tensors must have the same length, got {' and '.join(map(str, lengths))}")
    if batch_size > lengths[0]:
        raise ValueError(f"batch_size={batch_size} exceeds the {lengths[0]} training examples")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path to resume from")
    device = _run_device(device)
    autocast, scaler = _autocast(device, autocast_dtype)
    parallel = distributed.init_from_env(device)
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} is not divisible by the world size {world} "
                         "(each process takes an equal share of every mini-batch)")
    model.to(device)
    order_gen = torch.Generator().manual_seed(seed)  # shuffling stays on the CPU: the same order everywhere
    steps = lengths[0] // batch_size
    history, start = History(), 0
    # dropout and noise drawn inside loss_fn come from private generators seeded with seed + rank (rank 0's
    # are a single process's); a resumed run replaces them with the states this process saved
    with fork_rng(seed=seed + rank):
        if resume and Path(checkpoint).exists():
            done = load_run(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, grad_scaler=scaler,
                            order_generator=order_gen, seed=seed, batch_size=batch_size, epochs=epochs, rank=rank,
                            world_size=world)
            start, history = done["epoch"], History(**done["history"])
        net = model
        if parallel:  # after a resume: DDP copies rank 0's parameters to every process when it wraps them
            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        bar = tqdm(range(start, epochs), initial=start, total=epochs, disable=not progress or not distributed.is_main(),
                   desc="epochs", file=sys.stdout)
        for epoch in bar:
            net.train()
            order = torch.randperm(lengths[0], generator=order_gen)
            total = 0.0
            for step in range(steps):
                # Process r takes rows r, r + W, r + 2W, ... of the global batch.  These are the rows that
                # torch.utils.data.DistributedSampler (interleaved shards, indices[rank::num_replicas]) over
                # this permutation, read in local batches of batch_size / W, gives process r at this step.
                rows = order[step * batch_size:(step + 1) * batch_size][rank::world]  # [batch_size / W]
                with autocast():
                    loss = loss_fn(net, *(t[rows].to(device) for t in tensors))
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if scheduler is not None:
                    scheduler.step()
                total += loss.item()
            distributed.broadcast_buffers(model)  # every process evaluates (and saves) rank 0's model
            history.record(distributed.all_reduce_mean(total) / steps,
                           evaluate(model) if evaluate is not None else {})
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
            if checkpoint is not None:
                _save(checkpoint, model, optimizer, scheduler, scaler, order_gen, history, epoch=epoch, seed=seed,
                      batch_size=batch_size)
            if report is not None:
                report(epoch, history)
            if on_epoch_end is not None:
                on_epoch_end(epoch, optimizer)
    return history


def _save(path, model, optimizer, scheduler, scaler, order_gen, history, *, epoch, seed, batch_size):
    """Write the checkpoint after ``epoch`` (0-based) on rank 0; every process must call it: it gathers
    each process's random state, and returns only once the file is complete, so that no process can
    read a stale checkpoint (in a resumed run that follows, say)."""
    rng_states = distributed.all_gather_object(capture_rng_state())  # by rank
    if distributed.is_main():
        save_run(path, model=model, optimizer=optimizer, scheduler=scheduler, grad_scaler=scaler, epoch=epoch + 1,
                 history=dataclasses.asdict(history), rng_states=rng_states, order_generator=order_gen, seed=seed,
                 batch_size=batch_size)
    distributed.barrier()


def _cross_entropy(model, images, labels):
    return F.cross_entropy(model(images), labels)


def train_classifier(model, images, labels, *, epochs, batch_size, lr=None, momentum=0.9, weight_decay=0.0,
                     make_optimizer=None, **fit_options) -> History:
    """:func:`~visarch.train.loop.fit` with cross-entropy on class scores ``[N, K]``, by default with SGD.

    Args:
        model: maps images ``[B, C, H, W]`` to class scores ``[B, K]``.
        images: ``[N, C, H, W]``.
        labels: ``[N]`` int64 class indices.
        epochs: the number of passes over the data.
        batch_size: B, the examples per step.
        lr: the learning rate of ``torch.optim.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)``.
        momentum: SGD's momentum.
        weight_decay: SGD's weight decay.
        make_optimizer: ``make_optimizer(model.parameters())`` builds the optimizer instead of SGD; then
            ``lr``, ``momentum`` and ``weight_decay`` belong to it and must not be passed here.
        **fit_options: the other keyword arguments of :func:`~visarch.train.loop.fit` (``seed``, ``evaluate``,
            ``device``, ``progress``, ...).

    Returns:
        The :class:`~visarch.train.loop.History` of :func:`~visarch.train.loop.fit`.
    """
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
    """Fraction of ``images`` whose highest-scoring class is the label, in evaluation mode (on the model's device).

    Args:
        model: maps images ``[B, C, H, W]`` to class scores ``[B, K]``; it is put in evaluation mode.
        images: ``[N, C, H, W]``.
        labels: ``[N]`` class indices.
        batch_size: the images scored at once.

    Returns:
        The accuracy, a float in [0, 1].
    """
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a parameter-free model runs on the CPU
    correct = sum(int((model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                       == labels[i:i + batch_size]).sum())
                  for i in range(0, images.shape[0], batch_size))
    return correct / images.shape[0]
