"""Checkpoints that resume a run exactly, and that a crash or a stray file cannot corrupt.

A training run can continue after an interruption as if it had never stopped only if everything that
decides the next step is saved: the model's parameters and buffers, the optimizer's state (momentum,
Adam's moments, the step count), the learning-rate scheduler's position, the epoch, and the state of
every random generator that draws dropout masks, noise or mini-batch orders (torch's on the CPU and
on each GPU, Python's ``random``, numpy's global one).  :func:`save_checkpoint` writes all of it,
plus ``extra`` (plain data the caller needs, such as a private ``torch.Generator``'s state), as one
dict; :func:`load_checkpoint` puts it back.

A training loop needs a little more, and this module owns all of it: :func:`save_run` and
:func:`load_run` save and resume a whole run (the above, plus a gradient scaler, the generator that
orders the mini-batches, the random state of every process by rank, the history of the finished
epochs, and the seed and batch size that a resuming run must share), and :func:`fork_rng` lets a
loop draw from seeded private copies of every global generator while the caller's are kept.

Two failures are guarded against.

* A crash while saving must not destroy the previous checkpoint: the file is written under a
  fresh temporary name in the same folder, flushed and fsynced, and only then renamed over the old one
  with ``os.replace``, which is atomic on POSIX and Windows, so the path always holds either the old
  complete checkpoint or the new complete one.  A failed save removes its temporary file.
* A file that is not a checkpoint must not run code or half-load: it is read with
  ``torch.load(weights_only=True)``, which refuses pickled objects other than tensors and plain
  data, and checked (the zip archive's CRCs, a format marker, the model's parameter names and
  shapes, the optimizer's and scheduler's types) before anything is loaded into the objects passed
  in.  Every failure is a ``ValueError`` naming the path and what is wrong; a missing file raises
  :class:`CheckpointNotFoundError`, which is both a ``ValueError`` and a ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import random
import secrets
import shutil
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from visarch.checks import check_int

__all__ = ["FORMAT", "VERSION", "CheckpointNotFoundError", "atomic_write", "capture_rng_state", "fork_rng",
           "load_checkpoint", "load_run", "restore_rng_state", "save_checkpoint", "save_run"]

FORMAT = "visarch.checkpoint"  #: the marker that tells a checkpoint from any other .pt file
VERSION = 1  #: bumped when the layout of the saved dict changes
_SHOWN = 4  # offending names listed in an error message, the rest counted


class CheckpointNotFoundError(FileNotFoundError, ValueError):
    """The checkpoint file does not exist (catchable as ``FileNotFoundError`` or ``ValueError``)."""


# --- random generators ---------------------------------------------------------------------------------

def capture_rng_state() -> dict:
    """The states of every global random generator, as plain data that ``torch.load(weights_only=True)`` reads back.

    Returns:
        A dict with the states of torch's CPU generator (``"torch"``), of every CUDA device's, when CUDA is
        available (``"cuda"``, a list), of Python's ``random`` (``"python"``) and of numpy's global
        generator (``"numpy"``).
    """
    # the legacy global generator is the one to save: it is what np.random.rand and friends draw from
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),  # uint8 [5056]
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],  # uint8 tensors, one a device
        "python": random.getstate(),  # (version, 625 ints, gauss_next)
        # numpy's key is uint32 [624]; int64 holds it exactly and torch reads it on every version
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
    }


def _check_rng_state(state) -> None:
    """Raise ValueError unless ``state`` has the layout :func:`capture_rng_state` writes (before anything
    is restored, so a bad state changes no generator)."""
    ok = (isinstance(state, dict) and {"torch", "cuda", "python", "numpy"} <= state.keys()
          and isinstance(state["torch"], torch.Tensor) and state["torch"].dtype == torch.uint8
          and state["torch"].shape == torch.get_rng_state().shape
          and isinstance(state["cuda"], (list, tuple))
          and all(isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in state["cuda"])
          and isinstance(state["python"], tuple) and len(state["python"]) == 3
          and isinstance(state["python"][1], tuple) and len(state["python"][1]) == 625
          and isinstance(state["numpy"], dict)
          and {"kind", "key", "pos", "has_gauss", "cached_gaussian"} <= state["numpy"].keys()
          and state["numpy"]["kind"] == "MT19937"
          and isinstance(state["numpy"]["key"], torch.Tensor) and state["numpy"]["key"].shape == (624,))
    if not ok:
        raise ValueError("the random-generator state does not have the layout capture_rng_state() writes")


def restore_rng_state(state: dict) -> None:
    """Set the generators to a state from :func:`~visarch.checkpoint.capture_rng_state`.

    CUDA states are restored on the devices present (none on a CPU-only machine, whose dropout draws
    from the CPU generator).  A state of another layout raises ``ValueError`` before any generator changes.

    Args:
        state: the dict :func:`~visarch.checkpoint.capture_rng_state` returned.
    """
    _check_rng_state(state)
    torch.set_rng_state(state["torch"].cpu())  # a map_location may have moved it; the setter wants the CPU
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["key"].cpu().numpy().astype(np.uint32),  # noqa: NPY002
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))

@contextlib.contextmanager
def fork_rng(*, seed: int | None = None):
    """Run a block on private copies of every global generator; afterwards the caller's states are back.

    :func:`torch.random.fork_rng` for all the generators :func:`~visarch.checkpoint.capture_rng_state`
    saves (torch's on the CPU and on every CUDA device, Python's ``random``, numpy's global one): their
    states are captured on entry and restored on exit, however the block ends.  With ``seed``, the block
    starts from seeded states: ``torch.manual_seed(seed)`` (the CPU and every GPU), ``random.seed(seed)``
    and ``numpy.random.seed(seed mod 2**32)`` (the range numpy accepts).

    Args:
        seed: an int >= 0, or ``None`` to let the block continue from the caller's states.

    Example:
        ``with fork_rng(seed=3): mask = torch.rand(4) < 0.5`` draws the same mask on every call and leaves
        ``torch.rand`` outside the block where it was.
    """
    if seed is not None:
        check_int(seed, "seed", where="fork_rng", ge=0)
    state = capture_rng_state()
    try:
        if seed is not None:
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)  # noqa: NPY002  (the global generator is the one being forked)
        yield
    finally:
        restore_rng_state(state)


# --- saving --------------------------------------------------------------------------------------------

# What torch.load(weights_only=True) reads back.  Exact types, not isinstance: numpy's float64 subclasses
# float, yet the weights-only unpickler refuses it.
_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)
_CONTAINERS = (dict, OrderedDict, list, tuple, torch.Size)


def _check_plain(value, where: str) -> None:
    """Raise TypeError naming the first entry under ``where`` that a weights-only load would refuse, so a
    save never writes a file that cannot be loaded."""
    if isinstance(value, torch.Tensor) or type(value) in _LEAVES:
        return
    if type(value) not in _CONTAINERS:
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which "
                        "torch.load(weights_only=True) cannot read back; use ints, floats, strings, tensors, "
                        "lists and dicts (for a numpy number, float() or int() it)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"a key of {where}")
            _check_plain(item, f"{where}[{key!r}]")
    else:
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside (Distributed)DataParallel, so that checkpoints move between single- and
    multi-process runs (the wrapper only prefixes every name with ``module.``)."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def _type_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def save_checkpoint(path, *, model, optimizer=None, scheduler=None, epoch: int, extra: dict | None = None) -> None:
    """Write everything a run needs to resume to ``path``, atomically.

    Either the whole new checkpoint is at ``path`` afterwards, or (after any error) whatever was there
    before, untouched.  Besides the arguments, the states of the random generators are saved
    (:func:`~visarch.checkpoint.capture_rng_state`).  A value that ``torch.load(weights_only=True)``
    could not read back raises ``TypeError`` before anything is written.

    Args:
        path: the file to create or replace; its folder must exist.
        model: the ``torch.nn.Module`` whose ``state_dict()`` is saved (unwrapped from
            ``DataParallel`` or ``DistributedDataParallel``).
        optimizer: a ``torch.optim`` optimizer whose ``state_dict()`` is saved, or ``None``.
        scheduler: a learning-rate scheduler whose ``state_dict()`` is saved, or ``None``.
        epoch: an int >= 0, the caller's count, e.g. of finished epochs.
        extra: plain data the caller needs: ints, floats, strings, tensors, lists, dicts (a
            ``torch.Generator``'s ``get_state()`` is a tensor).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_int(epoch, "epoch", where="save_checkpoint", ge=0)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save checkpoint {path}: folder {folder} does not exist")
    payload = {
        "format": FORMAT, "version": VERSION, "epoch": epoch,
        "model": _unwrap(model).state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "optimizer_type": None if optimizer is None else _type_name(optimizer),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scheduler_type": None if scheduler is None else _type_name(scheduler),
        "rng": capture_rng_state(),
        "extra": {} if extra is None else extra,
    }
    for name in ("model", "optimizer", "scheduler", "extra"):  # before any byte is written
        _check_plain(payload[name], name if name == "extra" else f"{name}.state_dict()")
    atomic_write(path, lambda file: torch.save(payload, file))


def atomic_write(path, write) -> None:
    """Create or replace the file ``path`` with what ``write(file)`` writes to a binary file, atomically.

    Afterwards ``path`` holds either all of it or, after any error, whatever was there before.  The
    bytes go to a temporary file in the same folder, which is flushed, synced and renamed over ``path``.

    Args:
        path: the file to create or replace; its folder must exist.
        write: a function of one argument, the open binary file, that writes the contents.
    """
    path = Path(path)
    # same folder: os.replace cannot cross file systems; "x" never clobbers, and gives the permissions any new
    # file gets (mkstemp's would be owner-only)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    file = open(temporary, "xb")  # before the try: a failed open must not delete a file that is not ours
    try:
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on the disk before the name points at them
        with contextlib.suppress(FileNotFoundError):
            shutil.copymode(path, temporary)  # an overwritten file keeps its permissions, as with open("wb")
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt included: never leave a half-written temporary file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if os.name == "posix":  # make the rename itself durable
        folder_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)


# --- loading -------------------------------------------------------------------------------------------

def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN} more"


