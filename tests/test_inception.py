"""GoogLeNet and the Inception-ResNet-v2 blocks against their papers.

Expected numbers: the widths and output sizes of Szegedy et al. (2015), table 1; torchvision's published
GoogLeNet counts (6,624,904 and 13,004,888); the block shapes of Szegedy et al. (2017), figures 7 and 16-19;
``visarch.cost.googlenet_parameters`` applied to the transcribed table; and the counts of hand-built torch
layers (a bias-free convolution with its batch norm) summed over the blocks' figures.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.cost import googlenet_parameters, parameter_count
from visarch.models import create, get_config
from visarch.models.googlenet import googlenet_loss
from visarch.models.inception_resnet import (
    InceptionResNetA,
    InceptionResNetB,
    InceptionResNetC,
    ReductionA,
    ReductionB,
)

# table 1 of the 2015 paper: module -> (input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
TABLE_1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
OUTPUT_SIZE = {"3a": (256, 28), "3b": (480, 28), "4a": (512, 14), "4b": (512, 14), "4c": (512, 14),
               "4d": (528, 14), "4e": (832, 14), "5a": (832, 7), "5b": (1024, 7)}  # the table's output size


def conv_bn(c_in, c_out, fh, fw=None):
    """torch's count of a bias-free F_h x F_w convolution and its batch norm."""
    with torch.device("meta"):
        return parameter_count(nn.Sequential(nn.Conv2d(c_in, c_out, (fh, fw or fh), bias=False), nn.BatchNorm2d(c_out)))


def linear_conv(c_in, c_out):
    """torch's count of the blocks' final 1 x 1 convolution with bias (the figures' "Linear")."""
    with torch.device("meta"):
        return parameter_count(nn.Conv2d(c_in, c_out, 1))


def googlenet_count(kernel_5x5, aux):
    name = "googlenet_aux" if aux else "googlenet"
    return googlenet_parameters(get_config(name, kernel_5x5=kernel_5x5), modules=TABLE_1)


def test_googlenet_counts():
    assert googlenet_count(3, aux=False) == 6_624_904  # published: the 3x3 "5x5" branch reproduces it
    assert googlenet_count(3, aux=True) == 13_004_888
    for kernel in (3, 5):
        for aux, name in ((False, "googlenet"), (True, "googlenet_aux")):
            with torch.device("meta"):
                assert parameter_count(create(name, kernel_5x5=kernel)) == googlenet_count(kernel, aux)


def test_googlenet_module_widths_and_shapes():
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        model = create("googlenet").eval()
        seen = {}
        hooks = [model.blocks[name].register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, (o.shape[1], o.shape[2]))) for name in TABLE_1]
        assert tuple(model.stem(torch.empty(1, 3, 224, 224)).shape[1:]) == (192, 28, 28)  # the stem: 224 to 28
        assert model(torch.empty(1, 3, 224, 224)).shape == (1, 1000)
    for h in hooks:
        h.remove()
    assert seen == OUTPUT_SIZE
    previous = 192  # the stem's output
    for name, (c, n1, _, n3, _, n5, p) in TABLE_1.items():
        assert c == previous and n1 + n3 + n5 + p == OUTPUT_SIZE[name][0]  # widths chain; concat = output
        previous = OUTPUT_SIZE[name][0]


def test_pool_branch_pools_before_its_projection():
    branch = create("googlenet").blocks["3a"].branch4
    assert isinstance(branch[0], nn.MaxPool2d) and isinstance(branch[1][0], nn.Conv2d)
    assert branch[1][0].kernel_size == (1, 1) and branch[1][0].in_channels == 192


def test_auxiliary_heads_train_only():
    torch.manual_seed(0)
    model = create("googlenet_aux")
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    main, aux1, aux2 = model(x)  # training mode: (main, aux on 4a, aux on 4d)
    assert main.shape == aux1.shape == aux2.shape == (2, 1000)
    loss = googlenet_loss(model, x, labels)
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)
    # in evaluation mode the heads are not run: the output does not depend on them
    for p in model.aux.parameters():
        p.data.fill_(1e3)
    with torch.no_grad():
        assert torch.equal(model(x), out)
    assert googlenet_loss(model, x, labels) == nn.functional.cross_entropy(out, labels)


