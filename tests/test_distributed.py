"""Data parallelism under ``torchrun``: two processes train exactly what one process trains.

* ``torchrun --nproc_per_node=2`` (gloo, CPU) trains a small MLP on the digits for 8 steps; the final
  parameters on both processes, and the loss history, equal those of a plain single-process loop
  written here with torch alone (same permutation, same global batches, full-batch mean loss), within
  float tolerance: splitting a batch in two halves and averaging the halves' gradients is the
  full batch's gradient; and process r saw rows r, r + 2, ... of each of that loop's batches;
* under the same two processes, a run checkpointed after one epoch and resumed by a fresh model and
  optimizer ends bit for bit where the uninterrupted run ends (parameters and losses), dropout (a stream
  per process) included;
* the command line under ``torchrun -m visarch.train`` (two processes, a MobileNetV2 with dropout and
  batch norm on a tiny CIFAR-10 archive): 3 epochs in one run, and 1 epoch, a stop and 2 resumed epochs,
  end with the same metrics, parameters and optimizer state, bit for bit;
* a batch size that two processes cannot share raises an error naming both numbers;
* outside ``torchrun`` the helpers of ``visarch.distributed`` answer as a group of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from cifar10_archive import write_archive
from torch import nn

from visarch import distributed
from visarch.data import digits

ROWS, BATCH, EPOCHS, LR, SEED = 300, 64, 2, 0.1, 7  # 300 // 64 = 4 steps an epoch, the last 44 rows dropped


def mlp(dropout=0.0):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10))


def training_data():
    images, labels = digits("train")
    return images[:ROWS], labels[:ROWS]


# Run by torchrun in two processes with visarch.train.fit; argv[1] is the folder holding data.pt (what
# training_data returns: the workers need not import scikit-learn) and receiving the results.
SCRIPT = f"""
import json, os, sys
import torch
from torch import nn
from visarch import distributed
from visarch.train import fit

out = sys.argv[1]
rank = int(os.environ["RANK"])
data = (*torch.load(f"{{out}}/data.pt", weights_only=True), torch.arange({ROWS}))  # + each row's index
seen = []  # the row indices of every step on this process


def loss_fn(m, x, y, index):
    seen.append(index.tolist())
    return nn.functional.cross_entropy(m(x), y)


def mlp(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10))


def train(model, epochs, batch_size={BATCH}, **options):
    optimizer = torch.optim.SGD(model.parameters(), lr={LR}, momentum=0.9)
    return fit(model, loss_fn, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, seed={SEED},
               device="cpu", **options)


model = mlp()
history = train(model, {EPOCHS})
rows = list(seen)
assert distributed.world_size() == 2 and distributed.rank() == rank
torch.save(model.state_dict(), f"{{out}}/params{{rank}}.pt")

straight = mlp(0.5)
straight_history = train(straight, 2)
path = f"{{out}}/checkpoint.pt"
train(mlp(0.5), 1, checkpoint=path)
resumed = mlp(0.5)
resumed_history = train(resumed, 2, checkpoint=path, resume=True)
same = all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
same = same and resumed_history.loss == straight_history.loss

try:
    train(mlp(), 1, batch_size=63)
    error = None
except ValueError as caught:
    error = str(caught)
with open(f"{{out}}/result{{rank}}.json", "w") as file:
    json.dump({{"loss": history.loss, "rows": rows, "resumed_exactly": same,
               "resumed_loss_len": len(resumed_history.loss), "error": error}}, file)
distributed.cleanup()
"""


def single_process_reference():
    """The training of SCRIPT in one process, by hand: parameters, mean loss per epoch, and the rows of
    every step."""
    images, labels = training_data()
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    order_gen = torch.Generator().manual_seed(SEED)
    losses, batches = [], []
    for _ in range(EPOCHS):
        order = torch.randperm(ROWS, generator=order_gen)
        total = 0.0
        for step in range(ROWS // BATCH):
            rows = order[step * BATCH:(step + 1) * BATCH]
            batches.append(rows)
            loss = nn.functional.cross_entropy(model(images[rows]), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / (ROWS // BATCH))
    return model.state_dict(), losses, batches


def torchrun(*arguments):
    """Run ``torchrun --nproc_per_node=2 --standalone ARGUMENTS`` (gloo on the CPU, one thread a process)."""
    env = {name: value for name, value in os.environ.items() if name not in distributed.TORCHRUN_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores: one thread each
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                    *map(str, arguments)], env=env, timeout=120, check=True)


@pytest.fixture(scope="module")
def torchrun_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun")
    script = out / "train_two.py"
    script.write_text(SCRIPT)
    torch.save(training_data(), out / "data.pt")
    torchrun(script, out)
    return out, [json.loads((out / f"result{rank}.json").read_text()) for rank in (0, 1)]


def test_two_processes_train_what_one_process_trains(torchrun_results):
    out, results = torchrun_results
    expected_params, expected_losses, _ = single_process_reference()
    for rank in (0, 1):
        params = torch.load(out / f"params{rank}.pt", weights_only=True)
        assert params.keys() == expected_params.keys()
        for name, value in expected_params.items():
            # float32 sums in another order: the difference is rounding, about 1e-7 relative per step
            torch.testing.assert_close(params[name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert results[rank]["loss"] == pytest.approx(expected_losses, rel=1e-6)
    assert results[0]["loss"] == results[1]["loss"]  # the all-reduced loss is one number on every process
    assert expected_losses[1] < expected_losses[0]  # it learned something: a comparison worth making


def test_each_process_takes_every_second_row_of_the_global_batch(torchrun_results):
    # what DistributedSampler's interleaved shards give: rank r reads rows r, r + 2, r + 4, ... of each batch
    _, results = torchrun_results
    batches = single_process_reference()[2]
    for rank in (0, 1):
        assert results[rank]["rows"] == [batch[rank::2].tolist() for batch in batches]


def test_resume_under_two_processes_is_exact(torchrun_results):
    _, results = torchrun_results
    assert all(r["resumed_exactly"] and r["resumed_loss_len"] == 2 for r in results)


def test_command_line_resume_under_two_processes_is_exact(tmp_path):
    write_archive(tmp_path)  # 20 training images: 2 steps an epoch of 5 images on each process
    run = ["-m", "visarch.train", "--model", "mobilenet_v2", "--data", "cifar10", "--data-root", tmp_path,
           "--batch-size", "10", "--lr", "0.05", "--device", "cpu"]
    torchrun(*run, "--epochs", "3", "--out", tmp_path / "straight")
    torchrun(*run, "--epochs", "1", "--out", tmp_path / "resumed")
    torchrun(*run, "--epochs", "3", "--out", tmp_path / "resumed", "--resume")

    def metrics(folder):  # without the times
        rows = [json.loads(line) for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]

    assert metrics("resumed") == metrics("straight") and len(metrics("straight")) == 3
    straight, resumed = (torch.load(tmp_path / folder / "checkpoint.pt", weights_only=True)
                         for folder in ("straight", "resumed"))
    assert straight["model"].keys() == resumed["model"].keys()
    for name, value in straight["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    for index, state in straight["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_batch_size_must_split_over_the_processes(torchrun_results):
    _, results = torchrun_results
    for r in results:
        assert r["error"] is not None and "batch_size=63 is not divisible by the world size 2" in r["error"]


def test_helpers_outside_torchrun(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.in_torchrun() and not distributed.init_from_env(torch.device("cpu"))
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.all_reduce_mean(2.5) == 2.5 and distributed.all_gather_object("x") == ["x"]
