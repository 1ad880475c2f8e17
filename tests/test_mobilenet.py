"""MobileNet v1 and MobileNetV2 against the papers' tables and the authors' released numbers.

Independent sources, never the code under test:

* v1: table 1 of Howard et al. (2017), row by row (type, stride, filter shape, input size); the
  multiply-adds and parameters of their tables 6 and 7 (width multipliers 1, 0.75, 0.5, 0.25 and
  resolutions 224, 192, 160, 128), to the precision printed there; 4,231,976 parameters for
  1000 classes (the count Keras publishes for its trainable MobileNet).  The table's 13th
  separable block says stride 2, which its own next rows contradict (checked below).
* v2: table 2 of Sandler et al. (2018), row by row (t, c, n, s and the input sizes); the paper's
  300 M multiply-adds and 3.4 M parameters; the authors' TensorFlow release table (widths 0.35 to
  1.4, resolutions 96 to 224: 1001 classes, parameters without batch norm, MACs cut to whole
  millions), which pins down the width-multiplier rounding.
* the separable block's count against ``visarch.cost``'s closed form.

Large models are built on the meta device, so the file runs in a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from visarch.cost import layer_costs, model_macs, parameter_count, separable_conv_parameters
from visarch.functional import conv_output_size
from visarch.models import create, get_config
from visarch.models.mobilenet import DepthwiseSeparable, InvertedResidual

META = torch.device("meta")


def on_meta(name, **overrides):
    with META:
        return create(name, **overrides)


def without_batch_norm(model):
    return parameter_count(model) - sum(parameter_count(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def layer_rows(model, size=224):
    """(type, stride, filter shape, input size H x W x C) of every layer, in the paper's notation."""
    rows = []
    for row in layer_costs(model, (1, 3, size, size), (nn.Conv2d, nn.Linear)):
        module = row.module
        if isinstance(module, nn.Linear):
            rows.append(("FC", 1, (module.in_features, module.out_features), (1, 1, module.in_features)))
            continue
        (c, h, w), (kh, kw) = row.input_shape, module.kernel_size
        if module.groups > 1:
            assert module.groups == module.in_channels == module.out_channels
            rows.append(("Conv dw", module.stride[0], (kh, kw, c), (h, w, c)))
        else:
            rows.append(("Conv", module.stride[0], (kh, kw, c, module.out_channels), (h, w, c)))
    return rows


# Table 1 of Howard et al. (2017), transcribed: (type, stride, filter shape, input size).
PAPER_V1_TABLE = [
    ("Conv", 2, (3, 3, 3, 32), (224, 224, 3)),
    ("Conv dw", 1, (3, 3, 32), (112, 112, 32)),
    ("Conv", 1, (1, 1, 32, 64), (112, 112, 32)),
    ("Conv dw", 2, (3, 3, 64), (112, 112, 64)),
    ("Conv", 1, (1, 1, 64, 128), (56, 56, 64)),
    ("Conv dw", 1, (3, 3, 128), (56, 56, 128)),
    ("Conv", 1, (1, 1, 128, 128), (56, 56, 128)),
    ("Conv dw", 2, (3, 3, 128), (56, 56, 128)),
    ("Conv", 1, (1, 1, 128, 256), (28, 28, 128)),
    ("Conv dw", 1, (3, 3, 256), (28, 28, 256)),
    ("Conv", 1, (1, 1, 256, 256), (28, 28, 256)),
    ("Conv dw", 2, (3, 3, 256), (28, 28, 256)),
    ("Conv", 1, (1, 1, 256, 512), (14, 14, 256)),
    *[("Conv dw", 1, (3, 3, 512), (14, 14, 512)), ("Conv", 1, (1, 1, 512, 512), (14, 14, 512))] * 5,
    ("Conv dw", 2, (3, 3, 512), (14, 14, 512)),
    ("Conv", 1, (1, 1, 512, 1024), (7, 7, 512)),
    ("Conv dw", 2, (3, 3, 1024), (7, 7, 1024)),  # the paper's stride; see the test below
    ("Conv", 1, (1, 1, 1024, 1024), (7, 7, 1024)),
    ("FC", 1, (1024, 1000), (1, 1, 1024)),
]
TYPO_ROW = 25  # the 13th depthwise layer (rows counted from 0)


def test_v1_follows_table_1_except_the_stride_typo():
    rows = layer_rows(on_meta("mobilenet_v1"))
    assert len(rows) == len(PAPER_V1_TABLE) == 28  # the paper: 28 layers counting dw and pw separately
    for i, (built, paper) in enumerate(zip(rows, PAPER_V1_TABLE, strict=True)):
        if i == TYPO_ROW:
            assert built[0] == paper[0] and built[2:] == paper[2:] and (built[1], paper[1]) == (1, 2)
        else:
            assert built == paper, (i, built, paper)


