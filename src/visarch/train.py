"""A small, seeded training loop on in-memory tensors, and the history a notebook plots.

:func:`fit` runs any loss over shuffled mini-batches; :func:`train_classifier` is :func:`fit`
with cross-entropy and SGD, the loop of the normalization and optimizer chapters.  Every run with
the same seed, model initialisation and data sees the same mini-batches in the same order and,
because the loop seeds a private copy of torch's global generator, the same dropout masks and
noise drawn inside ``loss_fn``; the caller's random state is left untouched.  Training runs on
the GPU when one is present (``device=None``) and on the CPU otherwise.

The same :func:`fit` scales out without a change to the caller's code: under ``torchrun`` it trains
data-parallel (each process computes the gradient of its share of every mini-batch and
``DistributedDataParallel`` averages them, which is the gradient of the whole mini-batch), with
``autocast_dtype=torch.bfloat16`` it computes in bfloat16, and with ``checkpoint=`` it saves after
every epoch and can resume exactly where it stopped.  :func:`main` is the command line around it,
``python -m visarch.train --model NAME --data digits|cifar10 ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm  # the plain bar: tqdm.auto warns on stderr in notebooks without ipywidgets

from visarch import distributed
from visarch.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from visarch.data import cifar10, digits
from visarch.functional._checks import check_int

__all__ = ["History", "accuracy", "default_device", "fit", "main", "train_classifier"]


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


def _rng_state(device: torch.device) -> dict:
    """This process's private stream (dropout, noise in ``loss_fn``): the CPU's, and the GPU's on one."""
    state = {"cpu": torch.get_rng_state()}  # uint8 [5056]
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())  # the checkpoint loads tensors onto the model's device
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


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
        seed: the seed of the shuffling and, through a private copy of torch's generator, of dropout and
            noise drawn inside ``loss_fn``.
        device: where the model and the batches go (default: :func:`~visarch.train.default_device`).
        progress: show a tqdm bar over the epochs on stdout with the last loss.
        on_epoch_end: ``on_epoch_end(epoch, optimizer)``, called after every epoch (0-based), for instance
            to read the optimizer's state; or ``None``.
        autocast_dtype: ``torch.bfloat16`` runs ``loss_fn`` under ``torch.autocast`` on the CPU or a GPU
            (``torch.float16`` on a GPU only, with a gradient scaler); ``None`` computes in the model's dtype.
        checkpoint: a path; every epoch ends by saving (rank 0 only) the model, optimizer, scheduler, the
            shuffling and dropout generators and the history with
            :func:`~visarch.checkpoint.save_checkpoint`.  Or ``None``.
        resume: continue from ``checkpoint``, if it exists, exactly as if the run had not stopped (same
            ``seed`` and ``batch_size`` required).
        report: ``report(epoch, history)``, called on every process after each epoch's record and
            checkpoint, with the history so far (a command line prints it); or ``None``.

    Returns:
        The :class:`~visarch.train.History`, one entry per epoch (the epochs of a resumed run included).
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
    history, start, rng_states = History(), 0, None
    if resume and Path(checkpoint).exists():
        start, history, rng_states = _resume(checkpoint, model, optimizer, scheduler, scaler, order_gen,
                                             seed=seed, batch_size=batch_size, epochs=epochs, world=world)
    net = model
    if parallel:  # after a resume: DDP copies rank 0's parameters to every process when it wraps them
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed + rank)  # dropout and noise drawn inside loss_fn; rank 0's is a single process's
        if rng_states is not None:
            _set_rng_state(rng_states[rank], device)
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
                _save(checkpoint, model, optimizer, scheduler, scaler, order_gen, history, device,
                      epoch=epoch, seed=seed, batch_size=batch_size)
            if report is not None:
                report(epoch, history)
            if on_epoch_end is not None:
                on_epoch_end(epoch, optimizer)
    return history


def _save(path, model, optimizer, scheduler, scaler, order_gen, history, device, *, epoch, seed, batch_size):
    """Write the checkpoint after ``epoch`` (0-based) on rank 0; every process must call it: it gathers
    each process's dropout stream, and returns only once the file is complete, so that no process can
    read a stale checkpoint (in a resumed run that follows, say)."""
    rng_states = distributed.all_gather_object(_rng_state(device))  # by rank
    if distributed.is_main():
        extra = {"order_generator": order_gen.get_state(), "rng_states": rng_states,
                 "history": {"loss": history.loss, "metrics": history.metrics},
                 "grad_scaler": None if scaler is None else scaler.state_dict(),
                 "seed": seed, "batch_size": batch_size}
        save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch + 1, extra=extra)
    distributed.barrier()