@pytest.mark.parametrize("call, match", [
    (lambda: create("googlenet", kernel_5x5=4), r"kernel_5x5 must be odd"),
    (lambda: create("googlenet", dropout=1.5), r"dropout probability must be in \[0, 1\)"),
    (lambda: create("googlenet", num_classes=0), r"num_classes must be >= 1"),
    (lambda: create("googlenet")(torch.zeros(1, 3, 31, 31)), r"input 31x31 is smaller than 32x32"),
    (lambda: create("googlenet")(torch.zeros(1, 1, 64, 64)), r"input must be \[B, 3, H, W\]"),
])
def test_googlenet_bad_requests(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- Inception-ResNet-v2 blocks

@pytest.mark.parametrize("block, shape_in, shape_out", [
    (lambda: InceptionResNetA(), (384, 35, 35), (384, 35, 35)),  # figure 16
    (lambda: ReductionA(), (384, 35, 35), (1152, 17, 17)),  # figure 7 with k, l, m, n = 256, 256, 384, 384
    (lambda: InceptionResNetB(), (1152, 17, 17), (1152, 17, 17)),  # figure 17
    (lambda: ReductionB(), (1152, 17, 17), (2144, 8, 8)),  # figure 18
    (lambda: InceptionResNetC(), (2144, 8, 8), (2144, 8, 8)),  # figure 19
])
def test_inception_resnet_block_shapes(block, shape_in, shape_out):
    with torch.no_grad():
        assert tuple(block().eval()(torch.randn(1, *shape_in)).shape[1:]) == shape_out


def test_inception_resnet_block_counts():
    a = (conv_bn(384, 32, 1) + conv_bn(384, 32, 1) + conv_bn(32, 32, 3) + conv_bn(384, 32, 1) + conv_bn(32, 48, 3)
         + conv_bn(48, 64, 3) + linear_conv(128, 384))
    b = conv_bn(1152, 192, 1) + conv_bn(1152, 128, 1) + conv_bn(128, 160, 1, 7) + conv_bn(160, 192, 7, 1) \
        + linear_conv(384, 1152)
    c = conv_bn(2144, 192, 1) + conv_bn(2144, 192, 1) + conv_bn(192, 224, 1, 3) + conv_bn(224, 256, 3, 1) \
        + linear_conv(448, 2144)
    red_a = conv_bn(384, 384, 3) + conv_bn(384, 256, 1) + conv_bn(256, 256, 3) + conv_bn(256, 384, 3)
    red_b = 3 * conv_bn(1152, 256, 1) + conv_bn(256, 384, 3) + conv_bn(256, 288, 3) + conv_bn(256, 288, 3) \
        + conv_bn(288, 320, 3)
    for block, count in ((InceptionResNetA(), a), (InceptionResNetB(), b), (InceptionResNetC(), c),
                         (ReductionA(), red_a), (ReductionB(), red_b)):
        assert parameter_count(block) == count


def test_block_b_has_two_branches_and_two_reducing_1x1_convolutions():
    block = InceptionResNetB()
    assert len(block.branches) == 2
    reading_input = [m for m in block.branches.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 1152]
    assert [m.kernel_size for m in reading_input] == [(1, 1), (1, 1)]


@pytest.mark.parametrize("scale", [1.0, 0.3, 0.1])
def test_residual_scaling_is_relu_of_x_plus_scaled_residual(scale):
    torch.manual_seed(0)
    block = InceptionResNetA(64, scale=scale).eval()
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x + scale * block.residual(x)))


@pytest.mark.parametrize("scale", [0, -0.1])
def test_residual_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match=r"residual scale must be > 0"):
        InceptionResNetB(64, scale=scale)
