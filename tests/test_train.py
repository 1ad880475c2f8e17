"""``visarch.train``: the loop learns, is reproducible, and refuses bad arguments.

* on the digits, a linear classifier's training loss falls and its test accuracy is far above
  chance (10 %) after two epochs;
* the same seed and initialisation give the same losses, float for float; another seed does not;
* ``make_optimizer`` replaces the default SGD: an optimizer built from the same parameters gives
  the same losses as the default path with the same hyperparameters;
* ``accuracy`` is 1 for a model that outputs the one-hot label and 0 for one that never does;
* ``fit`` records what ``evaluate`` returns each epoch, draws the same dropout masks and the same noise
  from torch's, Python's and numpy's global generators under the same seed without disturbing the
  caller's random state, steps a scheduler once per optimizer step, and refuses tensors of different
  lengths and negative seeds;
* ``training_curve`` (the command line's figure) draws the history's loss on a log scale and its test
  accuracy from 0 to 1, with the epochs numbered from 1, and refuses a history without accuracies;
* every name the pages import from ``visarch.train`` is there.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import visarch.train
from visarch.data import digits
from visarch.train import History, accuracy, fit, train_classifier
from visarch.train.curve import training_curve


def linear_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_loss_falls_and_accuracy_beats_chance():
    images, labels = digits("train")
    model = linear_model(0)
    losses = train_classifier(model, images, labels, epochs=2, batch_size=32, lr=0.1).loss
    assert len(losses) == 2 and losses[1] < losses[0]
    assert accuracy(model, *digits("test")) > 0.8


def test_reproducible_with_a_seed():
    images, labels = digits("train")
    runs = [train_classifier(linear_model(0), images, labels, epochs=2, batch_size=16, lr=0.05, seed=s)
            for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


class OneHot(nn.Module):
    """Scores that put all the weight on a class read from the image's first pixel."""

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()


def test_make_optimizer_is_used():
    images, labels = digits("train")
    default = train_classifier(linear_model(0), images, labels, epochs=2, batch_size=32, lr=0.05, momentum=0.5)
    built = train_classifier(linear_model(0), images, labels, epochs=2, batch_size=32,
                             make_optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.5))
    assert built == default
    adam = train_classifier(linear_model(0), images, labels, epochs=2, batch_size=32,
                            make_optimizer=lambda params: torch.optim.Adam(params, lr=0.01))
    assert adam != default and adam.loss[1] < adam.loss[0]


def test_on_epoch_end_sees_every_epoch_and_the_optimizer():
    images, labels = digits("train")
    seen = []
    losses = train_classifier(linear_model(0), images, labels, epochs=3, batch_size=64, lr=0.1,
                              on_epoch_end=lambda epoch, opt: seen.append((epoch, type(opt).__name__)))
    assert seen == [(0, "SGD"), (1, "SGD"), (2, "SGD")]
    assert losses == train_classifier(linear_model(0), images, labels, epochs=3, batch_size=64, lr=0.1)


def test_accuracy_counts_argmax_hits():
    labels = torch.arange(10).repeat(3)
    images = torch.zeros(30, 1, 2, 2)
    images[:, 0, 0, 0] = labels.float()
    assert accuracy(OneHot(), images, labels, batch_size=7) == 1.0
    assert accuracy(OneHot(), images, (labels + 1) % 10) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, r"epochs must be >= 1, got 0"),
    ({"batch_size": 0}, r"batch_size must be >= 1, got 0"),
    ({"batch_size": 31}, r"batch_size=31 exceeds the 30 training examples"),
    ({"labels": torch.zeros(29, dtype=torch.int64)}, r"same length, got 30 and 29"),
    ({"lr": None}, r"lr is required unless make_optimizer is given"),
    ({"make_optimizer": torch.optim.Adam}, r"with make_optimizer, give lr"),
])
def test_bad_arguments_raise(kwargs, match):
    args = {"model": linear_model(0), "images": torch.zeros(30, 1, 8, 8),
            "labels": torch.zeros(30, dtype=torch.int64), "epochs": 1, "batch_size": 4, "lr": 0.1}
    with pytest.raises(ValueError, match=match):
        train_classifier(**{**args, **kwargs})


def test_fit_records_metrics_each_epoch():
    images, labels = digits("train")
    test = digits("test")
    model = linear_model(0)
    history = fit(model, lambda m, x, y: nn.functional.cross_entropy(m(x), y), (images, labels), epochs=3,
                  batch_size=64, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                  evaluate=lambda m: {"test accuracy": accuracy(m, *test)})
    assert isinstance(history, History) and len(history.loss) == 3
    assert list(history.metrics) == ["test accuracy"] and len(history.metrics["test accuracy"]) == 3
    assert history.metrics["test accuracy"][-1] == accuracy(model, *test) > 0.8


