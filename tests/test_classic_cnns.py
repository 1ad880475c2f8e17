"""LeNet-5, AlexNet and VGG against their papers: layer shapes, the VGG configuration table, closed-form
and published parameter counts, and clear errors for bad configurations and too-small images.

Expected numbers come from the papers (LeCun et al. 1998's layer sizes; Simonyan and Zisserman 2015's
tables 1 and 2), from torchvision's published counts, or from ``visarch.cost``'s closed forms of the layers
(convolution, linear layer) and of VGG, applied to the papers' tables, never from the models themselves.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.cost import conv_parameters as conv
from visarch.cost import linear_parameters as linear
from visarch.cost import parameter_count, vgg_parameters
from visarch.models import create, get_config


def shapes_after(model_features, x, kinds):
    """Output shape ``(C, H, W)`` after every module of ``kinds`` in a Sequential."""
    seen = []
    with torch.no_grad():
        for layer in model_features:
            x = layer(x)
            if isinstance(layer, kinds):
                seen.append(tuple(x.shape[1:]))
    return seen


# ---------------------------------------------------------------- LeNet-5

def test_lenet5_layers_follow_the_paper():
    model = create("lenet5")
    got = shapes_after(model.features, torch.zeros(1, 1, 32, 32), (nn.Tanh, nn.AvgPool2d))
    # C1, S2, C3, S4, C5 of the paper's figure 2
    assert got == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert all(m.kernel_size == (5, 5) for m in model.modules() if isinstance(m, nn.Conv2d))
    assert all(parameter_count(m) == 0 for m in model.modules() if isinstance(m, nn.AvgPool2d))


def test_lenet5_count_in_closed_form():
    expected = conv(1, 6, 5) + conv(6, 16, 5) + conv(16, 120, 5) + linear(120, 84) + linear(84, 10)
    assert expected == 61_706
    assert parameter_count(create("lenet5")) == expected
    # full C3 connections: 2,416 parameters, against the 1,516 of the paper's sparse table
    assert parameter_count(create("lenet5").features[3]) == 16 * (6 * 25 + 1) == 1_516 + 900


@pytest.mark.parametrize("call, match", [
    (lambda: create("lenet5")(torch.zeros(1, 1, 28, 28)), r"input 28x28 is smaller than 32x32, the size C5 needs"),
    (lambda: create("lenet5")(torch.zeros(1, 1, 36, 36)), r"input must be 32x32"),
    (lambda: create("lenet5")(torch.zeros(1, 3, 32, 32)), r"input must be \[B, 1, H, W\]"),
    (lambda: create("lenet5", channels=(6, 16)), r"channels \(C1, C3, C5\) must be a tuple of 3 ints"),
    (lambda: create("lenet5", num_classes=0), r"num_classes must be >= 1, got 0"),
])
def test_lenet5_bad_requests(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- AlexNet

def test_alexnet_layers_and_count():
    with torch.device("meta"):
        model = create("alexnet")
        got = shapes_after(model.features, torch.empty(1, 3, 224, 224), (nn.Conv2d, nn.MaxPool2d))
    assert got == [(64, 55, 55), (64, 27, 27), (192, 27, 27), (192, 13, 13), (384, 13, 13), (256, 13, 13),
                   (256, 13, 13), (256, 6, 6)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert (len(convs), len(linears)) == (5, 3)  # "5 convolutional layers + 3 fully-connected layers"
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    expected = (conv(3, 64, 11) + conv(64, 192, 5) + conv(192, 384, 3) + conv(384, 256, 3) + conv(256, 256, 3)
                + linear(256 * 36, 4096) + linear(4096, 4096) + linear(4096, 1000))
    assert expected == 61_100_840  # published (torchvision alexnet)
    assert parameter_count(model) == expected


def test_alexnet_smallest_image_is_63():
    # floor((H + 4 - 11) / 4) + 1 >= 15 for the three 3x3/2 pools: H >= 63, more than the total stride 32
    model = create("alexnet", hidden=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 63, 63)).shape == (1, 1000)
        assert model.features(torch.zeros(1, 3, 63, 63)).shape == (1, 256, 1, 1)
    with pytest.raises(ValueError, match=r"input 62x62 is smaller than 63x63, the smallest size .* max pools"):
        model(torch.zeros(1, 3, 62, 62))
    with pytest.raises(RuntimeError):  # what the check saves a reader from: a failure deep inside
        model.features(torch.zeros(1, 3, 62, 62))


@pytest.mark.parametrize("overrides, match", [
    ({"channels": (64, 192, 384, 256)}, r"channels \(one per convolution\) must be a tuple of 5 ints"),
    ({"dropout": 1.0}, r"dropout probability must be in \[0, 1\)"),
    ({"hidden": 0}, r"hidden must be >= 1, got 0"),
])
def test_alexnet_bad_configs(overrides, match):
    with pytest.raises(ValueError, match=match):
        create("alexnet", **overrides)


# ---------------------------------------------------------------- VGG

# Table 1 of Simonyan and Zisserman (2015), transcribed column by column ("M" = maxpool).
TABLE_1 = {
    "A": "conv3-64 M conv3-128 M conv3-256 conv3-256 M conv3-512 conv3-512 M conv3-512 conv3-512 M",
    "A-LRN": "conv3-64 LRN M conv3-128 M conv3-256 conv3-256 M conv3-512 conv3-512 M conv3-512 conv3-512 M",
    "B": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 M conv3-512 conv3-512 M "
         "conv3-512 conv3-512 M",
    "C": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv1-256 M conv3-512 conv3-512 "
         "conv1-512 M conv3-512 conv3-512 conv1-512 M",
    "D": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv3-256 M conv3-512 conv3-512 "
         "conv3-512 M conv3-512 conv3-512 conv3-512 M",
    "E": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv3-256 conv3-256 M conv3-512 "
         "conv3-512 conv3-512 conv3-512 M conv3-512 conv3-512 conv3-512 conv3-512 M",
}
WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}  # the table's header
TABLE_2_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}
PUBLISHED = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240}


def column_of(model):
    words = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            words.append(f"conv{m.kernel_size[0]}-{m.out_channels}")
        elif isinstance(m, nn.LocalResponseNorm):
            words.append("LRN")
        elif isinstance(m, nn.MaxPool2d):
            words.append("M")
    return " ".join(words)


def vgg_count(column):
    """``visarch.cost.vgg_parameters`` on the transcribed column: its stages split at the max pools, each
    "convF-C'" as (F, C')."""
    stages = [[(int(w[4]), int(w.split("-")[1])) if w.startswith("conv") else w for w in stage.split()]
              for stage in TABLE_1[column].split(" M")[:-1]]
    return vgg_parameters(get_config("vgg16", configuration=column), stages=stages)


@pytest.mark.parametrize("column", sorted(TABLE_1))
def test_vgg_columns_match_table_1(column):
    with torch.device("meta"):
        model = create("vgg16", configuration=column)
    assert column_of(model) == TABLE_1[column]
    weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert weight_layers == WEIGHT_LAYERS[column]
    assert parameter_count(model) == vgg_count(column)
    assert round(vgg_count(column) / 1e6) == TABLE_2_MILLIONS[column]


def test_vgg_registered_names_have_the_published_counts():
    for name, count in PUBLISHED.items():
        column = get_config(name).configuration
        assert vgg_count(column) == count
        with torch.device("meta"):
            assert parameter_count(create(name)) == count
    assert {name: get_config(name).configuration for name in PUBLISHED} == {
        "vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def test_vgg_shapes_through_the_stages():
    with torch.device("meta"):
        got = shapes_after(create("vgg11").features, torch.empty(1, 3, 224, 224), nn.MaxPool2d)
    assert got == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    with torch.no_grad():
        assert create("vgg11", hidden=8).eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 1000)  # 1x1 map -> 7x7


@pytest.mark.parametrize("call, match", [
    (lambda: create("vgg16", configuration="F"), r"configuration must be a column of table 1 \(A, A-LRN, B, C, D, E\)"),
    (lambda: create("vgg16", pooled=0), r"pooled must be >= 1, got 0"),
    (lambda: create("vgg16", dropout=-0.1), r"dropout ratio must be in \[0, 1\)"),
    (lambda: create("vgg11", hidden=8)(torch.zeros(1, 3, 31, 31)),
     r"VGG \(A\): input 31x31 is smaller than 32x32, the network's total stride"),
])
def test_vgg_bad_requests(call, match):
    with pytest.raises(ValueError, match=match):
        call()
