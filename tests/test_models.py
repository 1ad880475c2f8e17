"""The model registry: every registered model passes the same checks, and bad requests fail clearly.

For every name in ``visarch.models.list_models()``:

* a small batch gives the expected output shape and finite values;
* a backward pass gives every parameter a non-zero gradient (nothing is dead or detached);
* two builds under the same seed have identical weights and outputs;
* the parameter count is exact against an independent number: a published count (torchvision's
  ResNet-50: 25,557,032) or a closed form derived here from the architecture, never the
  model's own count.

A model added to the registry without an expected count here fails ``test_every_model_is_covered``.
"""

from __future__ import annotations

import pytest
import torch

from visarch.models import create, get_config, list_models


def bottleneck_resnet_count(blocks, width, stem_params, num_classes, in_channels=3, expansion=4):
    """Parameters of a bottleneck ResNet, from the architecture: convs without bias, BN with (gamma, beta)."""
    total, channels = stem_params, width
    for i, count in enumerate(blocks):
        mid, out = width * 2**i, expansion * width * 2**i
        for b in range(count):
            total += channels * mid + 2 * mid  # 1x1 down, BN
            total += 9 * mid * mid + 2 * mid  # 3x3, BN
            total += mid * out + 2 * out  # 1x1 up, BN
            if b == 0 and (channels != out or i > 0):
                total += channels * out + 2 * out  # projection shortcut, BN
            channels = out
    return total + (0 if num_classes is None else channels * num_classes + num_classes)


EXPECTED = {  # name -> (input shape, output shape, parameter count from an independent source)
    "resnet50": ((2, 3, 32, 32), (2, 1000), 25_557_032),  # published (torchvision resnet50)
    "resnet50_cifar": ((2, 3, 32, 32), (2, 10), bottleneck_resnet_count(
        (3, 4, 6, 3), 64, stem_params=3 * 64 * 9 + 2 * 64, num_classes=10)),  # 3x3 stem conv and its BN
}


def test_every_model_is_covered():
    assert sorted(EXPECTED) == list_models()


def test_the_closed_form_reproduces_the_published_imagenet_count():
    # the same formula with the 7x7 stem and 1000 classes gives torchvision's number
    assert bottleneck_resnet_count((3, 4, 6, 3), 64, stem_params=3 * 64 * 49 + 2 * 64, num_classes=1000) == 25_557_032


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_model(name):
    input_shape, output_shape, count = EXPECTED[name]
    torch.manual_seed(0)
    model = create(name)
    assert sum(p.numel() for p in model.parameters()) == count
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == output_shape and torch.isfinite(out).all()
    out.square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead[:5]}"
    torch.manual_seed(0)
    again = create(name)
    for (n, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        if n.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # the first model's statistics moved during its forward pass
        assert torch.equal(a, b), n
    with torch.no_grad():
        assert torch.equal(again(x), out.detach())  # same weights, same batch, training mode: same output


@pytest.mark.parametrize("call, exc, match", [
    (lambda: create("resnet5"), ValueError, r"unknown model 'resnet5'; did you mean 'resnet50'"),
    (lambda: create("vgg"), ValueError, r"unknown model 'vgg' \(known: "),
    (lambda: create("resnet50", depth=50), TypeError, r"has no config fields \['depth'\]"),
    (lambda: create("resnet50", stem="tiny"), ValueError, r"stem must be 'cifar' or 'imagenet'"),
    (lambda: create("resnet50", blocks=()), ValueError, r"blocks must be a non-empty tuple"),
    (lambda: create("resnet50", num_classes=0), ValueError, r"num_classes must be None or a positive int"),
    (lambda: create("resnet50_cifar")(torch.zeros(1, 1, 8, 8)), ValueError, r"input must be \[B, 3, H, W\]"),
])
def test_bad_requests(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_overrides_reach_the_config():
    assert get_config("resnet50_cifar", num_classes=None).num_classes is None
    features = create("resnet50_cifar", num_classes=None, in_channels=1).eval()
    with torch.no_grad():
        assert features(torch.zeros(2, 1, 8, 8)).shape == (2, 2048)  # the notes' representation
