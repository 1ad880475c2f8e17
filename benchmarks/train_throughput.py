"""ResNet-50-CIFAR training throughput: one process against two under torchrun (CPU), and bf16 on a GPU.

CPU: images per second of a full training step (forward, cross-entropy, backward, SGD step with
momentum), float32, on synthetic 32x32 images, at the same global batch B in both runs and on the same
cores: one process with T threads against two processes under ``torchrun --standalone
--nproc_per_node=2`` (gloo, ``DistributedDataParallel``) with T/2 threads each and B/2 images each.
The two-process run adds the gradient all-reduce (23.5 M float32 numbers a step, over loopback);
both runs do the same arithmetic, so the ratio two/one measures how well two half-size processes use
the cores compared with one process's intra-op threads, minus the cost of communication.

GPU (only where CUDA is available): the same step in one process under ``torch.autocast(dtype=
torch.bfloat16)`` with channels-last tensors, and the achieved FLOP/s as a fraction of the card's
peak dense bf16 tensor FLOP/s.  FLOPs per image: ``visarch.cost.model_macs`` of one forward pass
(convolutions and the linear layer; elementwise work not counted) x 2 FLOPs per multiply-accumulate
x 3 for forward plus backward (the backward pass computes the gradients of the inputs and of the
weights, each as costly as the forward pass).  The peak comes from the table ``PEAK_BF16_TFLOPS``
by ``torch.cuda.get_device_name()`` or from ``--peak-tflops``.

Timing: after warm-up steps, the median over the timed steps of each step's wall time (on rank 0;
DistributedDataParallel's all-reduce keeps the two processes in step); the one- and two-process runs
take turns for a few rounds, so that load from elsewhere on the machine hits both alike.  Run with
``python -m benchmarks train_throughput`` (``--quick`` for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from visarch import distributed
from visarch.cost import model_macs
from visarch.models import create

MODEL = "resnet50_cifar"
ROOT = Path(__file__).resolve().parent.parent  # the repository: torchrun's workers import benchmarks from here

# Peak dense (no structured sparsity) bf16 tensor-core TFLOP/s, matched in this order as substrings of
# torch.cuda.get_device_name().  Sources: NVIDIA's data sheets, which list the sparse figure (twice these).
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),  # NVIDIA H200 Tensor Core GPU data sheet (SXM): 1,979 TFLOPS with sparsity
    ("H100 PCIe", 756.0),  # NVIDIA H100 Tensor Core GPU data sheet, H100 PCIe: 1,513 with sparsity
    ("H100 NVL", 835.0),  # same data sheet, H100 NVL: 1,671 with sparsity
    ("H100", 989.0),  # same data sheet, H100 SXM ("NVIDIA H100 80GB HBM3"): 1,979 with sparsity
    ("A100", 312.0),  # NVIDIA A100 Tensor Core GPU data sheet (SXM and PCIe): 624 with sparsity
    ("L40S", 362.0),  # NVIDIA L40S data sheet: 733 with sparsity
    ("L4", 121.0),  # NVIDIA L4 Tensor Core GPU data sheet: 242 with sparsity
)


def peak_tflops(device_name: str) -> float | None:
    """The card's peak dense bf16 TFLOP/s from ``PEAK_BF16_TFLOPS``, or None for a card not listed."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if pattern in device_name:
            return tflops
    return None


def flops_per_image() -> int:
    """Training FLOPs of one 32x32 image: forward MACs x 2 (FLOPs per MAC) x 3 (forward + backward)."""
    with torch.device("meta"):
        model = create(MODEL)
    return model_macs(model, (1, 3, 32, 32)) * 2 * 3


def time_steps(model, batch: int, *, warmup: int, steps: int, device: torch.device, bf16: bool = False,
               channels_last: bool = False) -> list[float]:
    """Wall time (s) of each of ``steps`` training steps after ``warmup`` untimed ones, on a fixed synthetic batch."""
    gen = torch.Generator().manual_seed(distributed.rank())
    images = torch.rand(batch, 3, 32, 32, generator=gen).to(device)  # [batch, 3, 32, 32]
    labels = torch.randint(10, (batch,), generator=gen).to(device)  # [batch]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def build_model(device: torch.device, *, channels_last: bool = False):
    torch.manual_seed(0)
    model = create(MODEL).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def worker(args) -> int:
    """One of the processes torchrun starts: DDP on gloo, B / W images each; rank 0 writes the step times."""
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    distributed.init_from_env(device)
    world = distributed.world_size()
    model = DistributedDataParallel(build_model(device))
    times = time_steps(model, args.batch // world, warmup=args.warmup, steps=args.steps, device=device)
    if distributed.is_main():
        Path(args.out).write_text(json.dumps({"times": times, "world": world, "threads": torch.get_num_threads()}))
    distributed.cleanup()
    return 0


def two_processes(batch: int, threads: int, *, warmup: int, steps: int) -> list[float]:
    """Step times of rank 0 in ``torchrun --standalone --nproc_per_node=2`` with ``threads`` threads per process."""
    env = {name: value for name, value in os.environ.items() if name not in distributed.TORCHRUN_VARIABLES}
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "times.json"
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "benchmarks.train_throughput", "--worker", "--out", str(out), "--batch", str(batch),
                        "--threads", str(threads), "--warmup", str(warmup), "--steps", str(steps)],
                       env=env, cwd=ROOT, check=True, timeout=3600)
        result = json.loads(out.read_text())
    assert result["world"] == 2 and result["threads"] == threads, result
    return result["times"]