def test_the_13th_block_needs_stride_1():
    # its input is 7 x 7 and the next row (and the 7 x 7 average pool) take 7 x 7 again
    assert [s for s in (1, 2) if conv_output_size(7, 3, s, 1) == 7] == [1]
    assert conv_output_size(7, 3, 2, 1) == 4


# Tables 6 and 7 of the paper: (alpha, resolution) -> (million mult-adds, million parameters).
PAPER_V1_COSTS = {(1.0, 224): (569, 4.2), (0.75, 224): (325, 2.6), (0.5, 224): (149, 1.3), (0.25, 224): (41, 0.5),
                  (1.0, 192): (418, 4.2), (1.0, 160): (290, 4.2), (1.0, 128): (186, 4.2)}


def test_v1_costs_match_tables_6_and_7():
    for (alpha, size), (madds, params) in PAPER_V1_COSTS.items():
        model = on_meta("mobilenet_v1", alpha=alpha)
        macs = model_macs(model, (1, 3, size, size)) / 1e6
        assert abs(macs - madds) < 1, (alpha, size, macs)  # the paper prints whole millions (290.7 as 290)
        assert round(parameter_count(model) / 1e6, 1) == params


def test_v1_published_count():
    assert parameter_count(on_meta("mobilenet_v1")) == 4_231_976


def test_v1_thinning_rule():
    # the authors' release: max(int(alpha * c), 8); e.g. alpha = 0.3 gives 9 channels in the stem, not 8 or 10
    model = on_meta("mobilenet_v1", alpha=0.3)
    assert model.stem[0].out_channels == 9 and model.classifier.in_features == int(1024 * 0.3)
    assert on_meta("mobilenet_v1", alpha=0.01).stem[0].out_channels == 8


def test_separable_block_count_is_the_closed_form():
    block = DepthwiseSeparable(32, 64, stride=2)
    assert parameter_count(block) == separable_conv_parameters(32, 64, 3, bias=False) + 2 * (32 + 64)


# Table 2 of Sandler et al. (2018): input (H, C), operator, t, c, n, s.
PAPER_V2_TABLE = [
    ((224, 3), "conv2d", None, 32, 1, 2),
    ((112, 32), "bottleneck", 1, 16, 1, 1),
    ((112, 16), "bottleneck", 6, 24, 2, 2),
    ((56, 24), "bottleneck", 6, 32, 3, 2),
    ((28, 32), "bottleneck", 6, 64, 4, 2),
    ((14, 64), "bottleneck", 6, 96, 3, 1),
    ((14, 96), "bottleneck", 6, 160, 3, 2),
    ((7, 160), "bottleneck", 6, 320, 1, 1),
    ((7, 320), "conv2d 1x1", None, 1280, 1, 1),
    ((7, 1280), "avgpool 7x7", None, None, 1, None),
]


def v2_rows(model, size=224):
    """The built network summarised as table 2: consecutive blocks with equal (t, c) make one row."""
    parts = (model.stem, *model.blocks, model.head)
    inputs = {row.module: row.input_shape for row in layer_costs(model, (1, 3, size, size), parts)}
    (c, h, _), stem = inputs[model.stem], model.stem[0]
    rows = [((h, c), "conv2d", None, stem.out_channels, 1, stem.stride[0])]
    for block in model.blocks:
        c_in, h, _ = inputs[block]
        t, c, s = block.depthwise[0].in_channels // c_in, block.project[0].out_channels, block.depthwise[0].stride[0]
        if rows[-1][1] == "bottleneck" and rows[-1][2:4] == (t, c):
            assert s == 1  # only the first block of a row has the row's stride
            rows[-1] = (*rows[-1][:4], rows[-1][4] + 1, rows[-1][5])
        else:
            rows.append(((h, c_in), "bottleneck", t, c, 1, s))
    c, h, _ = inputs[model.head]
    rows.append(((h, c), "conv2d 1x1", None, model.head[0].out_channels, 1, model.head[0].stride[0]))
    rows.append(((h, model.head[0].out_channels), "avgpool 7x7", None, None, 1, None))
    return rows


def test_v2_follows_table_2():
    assert v2_rows(on_meta("mobilenet_v2")) == PAPER_V2_TABLE