def _resume(path, model, optimizer, scheduler, scaler, order_gen, *, seed, batch_size, epochs, world):
    """Load a checkpoint :func:`_save` wrote: returns (epochs done, History, dropout states by rank)."""
    # the generators fit forks are restored from extra below; the caller's must stay untouched
    loaded = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, restore_rng=False)
    done, extra = loaded["epoch"], loaded["extra"]
    if (extra.get("seed"), extra.get("batch_size")) != (seed, batch_size):
        raise ValueError(f"checkpoint {path} was written with seed={extra.get('seed')} and "
                         f"batch_size={extra.get('batch_size')}; resuming needs the same, got seed={seed} "
                         f"and batch_size={batch_size}")
    if len(extra["rng_states"]) != world:
        raise ValueError(f"checkpoint {path} was written by {len(extra['rng_states'])} processes; resume it "
                         f"with as many, not {world}")
    if done > epochs:
        raise ValueError(f"checkpoint {path} holds {done} epochs, more than epochs={epochs}")
    order_gen.set_state(extra["order_generator"].cpu())
    if scaler is not None and extra["grad_scaler"] is not None:
        scaler.load_state_dict(extra["grad_scaler"])
    history = History(loss=list(extra["history"]["loss"]),
                      metrics={name: list(values) for name, values in extra["history"]["metrics"].items()})
    return done, history, extra["rng_states"]


def _cross_entropy(model, images, labels):
    return F.cross_entropy(model(images), labels)