def gpu(args) -> None:
    """bf16 autocast, channels-last throughput on one GPU and its fraction of the card's peak, or why it is skipped."""
    if not torch.cuda.is_available():
        print("GPU: CUDA is not available here; the bf16 GPU throughput and its fraction of the peak are skipped")
        return
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    torch.backends.cudnn.benchmark = True  # the fastest convolution algorithm for these fixed shapes
    model = build_model(device, channels_last=True)
    times = time_steps(model, args.gpu_batch, warmup=args.warmup, steps=args.steps, device=device, bf16=True,
                       channels_last=True)
    rate = args.gpu_batch / statistics.median(times)
    achieved = rate * flops_per_image() / 1e12
    peak = args.peak_tflops if args.peak_tflops is not None else peak_tflops(name)
    print(f"GPU: {name}, bf16 autocast, channels-last, batch {args.gpu_batch}: {rate:,.0f} images/s, "
          f"{achieved:.1f} TFLOP/s achieved")
    if peak is None:
        print("  the card's peak bf16 FLOP/s is unknown (not in PEAK_BF16_TFLOPS): "
              "pass --peak-tflops to get the fraction")
    else:
        source = "--peak-tflops" if args.peak_tflops is not None else "data sheet, dense"
        print(f"  peak bf16 {peak:.0f} TFLOP/s ({source}): {achieved / peak:.1%} of the peak")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="global batch 8, 1 warm-up and 2 timed steps, 1 round (smoke test)")
    parser.add_argument("--batch", type=int, default=32, help="global batch B on the CPU (default 32)")
    parser.add_argument("--threads", type=int,
                        help="threads T of the one process (default: torch's count); each of the two gets T / 2")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps (default 6)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="the one- and two-process runs take turns this many times (default 2)")
    parser.add_argument("--gpu-batch", type=int, default=512, help="batch on the GPU (default 512)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense bf16 TFLOP/s, if not in the table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # set for torchrun's processes
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.batch, args.warmup, args.steps, args.rounds, args.gpu_batch = 8, 1, 2, 1, 64
    threads = args.threads if args.threads is not None else torch.get_num_threads()
    if threads < 2 or threads % 2:
        parser.error(f"--threads must be even and at least 2 so that two processes get T / 2 each, got {threads}")
    if args.batch % 2:
        parser.error(f"--batch must be even so that two processes get B / 2 each, got {args.batch}")
    torch.set_num_threads(threads)

    print(f"torch {torch.__version__}, {MODEL}, float32, synthetic 32x32 images, forward + backward + SGD step; "
          f"global batch {args.batch}; median of {args.rounds} x {args.steps} steps, each run after {args.warmup} "
          "warm-up steps, the two runs taking turns\n")
    one_times, two_times = [], []
    for _ in range(args.rounds):  # the two runs take turns, so a burst of load from elsewhere hits both
        one_times += time_steps(build_model(torch.device("cpu")), args.batch, warmup=args.warmup, steps=args.steps,
                                device=torch.device("cpu"))
        two_times += two_processes(args.batch, threads // 2, warmup=args.warmup, steps=args.steps)
    one, two = statistics.median(one_times), statistics.median(two_times)
    print(f"{'CPU run':32s} {'threads':>12s} {'s/step':>8s} {'images/s':>9s}")
    print(f"{'one process':32s} {threads:12d} {one:8.3f} {args.batch / one:9.2f}")
    print(f"{'two processes (torchrun, gloo)':32s} {f'2 x {threads // 2}':>12s} {two:8.3f} {args.batch / two:9.2f}")
    print(f"ratio two / one (images/s): {one / two:.2f}\n")
    gpu(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
