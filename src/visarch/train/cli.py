"""The command line ``python -m visarch.train --model NAME --data digits|cifar10 ...``.

:func:`main` trains a model of the registry (:func:`visarch.models.registry.list_models`) on the digits or
CIFAR-10 with :func:`~visarch.train.loop.train_classifier` and writes, to ``--out``, one JSON line of
metrics per epoch (``metrics.jsonl``), the resumable checkpoint the loop saves after every epoch
(``checkpoint.pt``, see :func:`~visarch.checkpoint.save_run`; ``--resume`` continues it) and the
training curve (``curve.png``, :func:`~visarch.train.curve.training_curve`).  Under ``torchrun`` the
run is data-parallel and rank 0 writes the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from visarch import distributed
from visarch.checkpoint import atomic_write
from visarch.checks import check_int, check_real
from visarch.data import cifar10, digits
from visarch.train.curve import training_curve
from visarch.train.loop import History, accuracy, train_classifier

__all__ = ["main"]

PROG = "python -m visarch.train"  # how the command line names itself, in --help and in its errors
DATASETS = ("digits", "cifar10")
OPTIMIZERS = ("sgd", "adamw")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
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
    check_int(args.epochs, "--epochs", where=PROG, ge=1)
    check_int(args.seed, "--seed", where=PROG, ge=0)
    check_real(args.lr, "--lr", where=PROG, gt=0)
    if args.data not in DATASETS:
        raise ValueError(f"unknown data set {args.data!r}; known: {', '.join(DATASETS)}")
    if args.data == "cifar10" and args.data_root is None:
        raise ValueError("--data cifar10 needs --data-root, the folder holding cifar-10-batches-py")
    if args.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {args.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if args.limit is not None:
        check_int(args.limit, "--limit", where=PROG, ge=1)


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


def _optimizer(args, parameters) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over ``parameters``, with the learning rate and weight decay of ``args``."""
    if args.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)


def _write_metrics(path: Path, history: History) -> None:
    """metrics.jsonl from the whole history, replaced atomically, so it always matches the checkpoint
    (a resumed run restores the history, times included, from there)."""
    lines = [json.dumps({"epoch": epoch + 1, "loss": loss,
                         **{name: values[epoch] for name, values in history.metrics.items()}})
             for epoch, loss in enumerate(history.loss)]
    atomic_write(path, lambda file: file.write("".join(line + "\n" for line in lines).encode()))


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

    history = train_classifier(model, images, labels, epochs=args.epochs, batch_size=args.batch_size,
                               make_optimizer=lambda parameters: _optimizer(args, parameters), evaluate=evaluate,
                               seed=args.seed, device=args.device, progress=args.progress,
                               autocast_dtype=torch.bfloat16 if args.bf16 else None, checkpoint=out / "checkpoint.pt",
                               resume=args.resume, report=report)
    if distributed.is_main():
        training_curve(history, title=f"{args.model} on {args.data}").savefig(out / "curve.png", dpi=100)
    distributed.cleanup()
    return history
