"""``visarch.checkpoint``: resuming continues a run exactly, and no failure loses or half-loads a checkpoint.

* resume equivalence: 2k steps of a dropout MLP on the digits (SGD with momentum and a step schedule,
  or AdamW with one-cycle) straight through end with the same parameters, optimizer state and
  scheduler state, bit for bit, as k steps, a save, fresh objects built from another seed, a load and
  k more steps; the mini-batches (numpy), input noise (Python ``random``, torch) and dropout masks
  (torch) agree thanks to the restored generators, and without restoring them the runs differ;
* each generator (torch CPU, every CUDA device when present, Python, numpy) draws after a load what
  it drew right after the save;
* a save that fails midway (torch.save raising after writing bytes, an interrupt, an entry a
  weights-only load would refuse) leaves the old file's bytes and no temporary file behind;
* a missing, foreign (bare state_dict, plain pickle, text, other zip, pickled code), truncated or
  corrupt file, or one for another model, optimizer or scheduler, raises an error naming the path and
  the problem, and changes neither the file nor the objects passed in; pickled code is not run;
* loading uses ``torch.load(weights_only=True)`` onto the model's device;
* ``fork_rng`` gives a block seeded private copies of every global generator (the draws of seeding each
  by hand) or the caller's states, and puts the caller's back afterwards, after an error too;
* ``save_run`` and ``load_run`` carry a training run across a stop: model, optimizer, scheduler,
  gradient scaler, order generator, history and the random state of the chosen rank come back as
  saved; a resuming run with another seed, batch size, number of processes, scaler or fewer epochs,
  a rank outside the group, a plain checkpoint or a damaged run state is refused before anything
  changes, and a run state that could not be resumed is refused before anything is written.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import stat
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from visarch.checkpoint import (
    CheckpointNotFoundError,
    capture_rng_state,
    fork_rng,
    load_checkpoint,
    load_run,
    save_checkpoint,
    save_run,
)
from visarch.data import digits

K = 6  # steps before and after the save
# loaded once, before any test seeds the generators: importing scikit-learn draws from Python's random
DIGITS = digits("train")


@pytest.fixture(autouse=True)
def keep_global_generators():
    """These tests reseed and restore the global generators; the other tests of the worker see them as they were."""
    python, numpy = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        yield
    random.setstate(python)
    np.random.set_state(numpy)  # noqa: NPY002


def mlp(seed, hidden=32, depth=1):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.3)]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, 10))


def build(kind, seed):
    model = mlp(seed)
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=2 * K)
    return model, optimizer, scheduler


def seed_all(seed):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the global generators are what a checkpoint saves)


def train_steps(model, optimizer, scheduler, steps):
    """Steps whose batches, noise and dropout come from all three global generators."""
    images, labels = DIGITS
    model.train()
    for _ in range(steps):
        rows = torch.from_numpy(np.random.choice(len(labels), 32, replace=False))  # noqa: NPY002
        noisy = images[rows] + random.uniform(0.0, 0.1) * torch.randn_like(images[rows])
        loss = nn.functional.cross_entropy(model(noisy), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def assert_identical(a, b, where="state"):
    """Equal structure and values, tensors bit for bit (same dtype, shape and elements)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def snapshot(model, optimizer=None):
    copy = {"model": {k: v.clone() for k, v in model.state_dict().items()}}
    if optimizer is not None:
        copy["optimizer"] = pickle.loads(pickle.dumps(optimizer.state_dict()))
    return copy


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_resume_continues_exactly(tmp_path, kind):
    seed_all(0)
    straight = build(kind, seed=1)
    train_steps(*straight, 2 * K)

    seed_all(0)
    first = build(kind, seed=1)
    train_steps(*first, K)
    generator_state = torch.Generator().manual_seed(7).get_state()
    extra = {"losses": [0.5, 0.25], "name": "half way", "generator": generator_state, "nested": {"n": 3}}
    save_checkpoint(tmp_path / "ckpt.pt", model=first[0], optimizer=first[1], scheduler=first[2], epoch=1,
                    extra=extra)

    for restore_rng in (True, False):
        seed_all(99)  # a new process would start from other generator states
        resumed = build(kind, seed=2)  # and other initial weights
        info = load_checkpoint(tmp_path / "ckpt.pt", model=resumed[0], optimizer=resumed[1], scheduler=resumed[2],
                               restore_rng=restore_rng)
        assert info["epoch"] == 1
        assert_identical(info["extra"], extra, "extra")
        train_steps(*resumed, K)
        same = all(torch.equal(a, b) for a, b in zip(straight[0].parameters(), resumed[0].parameters(), strict=True))
        if restore_rng:
            assert same
            assert_identical(resumed[0].state_dict(), straight[0].state_dict(), "model")
            assert_identical(resumed[1].state_dict(), straight[1].state_dict(), "optimizer")
            assert_identical(resumed[2].state_dict(), straight[2].state_dict(), "scheduler")
        else:  # other batches and masks: the generators' states are what made the runs agree
            assert not same