def test_inverted_residual_rules():
    model = create("mobilenet_v2")
    blocks = list(model.blocks)
    assert len(blocks) == sum(n for _, _, n, _ in get_config("mobilenet_v2").setting) == 17
    for block in blocks:
        c_in = block.depthwise[0].in_channels if isinstance(block.expand, nn.Identity) else block.expand[0].in_channels
        c_out, stride = block.project[0].out_channels, block.depthwise[0].stride[0]
        assert block.residual == (stride == 1 and c_in == c_out)
        assert len(block.project) == 2  # 1x1 conv and batch norm: no activation (linear bottleneck)
        assert isinstance(block.depthwise[2], nn.ReLU6) and block.depthwise[0].groups == block.depthwise[0].in_channels
        assert block.depthwise[0].kernel_size == (3, 3)  # the stride sits in the middle 3x3 layer
        assert block.project[0].stride == (1, 1) and all(m.stride == (1, 1) for m in block.expand.modules()
                                                          if isinstance(m, nn.Conv2d))
    assert sum(b.residual for b in blocks) == 10  # (n - 1) per row: 0 + 1 + 2 + 3 + 2 + 2 + 0
    # the residual really is x + F(x)
    block = InvertedResidual(16, 16, stride=1, expand_ratio=6).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.project(block.depthwise(block.expand(x))))


def test_v2_paper_costs():
    model = on_meta("mobilenet_v2")
    assert parameter_count(model) == 3_504_872  # PyTorch's vision library publishes this count
    assert math.floor(model_macs(model, (1, 3, 224, 224)) / 1e6) == 300  # "300 million multiply-adds"
    # "3.4 million parameters": the weights without batch norm, 3.47 M, cut (not rounded) to one decimal
    assert math.floor(without_batch_norm(model) / 1e5) / 10 == 3.4


# The authors' TensorFlow release table: width -> (million parameters, MACs at 224, 192, 160, 128, 96).
RELEASED_V2 = {1.4: (6.06, (582, 428, 297, 191, 108)), 1.3: (5.34, (509, None, None, None, None)),
               1.0: (3.47, (300, 221, 154, 99, 56)), 0.75: (2.61, (209, 153, 107, 69, 39)),
               0.5: (1.95, (97, 71, 50, 32, 18)), 0.35: (1.66, (59, 43, 30, 20, 11))}


def test_v2_width_multiplier_matches_the_release():
    for width, (params, macs) in RELEASED_V2.items():
        model = on_meta("mobilenet_v2", width_mult=width, num_classes=1001)  # the release has a background class
        assert round(without_batch_norm(model) / 1e6, 2) == params, width
        for size, expected in zip((224, 192, 160, 128, 96), macs, strict=True):
            if expected is not None and (size == 224 or width == 1.0 or (width, size) == (0.35, 96)):
                assert math.floor(model_macs(model, (1, 3, size, size)) / 1e6) == expected, (width, size)


@pytest.mark.parametrize("call, match", [
    (lambda: create("mobilenet_v1", alpha=0), r"width multiplier alpha must be > 0, got 0"),
    (lambda: create("mobilenet_v1", alpha=-0.5), r"width multiplier alpha must be > 0, got -0.5"),
    (lambda: create("mobilenet_v2", width_mult=0.0), r"width multiplier must be > 0, got 0.0"),
    (lambda: create("mobilenet_v2", setting=((6, 24, 2, 3),)), r"stride s must be 1 or 2, got 3"),
    (lambda: create("mobilenet_v2", setting=((0, 24, 2, 2),)), r"expansion factor t, channels c and repeats n"),
    (lambda: create("mobilenet_v2", setting=()), r"at least one row"),
    (lambda: create("mobilenet_v2", dropout=1.0), r"dropout probability must be in \[0, 1\)"),
    (lambda: create("mobilenet_v1", num_classes=0), r"num_classes must be >= 1"),
    (lambda: create("mobilenet_v1")(torch.zeros(1, 3, 16, 16)),
     r"mobilenet_v1: input 16x16 is smaller than 32x32, the network's total stride"),
    (lambda: create("mobilenet_v2")(torch.zeros(1, 3, 31, 64)), r"input 31x64 is smaller than 32x32"),
    (lambda: create("mobilenet_v2")(torch.zeros(1, 1, 64, 64)), r"input must be \[B, 3, H, W\]"),
])
def test_bad_requests(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_small_inputs_and_batch_of_two():
    for name in ("mobilenet_v1", "mobilenet_v2"):
        torch.manual_seed(0)
        model = create(name, num_classes=7).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
            assert model(torch.randn(1, 3, 50, 70)).shape == (1, 7)  # any size >= 32, not only multiples