def train_classifier(model, images, labels, *, epochs, batch_size, lr=None, momentum=0.9, weight_decay=0.0,
                     make_optimizer=None, **fit_options) -> History:
    """:func:`~visarch.train.fit` with cross-entropy on class scores ``[N, K]``, by default with SGD.

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
        **fit_options: the other keyword arguments of :func:`~visarch.train.fit` (``seed``, ``evaluate``,
            ``device``, ``progress``, ...).

    Returns:
        The :class:`~visarch.train.History` of :func:`~visarch.train.fit`.
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


# --- the command line: python -m visarch.train --model NAME --data digits|cifar10 ... ----------------------

DATASETS = ("digits", "cifar10")
OPTIMIZERS = ("sgd", "adamw")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m visarch.train",
        description="Train a model of the registry (visarch.models.list_models()) on the digits or CIFAR-10 "
                    "with cross-entropy. Under torchrun the run is data-parallel. Writes metrics.jsonl (one JSON "
                    "object per epoch), checkpoint.pt and curve.png to --out.")
    parser.add_argument("--model", required=True, help="a registered model name, e.g. cvt_small for the digits")
    parser.add_argument("--data", required=True, help="digits (1 x 8 x 8, from scikit-learn) or cifar10 (3 x 32 x 32)")
    parser.add_argument("--data-root", help="for cifar10: the folder cifar-10-batches-py or the one holding it")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="the global mini-batch; under torchrun each of the W processes takes batch-size / W rows")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate, > 0")
    parser.add_argument("--optimizer", default="sgd", help="sgd (with --momentum) or adamw")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0, help="initialisation, shuffling and dropout")
    parser.add_argument("--limit", type=int, help="train on the first LIMIT training images only (a quick check)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the GPU when present, else the CPU)")
    parser.add_argument("--out", required=True, help="folder for metrics.jsonl, checkpoint.pt and curve.png")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --out/checkpoint.pt if it exists (else a run starts afresh, replacing it)")
    parser.add_argument("--bf16", action="store_true", help="forward pass and loss under bfloat16 autocast")
    parser.add_argument("--progress", action="store_true", help="a tqdm bar over the epochs")
    return parser


def _check_arguments(args) -> None:
    """Refuse bad values before any data is read or model built."""
    check_int(args.epochs, "epochs", low=1)
    if not args.lr > 0:  # also refuses nan
        raise ValueError(f"lr must be > 0, got {args.lr}")
    if args.data not in DATASETS:
        raise ValueError(f"unknown data set {args.data!r}; known: {', '.join(DATASETS)}")
    if args.data == "cifar10" and args.data_root is None:
        raise ValueError("--data cifar10 needs --data-root, the folder holding cifar-10-batches-py")
    if args.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {args.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if args.limit is not None:
        check_int(args.limit, "limit", low=1)


def _load_data(args):
    """((train images, train labels), (test images, test labels)): [N, C, H, W] float32 in [0, 1], [N] int64."""
    if args.data == "digits":
        train, test = digits("train"), digits("test")
    else:
        train, test = cifar10(args.data_root, "train"), cifar10(args.data_root, "test")
    if args.limit is not None:
        train = tuple(t[:args.limit] for t in train)
    return train, test


def _build_model(name: str, images: torch.Tensor, num_classes: int, seed: int) -> nn.Module:
    """``visarch.models.create(name)`` for these images: the config's ``in_channels``, ``num_classes`` and
    ``image_size``, where it has them, are set from the data (a model that cannot take such images says so
    at its first forward pass)."""
    from visarch import models  # the registry imports every architecture: only the command line needs it

    fields = {f.name for f in dataclasses.fields(models.get_config(name))}  # unknown names list the known ones
    wanted = {"in_channels": images.shape[1], "num_classes": num_classes, "image_size": images.shape[-1]}
    with torch.random.fork_rng():  # a seeded initialisation that leaves the caller's generator alone
        torch.manual_seed(seed)
        return models.create(name, **{key: value for key, value in wanted.items() if key in fields})


def _write_metrics(path: Path, history: History) -> None:
    """metrics.jsonl from the whole history, replaced atomically, so it always matches the checkpoint
    (a resumed run restores the history, times included, from there)."""
    lines = [json.dumps({"epoch": epoch + 1, "loss": loss,
                         **{name: values[epoch] for name, values in history.metrics.items()}})
             for epoch, loss in enumerate(history.loss)]
    atomic_write(path, lambda file: file.write("".join(line + "\n" for line in lines).encode()))


def _plot_curve(path: Path, history: History, title: str) -> None:
    """The training loss (log scale) and the test accuracy against the epoch, as a PNG."""
    from matplotlib.figure import Figure  # Agg, without pyplot: no global backend switched, no window opened
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 3.2))
    epochs = range(1, len(history.loss) + 1)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, history.loss, marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", yscale="log")
    acc_ax.plot(epochs, history.metrics["test_accuracy"], marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> History:
    """The command line ``python -m visarch.train``; returns the run's history.

    ``argv`` is the list of arguments (default ``sys.argv[1:]``); ``--help`` lists them.
    ``metrics.jsonl`` holds one object per epoch: ``epoch`` (from 1), ``loss`` (mean training loss),
    ``test_accuracy`` and ``seconds`` (wall time from the end of the previous epoch's evaluation, or
    from the start, to the end of this epoch's training).  Under ``torchrun``, rank 0 writes the files
    and prints."""
    args = _parser().parse_args(argv)
    _check_arguments(args)
    (images, labels), test = _load_data(args)
    model = _build_model(args.model, images, num_classes=10, seed=args.seed)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                    weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # by every process under torchrun: exist_ok makes that safe
    clock = [time.perf_counter()]

    def evaluate(net):
        seconds = time.perf_counter() - clock[0]
        test_accuracy = accuracy(net, *test)
        clock[0] = time.perf_counter()
        return {"test_accuracy": test_accuracy, "seconds": seconds}

    def report(epoch, history):
        if distributed.is_main():
            _write_metrics(out / "metrics.jsonl", history)
            tqdm.write(f"epoch {epoch + 1}/{args.epochs}: loss {history.loss[-1]:.4f}, test accuracy "
                       f"{history.metrics['test_accuracy'][-1]:.4f}, {history.metrics['seconds'][-1]:.1f} s",
                       file=sys.stdout)

    history = fit(model, _cross_entropy, (images, labels), epochs=args.epochs, batch_size=args.batch_size,
                  optimizer=optimizer, evaluate=evaluate, seed=args.seed, device=args.device, progress=args.progress,
                  autocast_dtype=torch.bfloat16 if args.bf16 else None, checkpoint=out / "checkpoint.pt",
                  resume=args.resume, report=report)
    if distributed.is_main():
        _plot_curve(out / "curve.png", history, f"{args.model} on {args.data}")
    distributed.cleanup()
    return history


if __name__ == "__main__":
    main()