def draws():
    out = {"torch": torch.rand(4), "python": [random.random() for _ in range(4)],
           "numpy": np.random.rand(4).tolist()}  # noqa: NPY002
    if torch.cuda.is_available():
        out["cuda"] = [torch.rand(4, device=f"cuda:{i}").cpu() for i in range(torch.cuda.device_count())]
    return out


def test_generators_are_restored(tmp_path):
    seed_all(3)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state (its gauss_next)
    np.random.randn()  # noqa: NPY002  (numpy's too, when it drew an odd number of them)
    model = mlp(0)
    seed_all(4)
    save_checkpoint(tmp_path / "ckpt.pt", model=model, epoch=0)
    after_save = draws() | {"gauss": random.gauss(0, 1), "randn": float(np.random.randn())}  # noqa: NPY002
    draws()
    load_checkpoint(tmp_path / "ckpt.pt", model=model)
    assert_identical(draws() | {"gauss": random.gauss(0, 1), "randn": float(np.random.randn())},  # noqa: NPY002
                     after_save, "draws")
    moved_on = draws()
    load_checkpoint(tmp_path / "ckpt.pt", model=model, restore_rng=False)
    assert draws()["python"] != moved_on["python"]  # left alone: the generators continue


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_generators_and_devices(tmp_path):
    model = mlp(0).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(2, 64, device="cuda")).sum().backward()
    optimizer.step()
    for i in range(torch.cuda.device_count()):
        torch.cuda.manual_seed_all(5)
        torch.rand(3, device=f"cuda:{i}")  # each device's generator at its own place
    save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=optimizer, epoch=2,
                    extra={"t": torch.ones(2, device="cuda")})
    expected = [torch.rand(4, device=f"cuda:{i}").cpu() for i in range(torch.cuda.device_count())]
    on_cpu = mlp(1)
    info = load_checkpoint(tmp_path / "ckpt.pt", model=on_cpu)  # a GPU checkpoint onto a CPU model
    assert info["extra"]["t"].device.type == "cpu"
    assert all(torch.equal(a.cpu(), b) for a, b in zip(model.parameters(), on_cpu.parameters(), strict=True))
    assert_identical([torch.rand(4, device=f"cuda:{i}").cpu() for i in range(torch.cuda.device_count())],
                     expected, "cuda draws")
    on_gpu = mlp(2).cuda()
    gpu_optimizer = torch.optim.SGD(on_gpu.parameters(), lr=0.1, momentum=0.9)
    load_checkpoint(tmp_path / "ckpt.pt", model=on_gpu, optimizer=gpu_optimizer)
    assert all(s["momentum_buffer"].is_cuda for s in gpu_optimizer.state.values())


@pytest.fixture
def saved(tmp_path):
    """A good checkpoint of an SGD-trained MLP, and its bytes."""
    model, optimizer, scheduler = build("sgd", seed=0)
    train_steps(model, optimizer, scheduler, 2)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, epoch=3)
    return path, path.read_bytes(), (model, optimizer, scheduler)