def _read(path: Path, device: torch.device):
    """``torch.load(path, weights_only=True)`` after the cheap checks that tell a missing, foreign,
    truncated or corrupt file apart, each a ValueError naming ``path``."""
    if not path.exists():
        raise CheckpointNotFoundError(2, f"checkpoint {path} does not exist", str(path))
    if not path.is_file():
        raise ValueError(f"checkpoint {path} is not a file")
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive; anything else never came from save_checkpoint
        what = "it is empty" if not magic else "it is not a zip archive written by torch.save"
        raise ValueError(f"{path} is not a visarch checkpoint: {what} (or it is truncated or corrupt)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad_member = archive.testzip()  # CRC of every member: torch.load itself does not check them
    except zipfile.BadZipFile as error:  # a cut-off file has lost the central directory at its end
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({error})") from None
    if bad_member is not None:
        raise ValueError(f"checkpoint {path} is corrupt: member {bad_member} fails its CRC check")
    if not any(name.endswith("/data.pkl") for name in names):
        raise ValueError(f"{path} is not a visarch checkpoint: a zip archive not written by torch.save")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is a page of advice; the line naming the refused global is the one that matters
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line), lines[-1] if lines else "")
        raise ValueError(f"{path} is not a visarch checkpoint: it holds objects that "
                         f"torch.load(weights_only=True) refuses ({reason.split('. ')[0]})") from None
    except Exception as error:  # torch reports damage inside the archive as RuntimeError, KeyError, ...
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error})") from None


