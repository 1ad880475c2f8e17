"""``visarch.train``: the loop learns, is reproducible, and refuses bad arguments.

* on the digits, a linear classifier's training loss falls and its test accuracy is far above
  chance (10 %) after two epochs;
* the same seed and initialisation give the same losses, float for float; another seed does not;
* ``make_optimizer`` replaces the default SGD: an optimizer built from the same parameters gives
  the same losses as the default path with the same hyperparameters;
* ``accuracy`` is 1 for a model that outputs the one-hot label and 0 for one that never does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.data import digits
from visarch.train import accuracy, train_classifier


def linear_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_loss_falls_and_accuracy_beats_chance():
    images, labels = digits("train")
    model = linear_model(0)
    losses = train_classifier(model, images, labels, epochs=2, batch_size=32, lr=0.1)
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
    assert adam != default and adam[1] < adam[0]


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