def test_failed_save_keeps_the_old_checkpoint(saved, monkeypatch):
    path, old, (model, optimizer, scheduler) = saved

    def write_then_fail(error):
        def fake_save(obj, file):
            file.write(b"PK\x03\x04 half of a checkpoint")
            raise error
        return fake_save

    for error in (OSError("disk full"), KeyboardInterrupt()):
        with monkeypatch.context() as patch:
            patch.setattr(torch, "save", write_then_fail(error))
            with pytest.raises(type(error)):
                save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, epoch=4)
        assert path.read_bytes() == old
        assert os.listdir(path.parent) == ["ckpt.pt"]
    assert load_checkpoint(path, model=mlp(1))["epoch"] == 3


@pytest.mark.parametrize("extra, named", [({"accuracy": np.float64(0.9)}, "extra['accuracy']"),
                                          ({"history": [1, {"f": lambda: 0}]}, "extra['history'][1]['f']"),
                                          ({"ok": 1, "shape": np.zeros(2)}, "extra['shape']")])
def test_save_refuses_what_a_weights_only_load_refuses(saved, extra, named):
    path, old, (model, _, _) = saved
    buffer = io.BytesIO()  # torch itself can write the value but not read it back with weights_only=True
    with pytest.raises((pickle.PicklingError, AttributeError, pickle.UnpicklingError)):
        torch.save(extra, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    with pytest.raises(TypeError, match=re.escape(named)):
        save_checkpoint(path, model=model, epoch=0, extra=extra)
    assert path.read_bytes() == old and os.listdir(path.parent) == ["ckpt.pt"]


def test_save_arguments(tmp_path):
    model = mlp(0)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=-1)
    with pytest.raises(TypeError, match="epoch must be an int"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=1.0)
    with pytest.raises(TypeError, match="extra must be a dict"):
        save_checkpoint(tmp_path / "a.pt", model=model, epoch=1, extra=[1])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        save_checkpoint(tmp_path / "a.pt", model=model.state_dict(), epoch=1)
    with pytest.raises(FileNotFoundError, match="folder .*nowhere does not exist"):
        save_checkpoint(tmp_path / "nowhere" / "a.pt", model=model, epoch=1)
    assert os.listdir(tmp_path) == []


def test_saved_file_has_the_permissions_of_a_plain_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model=mlp(0), epoch=0)
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    os.chmod(path, 0o640)
    save_checkpoint(path, model=mlp(0), epoch=1)  # an overwritten file keeps its permissions
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