def _check_layout(path: Path, checkpoint) -> None:
    if not (isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT):
        if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor)
                                                               for v in checkpoint.values()):
            hint = (f"it looks like a bare state_dict (keys {_listed(list(map(str, checkpoint)))}); "
                    "load it with model.load_state_dict(torch.load(path, weights_only=True))")
        else:
            hint = f"it holds a {type(checkpoint).__name__} without the format marker {FORMAT!r}"
        raise ValueError(f"{path} is not a visarch checkpoint: {hint}")
    if checkpoint.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has format version {checkpoint.get('version')!r}; "
                         f"this visarch reads version {VERSION}")
    missing = [key for key in ("epoch", "model", "optimizer", "optimizer_type", "scheduler", "scheduler_type",
                               "rng", "extra") if key not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: it lacks {_listed(missing)}")
    epoch = checkpoint["epoch"]
    if (isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(checkpoint["model"], dict)
            or not isinstance(checkpoint["extra"], dict)
            or not all(isinstance(checkpoint[key], (dict, type(None))) for key in ("optimizer", "scheduler"))):
        raise ValueError(f"checkpoint {path} is corrupt: its epoch, model, optimizer, scheduler or extra "
                         "entry has the wrong type")


def _check_model(path: Path, saved, model: nn.Module) -> None:
    expected = model.state_dict()
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    resized = [f"{name} (checkpoint {tuple(saved[name].shape)}, model {tuple(tensor.shape)})"
               for name, tensor in expected.items()
               if name in saved and isinstance(tensor, torch.Tensor) and isinstance(saved[name], torch.Tensor)
               and saved[name].shape != tensor.shape]
    problems = [f"{label}: {_listed(names)}" for label, names in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", resized)) if names]
    if problems:
        raise ValueError(f"checkpoint {path} is for a different model ({type(model).__name__}); "
                         + "; ".join(problems))


def _check_state(path: Path, checkpoint: dict, name: str, obj) -> None:
    """The optimizer's or scheduler's saved state is present and of ``obj``'s type."""
    if checkpoint[name] is None:
        raise ValueError(f"checkpoint {path} holds no {name} state, but a {name} was given")
    if checkpoint[f"{name}_type"] != _type_name(obj):
        raise ValueError(f"checkpoint {path} holds the state of a {checkpoint[f'{name}_type']}, "
                         f"not of the {name} given ({_type_name(obj)})")


def _check_optimizer_groups(path: Path, saved: dict, optimizer) -> None:
    # torch checks this too, but only inside load_state_dict, after the model has been loaded
    saved_sizes = [len(group["params"]) for group in saved["param_groups"]]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise ValueError(f"checkpoint {path} holds an optimizer over parameter groups of sizes {saved_sizes}, "
                         f"the optimizer given has groups of sizes {sizes}")


def _device_of(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def load_checkpoint(path, *, model, optimizer=None, scheduler=None, restore_rng=True) -> dict:
    """Load a :func:`~visarch.checkpoint.save_checkpoint` file into ``model`` (and ``optimizer``, ``scheduler``).

    Everything is checked before anything is loaded, so after an error the objects passed in are as
    they were; the file is only read.  A missing file raises
    :class:`~visarch.checkpoint.CheckpointNotFoundError` (a ``ValueError`` and a ``FileNotFoundError``);
    a foreign, truncated or corrupt one, or one for another model (other parameter names or shapes),
    optimizer or scheduler, a ``ValueError`` naming the path and the problem.

    Args:
        path: the checkpoint file.
        model: the ``torch.nn.Module`` to load the weights into (a ``DataParallel`` or
            ``DistributedDataParallel`` wrapper is unwrapped).
        optimizer: the optimizer to load the saved state into, or ``None`` to leave it out (to load the
            weights only, say); it must be of the saved optimizer's type.
        scheduler: likewise for the learning-rate scheduler.
        restore_rng: set the random generators to their saved states.

    Returns:
        ``{"epoch": int, "extra": dict}``, as saved.  Tensors come back on the model's device (pass a
        generator state to ``set_state`` with ``.cpu()``).
    """
    path = Path(path)
    checkpoint = _open(path, model, optimizer, scheduler)
    if restore_rng:
        try:
            _check_rng_state(checkpoint["rng"])
        except ValueError as error:
            raise ValueError(f"checkpoint {path} is corrupt: {error}") from None
    _load_states(checkpoint, model, optimizer, scheduler)
    if restore_rng:
        restore_rng_state(checkpoint["rng"])
    return {"epoch": checkpoint["epoch"], "extra": checkpoint["extra"]}


def _open(path: Path, model, optimizer, scheduler) -> dict:
    """The checkpoint at ``path``, read onto the model's device and checked against the objects given
    (nothing is loaded into them yet)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = _unwrap(model)
    checkpoint = _read(path, _device_of(model))
    _check_layout(path, checkpoint)
    _check_model(path, checkpoint["model"], model)
    if optimizer is not None:
        _check_state(path, checkpoint, "optimizer", optimizer)
        _check_optimizer_groups(path, checkpoint["optimizer"], optimizer)
    if scheduler is not None:
        _check_state(path, checkpoint, "scheduler", scheduler)
    return checkpoint


def _load_states(checkpoint: dict, model, optimizer, scheduler) -> None:
    _unwrap(model).load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])


# --- a training run ------------------------------------------------------------------------------------

_RUN = "run"  # the key of extra under which save_run keeps what a loop needs beyond save_checkpoint's
_RUN_KEYS = ("seed", "batch_size", "history", "rng_states", "order_generator", "grad_scaler")


def _check_history(history, epoch: int) -> None:
    """``{"loss": [float], "metrics": {name: [float]}}`` with one loss per finished epoch."""
    if not (isinstance(history, dict) and set(history) == {"loss", "metrics"}
            and isinstance(history["loss"], (list, tuple)) and isinstance(history["metrics"], dict)
            and all(isinstance(name, str) and isinstance(values, (list, tuple))
                    for name, values in history["metrics"].items())):
        raise TypeError('history must be a dict {"loss": [float, ...], "metrics": {name: [float, ...]}}, '
                        f"got {history!r:.80}")
    if len(history["loss"]) != epoch:
        raise ValueError(f"history holds {len(history['loss'])} epochs' losses, but epoch={epoch} epochs are done")


def _check_rng_states(rng_states) -> None:
    if not isinstance(rng_states, (list, tuple)) or not rng_states:
        raise TypeError("rng_states must be a non-empty list, one capture_rng_state() by rank, got "
                        f"{type(rng_states).__name__}")
    for rank, state in enumerate(rng_states):
        try:
            _check_rng_state(state)
        except ValueError as error:
            raise ValueError(f"rng_states[{rank}]: {error}") from None


def save_run(path, *, model, optimizer, epoch: int, history: dict, rng_states, order_generator, seed: int,
             batch_size: int, scheduler=None, grad_scaler=None) -> None:
    """Write what a training loop needs to resume after ``epoch`` finished epochs, atomically.

    :func:`~visarch.checkpoint.save_checkpoint` of the model, optimizer and scheduler, whose ``extra``
    holds the rest of the run: the gradient scaler's state, the generator that orders the mini-batches,
    the random state of every process, the history, and the seed and batch size.  Under several
    processes one of them writes, after gathering every process's :func:`capture_rng_state` (each
    process draws its own dropout masks).  Everything is checked before a byte is written.

    Args:
        path: the file to create or replace; its folder must exist.
        model: the ``torch.nn.Module`` (unwrapped from ``DistributedDataParallel``).
        optimizer: the ``torch.optim`` optimizer.
        epoch: the finished epochs, an int >= 0.
        history: ``{"loss": [float], "metrics": {name: [float]}}``, one loss per finished epoch.
        rng_states: by rank, each process's :func:`~visarch.checkpoint.capture_rng_state` (a list of one
            outside ``torchrun``).
        order_generator: the ``torch.Generator`` that shuffles the examples.
        seed: the run's seed, an int >= 0; a resumed run must give the same.
        batch_size: the run's (global) mini-batch, an int >= 1; a resumed run must give the same.
        scheduler: the learning-rate scheduler, or ``None``.
        grad_scaler: the ``torch.amp.GradScaler`` of float16 training, or ``None``.
    """
    check_int(epoch, "epoch", where="save_run", ge=0)
    check_int(seed, "seed", where="save_run", ge=0)
    check_int(batch_size, "batch_size", where="save_run", ge=1)
    _check_history(history, epoch)
    _check_rng_states(rng_states)
    if not isinstance(order_generator, torch.Generator):
        raise TypeError(f"order_generator must be a torch.Generator, got {type(order_generator).__name__}")
    run = {"seed": seed, "batch_size": batch_size,
           "history": {"loss": list(history["loss"]),
                       "metrics": {name: list(values) for name, values in history["metrics"].items()}},
           "rng_states": list(rng_states), "order_generator": order_generator.get_state(),
           "grad_scaler": None if grad_scaler is None else grad_scaler.state_dict()}
    save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch, extra={_RUN: run})


def _check_run(path: Path, checkpoint: dict) -> dict:
    """The run state :func:`save_run` put in ``extra``, checked for layout (a ValueError naming ``path``)."""
    run = checkpoint["extra"].get(_RUN)
    if not isinstance(run, dict):
        raise ValueError(f"checkpoint {path} holds no training run: it was written by save_checkpoint, "
                         "not by save_run")
    missing = [key for key in _RUN_KEYS if key not in run]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: its run lacks {_listed(missing)}")
    try:
        _check_history(run["history"], checkpoint["epoch"])
        _check_rng_states(run["rng_states"])
        state = run["order_generator"]
        if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8
                and state.shape == torch.Generator().get_state().shape):
            raise ValueError("the order generator's state is not a CPU generator's")
        if not isinstance(run["grad_scaler"], (dict, type(None))):
            raise ValueError("the gradient scaler's state is not a dict")
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} is corrupt: {error}") from None
    return run


def load_run(path, *, model, optimizer, order_generator, seed: int, batch_size: int, scheduler=None,
             grad_scaler=None, epochs: int | None = None, rank: int = 0, world_size: int = 1) -> dict:
    """Resume a run that :func:`~visarch.checkpoint.save_run` saved: load its state into the objects given.

    First everything is checked, so that after an error nothing has changed: the file (as
    :func:`~visarch.checkpoint.load_checkpoint` checks it), and that the resuming run is the saved one
    continued: the same ``seed``, ``batch_size`` and number of processes, a gradient scaler exactly when
    the saved run had one, and no more epochs done than ``epochs``.  Then the model, optimizer,
    scheduler, gradient scaler and order generator get their saved states, and the global generators
    (:func:`~visarch.checkpoint.restore_rng_state`) those that process ``rank`` saved: call it inside
    :func:`~visarch.checkpoint.fork_rng` to keep the caller's.

    Args:
        path: the checkpoint file.
        model: the ``torch.nn.Module`` to load the weights into.
        optimizer: the optimizer, of the saved one's type.
        order_generator: the ``torch.Generator`` that shuffles the examples.
        seed: the resuming run's seed; it must be the saved one.
        batch_size: the resuming run's (global) mini-batch; it must be the saved one.
        scheduler: the learning-rate scheduler, of the saved one's type, or ``None``.
        grad_scaler: the ``torch.amp.GradScaler``, given exactly when the saved run had one.
        epochs: the epochs the resuming run is to reach, at least those saved; or ``None``.
        rank: this process's rank, whose random state is restored.
        world_size: the number of processes, which must be the saved run's.

    Returns:
        ``{"epoch": int, "history": {"loss": [float], "metrics": {name: [float]}}}``: the finished epochs
        and their history.
    """
    check_int(seed, "seed", where="load_run", ge=0)
    check_int(batch_size, "batch_size", where="load_run", ge=1)
    check_int(world_size, "world_size", where="load_run", ge=1)
    check_int(rank, "rank", where="load_run", ge=0)
    if rank >= world_size:
        raise ValueError(f"rank={rank} must be below world_size={world_size}")
    if epochs is not None:
        check_int(epochs, "epochs", where="load_run", ge=1)
    if not isinstance(order_generator, torch.Generator):
        raise TypeError(f"order_generator must be a torch.Generator, got {type(order_generator).__name__}")
    path = Path(path)
    checkpoint = _open(path, model, optimizer, scheduler)
    run, done = _check_run(path, checkpoint), checkpoint["epoch"]
    if (run["seed"], run["batch_size"]) != (seed, batch_size):
        raise ValueError(f"checkpoint {path} was written with seed={run['seed']} and batch_size={run['batch_size']}; "
                         f"resuming needs the same, got seed={seed} and batch_size={batch_size}")
    if len(run["rng_states"]) != world_size:
        raise ValueError(f"checkpoint {path} was written by {len(run['rng_states'])} processes; resume it "
                         f"with as many, not {world_size}")
    if (run["grad_scaler"] is None) != (grad_scaler is None):
        had = "had no gradient scaler" if run["grad_scaler"] is None else "had a gradient scaler (float16)"
        raise ValueError(f"checkpoint {path} is of a run that {had}; resume it with the same autocast dtype")
    if epochs is not None and done > epochs:
        raise ValueError(f"checkpoint {path} holds {done} epochs, more than epochs={epochs}")
    _load_states(checkpoint, model, optimizer, scheduler)
    order_generator.set_state(run["order_generator"].cpu())  # loaded onto the model's device
    if grad_scaler is not None:
        grad_scaler.load_state_dict(run["grad_scaler"])
    restore_rng_state(run["rng_states"][rank])
    return {"epoch": done, "history": run["history"]}
