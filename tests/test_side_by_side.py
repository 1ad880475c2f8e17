"""visarch.nn.side_by_side: K small CNNs computed as one give each network's own scores, and trained side by
side end where visarch.train.train_classifier takes each of them alone (parameters and batch norm's running
statistics), for any mix of normalizations."""

import copy

import pytest
import torch
from torch import nn

from visarch.data import digits
from visarch.nn import small_cnn
from visarch.nn.side_by_side import SideBySide, train_side_by_side
from visarch.train import train_classifier

MIX = ("batch", "batch", "group", "none", "batch", "group")  # runs of equal layers, and a layer seen again


def networks(norms, seed=0):
    torch.manual_seed(seed)
    return [small_cnn(norm) for norm in norms]


@pytest.mark.parametrize("training", [True, False])
def test_the_scores_are_each_network_s_own(training):
    nets = networks(MIX)
    for net in nets:  # running statistics that are not the initial ones, for evaluation mode
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(len(nets), 8, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # a batch of 8 for each
    scores = SideBySide(nets).train(training)(x)  # [K, 10, B]
    assert scores.shape == (len(nets), 10, 8)
    with torch.no_grad():
        for net, batch, score in zip(nets, x, scores, strict=True):
            torch.testing.assert_close(score.T, net.train(training)(batch), rtol=1e-5, atol=1e-5)


def test_training_side_by_side_is_training_each_network_alone():
    images, labels = digits("train")
    images, labels = images[:96], labels[:96]
    norms, seeds = ("batch", "group", "none", "batch"), (0, 1, 2, 3)
    nets = [networks([norm], seed)[0] for norm, seed in zip(norms, seeds, strict=True)]
    alone = copy.deepcopy(nets)
    train_side_by_side(nets, images, labels, epochs=2, batch_size=8, lr=0.05, seeds=seeds)
    for net, reference, seed in zip(nets, alone, seeds, strict=True):
        train_classifier(reference, images, labels, epochs=2, batch_size=8, lr=0.05, seed=seed, device="cpu")
        ours, theirs = net.state_dict(), reference.state_dict()
        assert ours.keys() == theirs.keys()
        for name, value in theirs.items():
            if value.is_floating_point():
                torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-5, msg=f"{seed}: {name}")
        assert not torch.equal(net[0].weight, networks([norms[seeds.index(seed)]], seed)[0][0].weight)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: SideBySide([]), TypeError, "nets must be a non-empty list"),
    (lambda: SideBySide(small_cnn("batch")), TypeError, "nets must be a non-empty list"),
    (lambda: SideBySide([small_cnn("none"), nn.Linear(2, 2)]), TypeError,
     r"nets\[1\] must be a network made by visarch.nn.small_cnn, got Linear"),
    (lambda: SideBySide(networks(["batch"]))(torch.zeros(2, 4, 1, 8, 8)), ValueError,
     r"x must be \[K=1, B, 1, 8, 8\]"),
    (lambda: train_side_by_side(networks(["none"]), torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long),
                                epochs=1, batch_size=4, lr=0.1, seeds=(0, 1)), ValueError,
     "seeds must give one seed per network: 1 networks, 2 seeds"),
    (lambda: train_side_by_side(networks(["none"]), torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long),
                                epochs=1, batch_size=16, lr=0.1, seeds=(0,)), ValueError,
     "batch_size=16 exceeds the 8 training examples"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