class RunsCode:
    """Unpickling this makes a folder: a file that runs code when loaded."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def write_foreign(path, kind):
    if kind == "state_dict":
        torch.save(mlp(0).state_dict(), path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"epoch": 1, "model": {}}))
    elif kind == "text":
        path.write_text("epoch 1\n")
    elif kind == "other dict":
        torch.save({"format": "somebody.else", "weights": torch.ones(2)}, path)
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "not a checkpoint")
    elif kind == "runs code":
        torch.save({"format": "visarch.checkpoint", "payload": RunsCode(str(path.parent / "pwned"))}, path)


def assert_untouched(path, data, model, before):
    assert path.read_bytes() == data
    assert_identical(snapshot(model)["model"], before["model"], "model")


@pytest.mark.parametrize("kind, says", [("state_dict", "bare state_dict"), ("pickle", "not a zip archive"),
                                        ("text", "not a zip archive"), ("other dict", "format marker"),
                                        ("zip", "not written by torch.save"), ("runs code", "refuses")])
def test_foreign_files_are_refused(tmp_path, kind, says):
    path = tmp_path / "foreign.pt"
    write_foreign(path, kind)
    data = path.read_bytes()
    model = mlp(1)
    before = snapshot(model)
    with pytest.raises(ValueError, match="is not a visarch checkpoint") as error:
        load_checkpoint(path, model=model)
    assert str(path) in str(error.value) and says in str(error.value)
    assert_untouched(path, data, model, before)
    assert not (tmp_path / "pwned").exists()  # the pickled os.mkdir did not run


def data_offset(archive_bytes, member):
    """Where ``member``'s bytes start in a zip archive (after its local header)."""
    info = zipfile.ZipFile(io.BytesIO(archive_bytes)).getinfo(member)
    name_length, extra_length = struct.unpack("<HH", archive_bytes[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


@pytest.mark.parametrize("damage", ["half", "last byte", "first 100 bytes", "empty", "flipped weight bit"])
def test_truncated_or_corrupt_files_are_refused(saved, damage):
    path, good, (_, optimizer, scheduler) = saved
    if damage == "half":
        data = good[:len(good) // 2]
    elif damage == "last byte":
        data = good[:-1]
    elif damage == "first 100 bytes":
        data = good[:100]
    elif damage == "empty":
        data = b""
    else:  # one bit of the largest tensor's bytes: the archive is intact, only its CRC can tell
        names = zipfile.ZipFile(io.BytesIO(good)).namelist()
        member = max((n for n in names if "/data/" in n), key=lambda n: zipfile.ZipFile(io.BytesIO(good)).getinfo(n)
                     .file_size)
        start, size = data_offset(good, member)
        data = bytearray(good)
        data[start + size // 2] ^= 0x10
        data = bytes(data)
    path.write_bytes(data)
    model, fresh_optimizer, _ = build("sgd", seed=5)
    before = snapshot(model, fresh_optimizer)
    with pytest.raises(ValueError, match="truncated or corrupt|is corrupt") as error:
        load_checkpoint(path, model=model, optimizer=fresh_optimizer)
    assert str(path) in str(error.value)
    assert_untouched(path, data, model, before)
    assert_identical(fresh_optimizer.state_dict(), before["optimizer"], "optimizer")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(CheckpointNotFoundError, match="absent.pt does not exist") as error:
        load_checkpoint(path, model=mlp(0))
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, ValueError)
    assert not path.exists()
    with pytest.raises(ValueError, match="is not a file"):
        load_checkpoint(tmp_path, model=mlp(0))


@pytest.mark.parametrize("other, names", [
    (lambda: mlp(0, hidden=16), ["1.weight (checkpoint (32, 64), model (16, 64))", "1.bias", "4.weight"]),
    (lambda: mlp(0, depth=2), ["missing: 6.weight, 6.bias", "4.weight (checkpoint (10, 32), model (32, 32))"]),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
     ["unexpected: 4.weight, 4.bias", "1.weight (checkpoint (32, 64), model (10, 64))"]),
    (lambda: nn.Sequential(OrderedDict(encoder=nn.Linear(64, 32), hidden=nn.Linear(32, 32), head=nn.Linear(32, 10))),
     ["missing: encoder.weight, encoder.bias, hidden.weight, hidden.bias and 2 more",
      "unexpected: 1.weight, 1.bias, 4.weight, 4.bias"]),
])
def test_checkpoint_of_another_model(saved, other, names):
    path, data, _ = saved
    model = other()
    before = snapshot(model)
    with pytest.raises(ValueError, match="is for a different model") as error:
        load_checkpoint(path, model=model)
    assert str(path) in str(error.value) and all(name in str(error.value) for name in names), str(error.value)
    assert_untouched(path, data, model, before)


def test_another_optimizer_or_scheduler(saved, tmp_path):
    path, data, (trained, _, _) = saved
    model = mlp(1)
    before = snapshot(model)
    adamw = torch.optim.AdamW(model.parameters())
    with pytest.raises(ValueError, match="torch.optim.sgd.SGD, not of the optimizer given .*AdamW"):
        load_checkpoint(path, model=model, optimizer=adamw)
    split = torch.optim.SGD([{"params": list(model.parameters())[:2]}, {"params": list(model.parameters())[2:]}],
                            lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"groups of sizes \[4\], the optimizer given has groups of sizes \[2, 2\]"):
        load_checkpoint(path, model=model, optimizer=split)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=10)
    with pytest.raises(ValueError, match="StepLR, not of the scheduler given .*CosineAnnealingLR"):
        load_checkpoint(path, model=model, optimizer=sgd, scheduler=cosine)
    assert_untouched(path, data, model, before)
    assert sgd.state_dict()["state"] == {} and cosine.last_epoch == 0

    weights_only = tmp_path / "weights.pt"
    save_checkpoint(weights_only, model=mlp(2), epoch=0)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(weights_only, model=model, optimizer=sgd)
    assert_untouched(path, data, model, before)
    load_checkpoint(path, model=model)  # the weights alone, optimizer and scheduler ignored
    assert_identical(snapshot(model)["model"], snapshot(trained)["model"], "model")


def test_newer_format_version(saved):
    path, _, _ = saved
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["version"] = 2
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="format version 2; this visarch reads version 1"):
        load_checkpoint(path, model=mlp(0))


