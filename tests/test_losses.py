"""visarch.losses: the shifted cross-entropy is torch's cross-entropy of the shifted images, its shifts
come from the generator it is given, and a network that cannot see a shift gets the unshifted loss."""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visarch.data import random_shift
from visarch.losses import shifted_cross_entropy
from visarch.train import fit


def batch(seed=0, n=16, size=8):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def classifier(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10))


@pytest.mark.parametrize("max_shift, smoothing", [(1, 0.0), (1, 0.1), (2, 0.3)])
def test_it_is_torch_cross_entropy_of_the_images_shifted_by_the_same_draws(max_shift, smoothing):
    images, labels = batch()
    model = classifier()
    loss = shifted_cross_entropy(model, images, labels, max_shift=max_shift, label_smoothing=smoothing,
                                 generator=torch.Generator().manual_seed(3))
    shifted = random_shift(images, max_shift, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loss, F.cross_entropy(model(shifted), labels, label_smoothing=smoothing))
    assert not torch.equal(shifted, images)  # the images did move


def test_a_network_blind_to_shifts_gets_the_unshifted_loss():
    # digits drawn inside a zero border of 2 pixels: a shift of at most 2 loses no ink, and a sum over the
    # pixels cannot tell where the digit sits
    images, labels = batch(n=32)
    images = F.pad(images[..., 2:-2, 2:-2], (2,) * 4)
    pooled = nn.Sequential(nn.Flatten(2), nn.Linear(64, 64, bias=False), nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        pooled[1].weight.fill_(1.0)  # every output of the first map is the sum of all pixels
    expected = F.cross_entropy(pooled(images), labels, label_smoothing=0.2)
    for seed in range(5):
        loss = shifted_cross_entropy(pooled, images, labels, max_shift=2, label_smoothing=0.2,
                                     generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)


def test_no_shift_draws_nothing_and_is_plain_cross_entropy():
    images, labels = batch()
    model = classifier()
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    loss = shifted_cross_entropy(model, images, labels, max_shift=0, label_smoothing=0.1, generator=gen)
    assert torch.equal(gen.get_state(), state)
    assert torch.equal(loss, F.cross_entropy(model(images), labels, label_smoothing=0.1))


def test_channels_last_hands_the_model_the_same_numbers_in_that_layout():
    images, labels = batch()
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1)[:, :10]

    losses = [shifted_cross_entropy(Probe(), images, labels, channels_last=flag,
                                    generator=torch.Generator().manual_seed(1)) for flag in (False, True)]
    assert seen[1].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(seen[0], seen[1]) and torch.equal(losses[0], losses[1])


def test_as_the_loss_of_fit_the_shifts_follow_fits_seed():
    images, labels = batch(n=32)
    loss_fn = functools.partial(shifted_cross_entropy, label_smoothing=0.1)
    runs = []
    for _ in range(2):
        model = classifier()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        runs.append(fit(model, loss_fn, (images, labels), epochs=2, batch_size=8, optimizer=optimizer, seed=4,
                        device="cpu").loss)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"max_shift": -1}, ValueError, "max_shift must be >= 0, got -1"),
    ({"max_shift": 1.0}, TypeError, "max_shift must be an int, got float"),
    ({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0, 1\], got 1.5"),
    ({"label_smoothing": "0.1"}, TypeError, "label_smoothing must be a real number, got str"),
])
def test_bad_arguments(kwargs, exc, match):
    images, labels = batch()
    with pytest.raises(exc, match=match):
        shifted_cross_entropy(classifier(), images, labels, **kwargs)