def noisy_dropout_loss(model, images, labels):
    """Cross-entropy of noisy images: noise from each global generator (torch's, Python's, numpy's)."""
    noise = 0.05 * torch.randn_like(images) + random.gauss(0, 0.05) + float(np.random.normal(0, 0.05))  # noqa: NPY002
    return nn.functional.cross_entropy(model(images + noise), labels)


def dropout_run(seed):
    """Losses of a model with dropout and noisy inputs, built from a fixed initialisation without touching
    the caller's random state, so that only ``seed`` can change the masks and the noise."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10))
    images, labels = digits("train")
    return fit(model, noisy_dropout_loss, (images[:256], labels[:256]), epochs=2, batch_size=32, seed=seed,
               optimizer=torch.optim.SGD(model.parameters(), lr=0.1)).loss


def caller_state():
    return torch.random.get_rng_state(), random.getstate(), np.random.get_state()  # noqa: NPY002


def assert_same_caller_state(a, b):
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert a[2][0] == b[2][0] and np.array_equal(a[2][1], b[2][1]) and a[2][2:] == b[2][2:]


def test_dropout_and_noise_are_seeded_and_the_callers_random_state_is_kept():
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)  # noqa: NPY002
    state = caller_state()
    first = dropout_run(1)
    assert_same_caller_state(state, caller_state())  # training drew from private copies
    torch.manual_seed(456)  # another caller state changes nothing either
    random.seed(456)
    np.random.seed(456)  # noqa: NPY002
    assert dropout_run(1) == first and dropout_run(2) != first


def test_scheduler_steps_once_per_optimizer_step():
    images, labels = digits("train")
    model = linear_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    fit(model, lambda m, x, y: nn.functional.cross_entropy(m(x), y), (images, labels), epochs=2,
        batch_size=100, optimizer=optimizer, scheduler=scheduler)
    assert optimizer.param_groups[0]["lr"] == 0.5 ** (2 * (images.shape[0] // 100))


@pytest.mark.parametrize("tensors, error, match", [
    ((), TypeError, r"tensors must be a non-empty tuple of tensors"),
    ((torch.zeros(4), torch.zeros(4), torch.zeros(3)), ValueError, r"same length, got 4 and 4 and 3"),
])
def test_fit_refuses_bad_tensors(tensors, error, match):
    model = linear_model(0)
    with pytest.raises(error, match=match):
        fit(model, lambda m, *batch: 0, tensors, epochs=1, batch_size=1,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_fit_refuses_a_negative_seed():
    model = linear_model(0)
    with pytest.raises(ValueError, match=r"seed must be >= 0, got -1"):
        fit(model, lambda m, *batch: 0, (torch.zeros(4),), epochs=1, batch_size=1, seed=-1,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_training_curve_draws_loss_and_accuracy_by_epoch():
    history = History(loss=[2.0, 1.0, 0.5], metrics={"test_accuracy": [0.25, 0.5, 0.75], "seconds": [1, 1, 1]})
    fig = training_curve(history, title="a run")
    loss_ax, accuracy_ax = fig.axes
    for ax, values in ((loss_ax, history.loss), (accuracy_ax, history.metrics["test_accuracy"])):
        (line,) = ax.lines
        assert list(line.get_ydata()) == values and line.get_marker() == "o"
        fig.canvas.draw()  # tick labels are made when the figure is drawn
        labels = {t.get_position()[0]: t.get_text() for t in ax.get_xticklabels()}
        assert all(labels[x] == str(int(x) + 1) for x in (0.0, 1.0, 2.0)), labels  # epoch 1 is drawn at 0
        assert ax.get_xlabel() == "epoch"
    assert loss_ax.get_yscale() == "log" and accuracy_ax.get_yscale() == "linear"
    assert accuracy_ax.get_ylim() == (0, 1) and fig.texts[0].get_text() == "a run"
    with pytest.raises(ValueError, match=r"history.metrics must hold 'test_accuracy', got \['seconds'\]"):
        training_curve(History(loss=[1.0], metrics={"seconds": [1.0]}))
    with pytest.raises(ValueError, match=r"history holds no epoch to draw"):
        training_curve(History(metrics={"test_accuracy": []}))


def test_the_names_pages_import_are_in_visarch_train():
    names = {"History", "accuracy", "default_device", "fit", "main", "train_classifier"}
    assert names <= set(visarch.train.__all__) and all(callable(getattr(visarch.train, n)) for n in names)