def test_loads_weights_only_onto_the_model_device(saved, monkeypatch):
    path, _, (trained, _, _) = saved
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = mlp(1)
    load_checkpoint(path, model=model)
    assert [(c.get("weights_only"), c.get("map_location")) for c in calls] == [(True, torch.device("cpu"))]
    assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), model.parameters(), strict=True))


def test_data_parallel_wrapper_is_transparent(tmp_path):
    model = mlp(0)
    save_checkpoint(tmp_path / "ckpt.pt", model=nn.DataParallel(model), epoch=0)
    assert "1.weight" in torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"]  # no "module." prefix
    plain, wrapped = mlp(1), nn.DataParallel(mlp(2))
    load_checkpoint(tmp_path / "ckpt.pt", model=plain)
    load_checkpoint(tmp_path / "ckpt.pt", model=wrapped)
    for other in (plain, wrapped.module):
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters(), strict=True))


# --- the generators of a block: fork_rng ---------------------------------------------------------------

def test_fork_rng_keeps_the_callers_generators():
    seed_all(5)
    expected = draws()  # what the caller draws next
    seed_all(5)
    with fork_rng(seed=8):
        inside = draws()
    assert_identical(draws(), expected, "after a seeded block")
    seed_all(8)  # the block's draws are those of seeding each generator by hand
    assert_identical(inside, draws(), "seeded block")

    seed_all(5)
    with fork_rng():  # no seed: the block continues from the caller's states
        assert_identical(draws(), expected, "unseeded block")
        draws()
    assert_identical(draws(), expected, "after an unseeded block")

    seed_all(5)
    with pytest.raises(KeyError), fork_rng(seed=1):
        draws()
        raise KeyError("the block fails")
    assert_identical(draws(), expected, "after a failed block")

    with fork_rng(seed=2**32 + 8):  # numpy takes seeds below 2**32: it gets the seed mod 2**32
        big = np.random.rand(3).tolist()  # noqa: NPY002
    np.random.seed(8)  # noqa: NPY002
    assert big == np.random.rand(3).tolist()  # noqa: NPY002


@pytest.mark.parametrize("seed, error, match", [(-1, ValueError, "seed must be >= 0, got -1"),
                                                (1.0, TypeError, "seed must be an int, got float")])
def test_fork_rng_refuses_bad_seeds(seed, error, match):
    seed_all(5)
    expected = draws()
    seed_all(5)
    with pytest.raises(error, match=match), fork_rng(seed=seed):
        pass
    assert_identical(draws(), expected, "draws")


# --- a training run: save_run and load_run -------------------------------------------------------------

HISTORY = {"loss": [0.5, 0.25, 0.125], "metrics": {"test accuracy": [0.25, 0.5, 0.75]}}


def rank_states():
    """Two processes' random states (each a capture_rng_state), and what each process draws next."""
    states, next_draws = [], []
    for rank in (0, 1):
        seed_all(20 + rank)
        states.append(capture_rng_state())
        next_draws.append(draws())
    return states, next_draws


