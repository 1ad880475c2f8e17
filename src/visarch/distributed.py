"""The process group of a data-parallel run, read from the environment ``torchrun`` sets.

``torchrun --nproc_per_node=N script.py`` starts N copies of the script and gives each the
variables ``RANK`` (0..N-1 over all machines), ``LOCAL_RANK`` (0.. on this machine, the GPU to use),
``WORLD_SIZE`` (N times the number of machines), ``MASTER_ADDR`` and ``MASTER_PORT`` (where rank 0
listens).  :func:`init_from_env` joins that group (gloo for CPU tensors, NCCL for CUDA ones); without
those variables the program is one process and every helper here answers as a group of one, so
the same code runs in a notebook and under ``torchrun``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["all_gather_object", "all_reduce_mean", "barrier", "broadcast_buffers", "cleanup", "in_torchrun",
           "init_from_env", "is_distributed", "is_main", "local_rank", "rank", "world_size"]

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def in_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (all of its variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """Whether a process group is initialised (by :func:`init_from_env` or by the caller)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the group; 1 without one."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in 0..world_size()-1; 0 without a group."""
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's index on its machine (the GPU it drives); 0 outside ``torchrun``."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


def init_from_env(device: torch.device) -> bool:
    """Join ``torchrun``'s group if this process runs under it and no group exists yet; returns
    whether the run is distributed.  The backend follows ``device``: NCCL for CUDA, gloo otherwise."""
    if is_distributed():
        return True
    if not in_torchrun():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over all processes (every process gets the same number); ``value``
    itself without a group."""
    if not is_distributed():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor(value, dtype=torch.float64, device=device)  # float64: sums of losses stay exact enough
    dist.all_reduce(total)
    return total.item() / world_size()


def all_gather_object(obj) -> list:
    """``obj`` of every process, by rank (picklable objects, tensors included); ``[obj]`` without a group."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Wait until every process gets here (after rank 0 writes a file the others may read)."""
    if is_distributed():
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch norm's running statistics, say) to every process, so all hold
    the same model; DDP does the same at the start of every forward pass in training mode."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def cleanup() -> None:
    """Leave the process group, if one is initialised (call once at the end of a ``torchrun`` script)."""
    if is_distributed():
        dist.destroy_process_group()
