"""DenseNet-BC against Huang et al. (2017) and the counts torchvision publishes.

Independent sources, never the code under test:

* table 1 of the paper: DenseNet-121/169/201 are k = 32 with blocks (6, 12, 24, 16), (6, 12, 32, 32),
  (6, 12, 48, 32); 224 x 224 input, 56, 28, 14 and 7 pixel blocks; DenseNet-161 is k = 48;
* torchvision's published parameter counts: 7,978,856 (121), 14,149,480 (169), 20,013,928 (201),
  28,681,000 (161), and its 2.834 GFLOPS (multiply-accumulates) for DenseNet-121;
* the growth-rate arithmetic c_0 + L k with halving transitions, and a closed-form parameter count
  derived by hand in ``closed_form`` below.
"""

from __future__ import annotations

import pytest
import torch

from visarch.cost import model_macs, parameter_count
from visarch.models import create, get_config
from visarch.models.densenet import DenseBlock, DenseLayer

META = torch.device("meta")
PUBLISHED = {  # name: (blocks, k, initial features, parameters)
    "DenseNet-121": ((6, 12, 24, 16), 32, 64, 7_978_856),
    "DenseNet-169": ((6, 12, 32, 32), 32, 64, 14_149_480),
    "DenseNet-201": ((6, 12, 48, 32), 32, 64, 20_013_928),
    "DenseNet-161": ((6, 12, 36, 24), 48, 96, 28_681_000),
}


def closed_form(blocks, k, c0, in_channels=3, classes=1000):
    """Stem 49*3*c0 + BN; each layer (4k + 2)c + 8k + 36k^2; each transition 2m + m * m // 2; final BN; FC."""
    total, c = 49 * in_channels * c0 + 2 * c0, c0
    for i, layers in enumerate(blocks):
        total += sum((4 * k + 2) * (c + j * k) + 8 * k + 36 * k * k for j in range(layers))
        c += layers * k
        if i < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_counts(name):
    blocks, k, c0, published = PUBLISHED[name]
    assert closed_form(blocks, k, c0) == published
    with META:
        model = create("densenet121", blocks=blocks, growth_rate=k, init_features=c0)
    assert parameter_count(model) == published


def test_densenet121_macs_and_channels():
    with META:
        model = create("densenet121")
    assert round(model_macs(model, (1, 3, 224, 224)) / 1e9, 3) == 2.834
    assert get_config("densenet121").block_outputs() == [256, 512, 1024, 1024]
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((o.shape[1], o.shape[2])))
             for m in model.features]
    with META:
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert seen == [(256, 56), (128, 28), (512, 28), (256, 14), (1024, 14), (512, 7), (1024, 7)]


def test_every_layer_reads_all_earlier_maps():
    block = DenseBlock(16, layers=5, growth_rate=8, bottleneck=4)
    assert [layer.conv1.in_channels for layer in block.layers] == [16, 24, 32, 40, 48]
    x = torch.randn(2, 16, 9, 9)
    y = block(x)
    assert y.shape == (2, 16 + 5 * 8, 9, 9)
    assert torch.equal(y[:, :16], x)  # the block's input passes through unchanged
    # the first layer's output is channels 16..23, computed from x alone
    assert torch.allclose(y[:, 16:24], block.layers[0](x))


def test_dense_layer_count():
    c, k = 40, 12
    assert parameter_count(DenseLayer(c, growth_rate=k, bottleneck=4)) == (4 * k + 2) * c + 8 * k + 36 * k * k


def test_small_forward_and_minimum_size():
    model = create("densenet121", blocks=(2, 2), growth_rate=8, init_features=16, num_classes=10)
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="smaller than 32x32"):
        model(torch.randn(1, 3, 31, 40))
    with pytest.raises(ValueError, match=r"input must be \[B, 3, H, W\]"):
        model(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("growth_rate", 0, "growth_rate must be >= 1"),
    ("bottleneck", -1, "bottleneck must be >= 1"),
    ("init_features", 2.5, "init_features must be an int"),
    ("compression", 0, r"theta must be in \(0, 1\]"),
    ("compression", 1.5, r"theta must be in \(0, 1\]"),
    ("blocks", (), r"blocks \(layers per dense block\) must be a non-empty tuple"),
    ("blocks", (6, 0), r"blocks \(layers per dense block\) must be a non-empty tuple"),
])
def test_bad_config(field, value, message):
    with pytest.raises(ValueError, match=message):
        get_config("densenet121", **{field: value})


def test_compression_to_nothing():
    with pytest.raises(ValueError, match="leaves no channel"):
        get_config("densenet121", blocks=(1, 1), growth_rate=1, init_features=1, compression=0.4)


def test_compression_one_keeps_channels():
    assert get_config("densenet121", compression=1.0).block_outputs() == [256, 640, 1408, 1920]