@pytest.fixture
def run(tmp_path):
    """A run saved after 3 epochs by two processes, with a gradient scaler; what each process draws next,
    and what the order generator draws next."""
    model, optimizer, scheduler = build("sgd", seed=0)
    train_steps(model, optimizer, scheduler, 3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    order = torch.Generator().manual_seed(5)
    torch.randperm(10, generator=order)
    states, next_draws = rank_states()
    path = tmp_path / "run.pt"
    save_run(path, model=model, optimizer=optimizer, scheduler=scheduler, grad_scaler=scaler, epoch=3,
             history=HISTORY, rng_states=states, order_generator=order, seed=3, batch_size=32)
    return path, (model, optimizer, scheduler, scaler), next_draws, torch.randperm(10, generator=order)


def fresh_run_objects():
    model, optimizer, scheduler = build("sgd", seed=9)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu"), torch.Generator().manual_seed(0)


@pytest.mark.parametrize("rank", [0, 1])
def test_load_run_restores_every_part_of_the_run(run, rank):
    path, saved, next_draws, next_order = run
    model, optimizer, scheduler, scaler, order = fresh_run_objects()
    seed_all(99)  # a new process starts from other states
    info = load_run(path, model=model, optimizer=optimizer, scheduler=scheduler, grad_scaler=scaler,
                    order_generator=order, seed=3, batch_size=32, epochs=5, rank=rank, world_size=2)
    assert_identical(draws(), next_draws[rank], f"draws of rank {rank}")
    assert info == {"epoch": 3, "history": HISTORY}
    for name, got, want in zip(("model", "optimizer", "scheduler", "scaler"), (model, optimizer, scheduler, scaler),
                               saved, strict=True):
        assert_identical(got.state_dict(), want.state_dict(), name)
    assert scaler.get_scale() == 1024.0 and scaler.get_growth_interval() == 7
    assert torch.equal(torch.randperm(10, generator=order), next_order)


def test_run_state_without_a_scaler(tmp_path):
    model, optimizer, _ = build("sgd", seed=0)
    states, next_draws = rank_states()
    path = tmp_path / "run.pt"
    save_run(path, model=model, optimizer=optimizer, epoch=0, history={"loss": [], "metrics": {}},
             rng_states=states[:1], order_generator=torch.Generator(), seed=0, batch_size=8)
    fresh, fresh_optimizer, _, scaler, order = fresh_run_objects()
    with pytest.raises(ValueError, match="is of a run that had no gradient scaler; resume it with the same autocast"):
        load_run(path, model=fresh, optimizer=fresh_optimizer, grad_scaler=scaler, order_generator=order, seed=0,
                 batch_size=8)
    assert load_run(path, model=fresh, optimizer=fresh_optimizer, order_generator=order, seed=0,
                    batch_size=8) == {"epoch": 0, "history": {"loss": [], "metrics": {}}}
    assert_identical(draws(), next_draws[0], "draws")
    assert_identical(fresh.state_dict(), model.state_dict(), "model")


@pytest.mark.parametrize("change, match", [
    ({"seed": 4}, r"written with seed=3 and batch_size=32; resuming needs the same, got seed=4 and batch_size=32"),
    ({"batch_size": 64}, r"written with seed=3 and batch_size=32; resuming needs the same, got seed=3 and "
                         r"batch_size=64"),
    ({"world_size": 1, "rank": 0}, r"written by 2 processes; resume it with as many, not 1"),
    ({"world_size": 4}, r"written by 2 processes; resume it with as many, not 4"),
    ({"grad_scaler": None}, r"is of a run that had a gradient scaler \(float16\)"),
    ({"epochs": 2}, r"holds 3 epochs, more than epochs=2"),
    ({"rank": 2}, r"rank=2 must be below world_size=2"),
    ({"plain": True}, r"holds no training run: it was written by save_checkpoint, not by save_run"),
    ({"damage": "rng"}, r"is corrupt: rng_states\[1\]: the random-generator state does not have the layout"),
    ({"damage": "order"}, r"is corrupt: the order generator's state is not a CPU generator's"),
    ({"damage": "history"}, r"is corrupt: history holds 2 epochs' losses, but epoch=3 epochs are done"),
    ({"damage": "missing"}, r"is incomplete: its run lacks order_generator"),
])
def test_load_run_refuses_another_run_before_changing_anything(run, change, match):
    path, (trained, *_), _, _ = run
    change = dict(change)
    if change.pop("plain", False):
        save_checkpoint(path, model=trained, optimizer=run[1][1], scheduler=run[1][2], epoch=3)
    damage = change.pop("damage", None)
    if damage is not None:
        checkpoint = torch.load(path, weights_only=True)
        saved = checkpoint["extra"]["run"]
        if damage == "rng":
            saved["rng_states"][1]["python"] = (3, (1, 2), None)
        elif damage == "order":
            saved["order_generator"] = torch.zeros(3, dtype=torch.uint8)
        elif damage == "history":
            saved["history"]["loss"].pop()
        else:
            del saved["order_generator"]
        torch.save(checkpoint, path)
    data = path.read_bytes()
    model, optimizer, scheduler, scaler, order = fresh_run_objects()
    before = snapshot(model, optimizer)
    order_state, scaler_state = order.get_state(), scaler.state_dict()
    seed_all(7)
    expected = draws()
    seed_all(7)
    arguments = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "grad_scaler": scaler,
                 "order_generator": order, "seed": 3, "batch_size": 32, "epochs": 4, "rank": 1, "world_size": 2}
    with pytest.raises(ValueError, match=match) as error:
        load_run(path, **{**arguments, **change})
    if "rank=2" not in match:  # the arguments' own check names no file
        assert str(path) in str(error.value)
    assert_identical(draws(), expected, "draws")
    assert_untouched(path, data, model, before)
    assert_identical(optimizer.state_dict(), before["optimizer"], "optimizer")
    assert torch.equal(order.get_state(), order_state) and scaler.state_dict() == scaler_state


