"""Checkpointed runs of ``visarch.train.fit`` and the command line ``python -m visarch.train``.

* ``fit(checkpoint=..., resume=True)``: a 4-epoch run interrupted after its k-th epoch (k = 1, 2, 3) and
  resumed by a fresh model, optimizer and scheduler ends bit for bit where the uninterrupted run ends
  (parameters, batch norm's statistics, momentum, learning rate, history), with dropout and noise drawn
  from torch's, Python's and numpy's generators, and leaves the caller's random state alone; a resume
  with another seed or without a path is refused;
* ``main([...])`` (run in this process) trains a registered model on the digits and writes one JSON
  line per epoch, a checkpoint of the final model (whose test accuracy, recomputed here by hand, is the
  one recorded) and a PNG curve; ``--resume`` continues a 1-epoch run to the 2-epoch run's exact end,
  and a MobileNetV2 (dropout 0.2, batch norm) on CIFAR-10 stopped after 1 of 3 epochs and resumed ends
  bit for bit where 3 epochs in one run end (history, parameters, optimizer state);
* CIFAR-10 runs from a tiny archive in the standard format that the test writes itself, with the
  model built for 3 channels; ``--bf16``, ``--progress`` and AdamW run, and each epoch prints a summary;
* unknown model, data set or optimizer names, a missing ``--data-root``, and non-positive epochs or
  learning rates raise errors naming the condition (and the known names).
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import torch
from cifar10_archive import write_archive
from torch import nn

from visarch import models
from visarch.checkpoint import load_checkpoint
from visarch.data import digits
from visarch.train import accuracy, fit, main

# --- fit's checkpoints ---------------------------------------------------------------------------------


def dropout_bn_model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(32, 10))


class Interrupted(Exception):
    pass


def train(model, **options):
    """Four epochs of SGD with momentum and a step schedule on 512 digits; returns the history, optimizer,
    scheduler."""
    images, labels = digits("train")
    test = digits("test")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.9)
    options = {"seed": 3, **options}
    history = fit(model, noisy_loss, (images[:512], labels[:512]), epochs=4, batch_size=64, optimizer=optimizer,
                  scheduler=scheduler, evaluate=lambda m: {"test accuracy": accuracy(m, *test)}, **options)
    return history, optimizer, scheduler


def noisy_loss(model, images, labels):
    """Cross-entropy of noisy images, the noise drawn from each global generator: fit's private copies of
    all three must resume where they stopped."""
    noise = 0.05 * torch.randn_like(images) + random.gauss(0, 0.05) + float(np.random.normal(0, 0.05))  # noqa: NPY002
    return nn.functional.cross_entropy(model(images + noise), labels)


def caller_state():
    return torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()  # noqa: NPY002


def stop_after(last_epoch):
    def on_epoch_end(epoch, optimizer):
        if epoch == last_epoch:
            raise Interrupted
    return on_epoch_end


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def four_epochs():
    model = dropout_bn_model()
    history, optimizer, scheduler = train(model)
    return model, history, optimizer, scheduler


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_resumed_run_is_the_uninterrupted_run(tmp_path, four_epochs, stop):
    straight_model, straight, straight_opt, straight_sched = four_epochs
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(dropout_bn_model(), checkpoint=path, on_epoch_end=stop_after(stop - 1))  # `stop` epochs saved
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    before = caller_state()
    resumed_model = dropout_bn_model(seed=1)  # another initialisation: the checkpoint must replace it
    resumed, resumed_opt, resumed_sched = train(resumed_model, checkpoint=path, resume=True)
    after = caller_state()
    assert torch.equal(after[0], before[0]) and after[1] == before[1] and np.array_equal(after[2], before[2])
    assert resumed.loss == straight.loss and resumed.metrics == straight.metrics  # float for float
    assert_same_state(resumed_model.state_dict(), straight_model.state_dict())  # running statistics too
    for index, state in straight_opt.state_dict()["state"].items():
        assert torch.equal(resumed_opt.state_dict()["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert resumed_sched.get_last_lr() == straight_sched.get_last_lr()
    assert load_checkpoint(path, model=dropout_bn_model(), restore_rng=False)["epoch"] == 4


def test_resume_without_a_file_starts_afresh(tmp_path, four_epochs):
    model = dropout_bn_model()
    history, _, _ = train(model, checkpoint=tmp_path / "none_yet.pt", resume=True)
    assert history == four_epochs[1]
    assert (tmp_path / "none_yet.pt").exists()


def test_resume_refuses_another_seed_and_a_missing_path(tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        train(dropout_bn_model(), checkpoint=path, on_epoch_end=stop_after(0))
    with pytest.raises(ValueError, match=r"written with seed=3 and batch_size=64; resuming needs the same, "
                                         r"got seed=4"):
        train(dropout_bn_model(), checkpoint=path, resume=True, seed=4)
    with pytest.raises(ValueError, match=r"resume=True needs a checkpoint path"):
        train(dropout_bn_model(), resume=True)


# --- the command line ----------------------------------------------------------------------------------

# cvt_small is the registry's model for the 8 x 8 digits; 256 training images keep an epoch short
DIGITS_RUN = ["--model", "cvt_small", "--data", "digits", "--batch-size", "64", "--lr", "0.05", "--limit", "256"]


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_epochs")
    history = main([*DIGITS_RUN, "--epochs", "2", "--out", str(out)])
    return out, history


def saved_model(folder):
    model = models.create("cvt_small", in_channels=1, num_classes=10, image_size=8)
    epoch = load_checkpoint(folder / "checkpoint.pt", model=model, restore_rng=False)["epoch"]
    return model, epoch


def test_cli_writes_metrics_checkpoint_and_curve(two_epochs):
    out, history = two_epochs
    metrics = read_metrics(out)
    assert [list(m) for m in metrics] == [["epoch", "loss", "test_accuracy", "seconds"]] * 2
    assert [m["epoch"] for m in metrics] == [1, 2] and [m["loss"] for m in metrics] == history.loss
    assert metrics[1]["loss"] < metrics[0]["loss"] and all(m["seconds"] > 0 for m in metrics)
    model, epoch = saved_model(out)
    images, labels = digits("test")
    model.eval()
    with torch.no_grad():
        by_hand = int((model(images).argmax(1) == labels).sum()) / labels.shape[0]
    assert epoch == 2 and metrics[1]["test_accuracy"] == by_hand
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_resume_continues_to_the_same_end(two_epochs, tmp_path):
    straight, _ = two_epochs
    main([*DIGITS_RUN, "--epochs", "1", "--out", str(tmp_path)])
    first = read_metrics(tmp_path)
    main([*DIGITS_RUN, "--epochs", "2", "--out", str(tmp_path), "--resume"])
    resumed = read_metrics(tmp_path)
    assert resumed[0] == first[0] and len(resumed) == 2
    assert without_time(resumed) == without_time(read_metrics(straight))
    assert_same_state(saved_model(tmp_path)[0].state_dict(), saved_model(straight)[0].state_dict())


def test_cli_resume_with_dropout_is_bit_for_bit(tmp_path):
    # MobileNetV2 on CIFAR-10 has dropout (p = 0.2) and batch norm: its run depends on the random state
    assert [m.p for m in models.create("mobilenet_v2").modules() if isinstance(m, nn.Dropout)] == [0.2]
    write_archive(tmp_path)  # 20 training images: 2 steps an epoch
    run = ["--model", "mobilenet_v2", "--data", "cifar10", "--data-root", str(tmp_path), "--batch-size", "10",
           "--lr", "0.05"]
    straight = main([*run, "--epochs", "3", "--out", str(tmp_path / "straight")])
    main([*run, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = main([*run, "--epochs", "3", "--out", str(tmp_path / "resumed"), "--resume"])
    assert resumed.loss == straight.loss and len(set(straight.loss)) == 3
    assert without_time(read_metrics(tmp_path / "resumed")) == without_time(read_metrics(tmp_path / "straight"))
    ends = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("straight", "resumed")]
    assert_same_state(ends[1]["model"], ends[0]["model"])
    for index, state in ends[0]["optimizer"]["state"].items():
        assert torch.equal(ends[1]["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_cli_on_cifar10_builds_a_three_channel_model(tmp_path):
    write_archive(tmp_path)  # 20 training images
    out = tmp_path / "run"
    main(["--model", "cvt_small", "--data", "cifar10", "--data-root", str(tmp_path), "--epochs", "1",
          "--batch-size", "10", "--out", str(out)])
    assert len(read_metrics(out)) == 1
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert {tuple(t.shape) for t in saved.values() if t.dim() == 4 and t.shape[1] == 3} == {(16, 3, 3, 3)}


def test_cli_bf16_progress_adamw_and_summary(tmp_path, capsys):
    quick = [*DIGITS_RUN, "--epochs", "1", "--limit", "64", "--batch-size", "32", "--optimizer", "adamw",
             "--lr", "0.001"]
    reduced = main([*quick, "--out", str(tmp_path / "bf16"), "--bf16", "--progress"])
    out = capsys.readouterr().out
    assert "epochs: 100%" in out  # the bar
    assert re.search(r"epoch 1/1: loss \d\.\d{4}, test accuracy \d\.\d{4}, \d+\.\d s\n", out)  # the summary
    assert len(read_metrics(tmp_path / "bf16")) == 1
    assert reduced.loss != main([*quick, "--out", str(tmp_path / "float32")]).loss  # --bf16 reached autocast


@pytest.mark.parametrize("change, error, match", [
    ({"--model": "resnet_tiny_nope"}, ValueError, r"unknown model 'resnet_tiny_nope'.*known: .*cvt_small"),
    ({"--data": "mnist"}, ValueError, r"unknown data set 'mnist'; known: digits, cifar10"),
    ({"--data": "cifar10"}, ValueError, r"--data cifar10 needs --data-root"),
    ({"--data": "cifar10", "--data-root": "/nonexistent/cifar"}, FileNotFoundError, r"/nonexistent/cifar"),
    ({"--epochs": "0"}, ValueError, r"epochs must be >= 1, got 0"),
    ({"--lr": "0"}, ValueError, r"lr must be > 0, got 0.0"),
    ({"--lr": "-0.1"}, ValueError, r"lr must be > 0, got -0.1"),
    ({"--optimizer": "lbfgs"}, ValueError, r"unknown optimizer 'lbfgs'; known: sgd, adamw"),
])
def test_cli_refuses_bad_input(change, error, match, tmp_path):
    options = {"--model": "cvt_small", "--data": "digits", "--epochs": "1", "--out": str(tmp_path / "out"), **change}
    with pytest.raises(error, match=match):
        main([item for pair in options.items() for item in pair])