@pytest.mark.parametrize("change, error, match", [
    ({"history": {"loss": [0.5, 0.25], "metrics": {}}}, ValueError,
     r"history holds 2 epochs' losses, but epoch=3 epochs are done"),
    ({"history": [0.5, 0.25, 0.125]}, TypeError, r"history must be a dict \{\"loss\""),
    ({"history": {"loss": [1, 2, 3]}}, TypeError, r"history must be a dict"),
    ({"rng_states": []}, TypeError, r"rng_states must be a non-empty list"),
    ({"rng_states": "bad"}, TypeError, r"rng_states must be a non-empty list"),
    ({"bad_rank": 1}, ValueError, r"rng_states\[1\]: the random-generator state does not have the layout"),
    ({"order_generator": torch.zeros(3)}, TypeError, r"order_generator must be a torch.Generator, got Tensor"),
    ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
    ({"batch_size": 0}, ValueError, r"batch_size must be >= 1, got 0"),
    ({"epoch": -1}, ValueError, r"epoch must be >= 0, got -1"),
    ({"history": {"loss": [0.5, 0.25, np.float64(0.125)], "metrics": {}}}, TypeError,
     r"extra\['run'\]\['history'\]\['loss'\]\[2\]"),
])
def test_save_run_refuses_what_cannot_be_resumed(tmp_path, change, error, match):
    model, optimizer, scheduler = build("sgd", seed=0)
    states, _ = rank_states()
    change = dict(change)
    if "bad_rank" in change:
        del change["bad_rank"]
        change["rng_states"] = [states[0], {**states[1], "numpy": {"kind": "PCG64"}}]
    arguments = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "epoch": 3, "history": HISTORY,
                 "rng_states": states, "order_generator": torch.Generator(), "seed": 3, "batch_size": 32}
    with pytest.raises(error, match=match):
        save_run(tmp_path / "run.pt", **{**arguments, **change})
    assert os.listdir(tmp_path) == []
