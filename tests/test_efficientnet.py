"""EfficientNet-B0 to B3 against the paper's tables and the published parameter counts.

Independent sources, never the code under test:

* table 1 of Tan & Le (2019), row by row: operator (expansion ratio and kernel), input resolution,
  output channels and number of layers of each stage of B0;
* table 2 of the paper: 5.3, 7.8, 9.2 and 12 M parameters and 0.39, 0.70, 1.0 and 1.8 B FLOPS
  (multiply-adds) for B0 to B3 at their resolutions, to the precision printed there, with two
  exceptions: B2 has 9.11 M parameters (the paper's 9.2 M also counts batch norm's running mean and
  variance, as TensorFlow's variable count does), and B1's 0.70 B is 1.9 % above what the network
  as specified costs, 0.687 B (PyTorch's vision library lists 0.69);
* the exact counts PyTorch's vision library publishes: B0 5,288,548, B1 7,794,184, B2 9,109,994,
  B3 12,233,232;
* the scaling rules derived by hand: ceil(d L) layers per stage, channels rounded to multiples of 8;
* the MBConv rules: squeeze width a quarter of the block's input width, residual exactly when the
  stride is 1 and the widths agree, stochastic-depth probabilities 0.2 i / N.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visarch.cost import layer_costs, model_macs, parameter_count
from visarch.models import create
from visarch.models.efficientnet import MBConv
from visarch.models.layers import StochasticDepth

META = torch.device("meta")


def on_meta(name, **overrides):
    with META:
        return create(name, **overrides)


# Table 1 of the paper: stage, operator, input resolution, output channels, layers.
PAPER_B0_TABLE = [
    (1, "Conv3x3", 224, 32, 1),
    (2, "MBConv1, k3x3", 112, 16, 1),
    (3, "MBConv6, k3x3", 112, 24, 2),
    (4, "MBConv6, k5x5", 56, 40, 2),
    (5, "MBConv6, k3x3", 28, 80, 3),
    (6, "MBConv6, k5x5", 14, 112, 3),
    (7, "MBConv6, k5x5", 14, 192, 4),
    (8, "MBConv6, k3x3", 7, 320, 1),
    (9, "Conv1x1 & Pooling & FC", 7, 1280, 1),
]


def table_rows(model, size=224):
    parts = (model.stem, *model.stages, model.head)
    inputs = {row.module: row.input_shape for row in layer_costs(model, (1, 3, size, size), parts)}
    rows = [(1, f"Conv{model.stem[0].kernel_size[0]}x{model.stem[0].kernel_size[1]}", inputs[model.stem][1],
             model.stem[0].out_channels, 1)]
    for i, stage in enumerate(model.stages):
        first = stage[0]
        c_in = inputs[stage][0]
        t = first.depthwise[0].in_channels // c_in
        k = first.depthwise[0].kernel_size[0]
        rows.append((i + 2, f"MBConv{t}, k{k}x{k}", inputs[stage][1], first.project[0].out_channels, len(stage)))
    rows.append((len(rows) + 1, "Conv1x1 & Pooling & FC", inputs[model.head][1], model.head[0].out_channels, 1))
    return rows


def test_b0_follows_table_1():
    assert table_rows(on_meta("efficientnet_b0")) == PAPER_B0_TABLE


PUBLISHED = {"efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
             "efficientnet_b3": 12_233_232}
PAPER_TABLE_2 = {"efficientnet_b0": (224, 5.3, 0.39), "efficientnet_b1": (240, 7.8, 0.70),
                 "efficientnet_b2": (260, 9.2, 1.0), "efficientnet_b3": (300, 12, 1.8)}  # resolution, M params, B FLOPS


def batch_norm_parameters(model):
    return sum(parameter_count(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_published_counts_and_table_2():
    for name, count in PUBLISHED.items():
        model = on_meta(name)
        assert parameter_count(model) == count
        size, params, flops = PAPER_TABLE_2[name]
        assert model.config.resolution == size
        if name == "efficientnet_b2":  # 9.11 M; the paper's 9.2 M also counts batch norm's running statistics
            assert round((count + batch_norm_parameters(model)) / 1e6, 1) == params
        else:
            assert round(count / 1e6, 1 if params < 10 else 0) == params
        macs = model_macs(model, (1, 3, size, size)) / 1e9
        if name == "efficientnet_b1":
            assert 0.98 * flops < macs < flops  # 0.687: the paper's 0.70 is 1.9 % high
        else:
            assert round(macs, 2 if flops < 1 else 1) == flops, (name, macs)


def test_compound_scaling_rules():
    # B3: d = 1.4, w = 1.2.  Layers ceil(1.4 L) for L = 1, 2, 2, 3, 3, 4, 1 and channels 8-rounded by hand.
    model = on_meta("efficientnet_b3")
    assert [len(s) for s in model.stages] == [2, 3, 3, 5, 5, 6, 2]
    assert [s[0].project[0].out_channels for s in model.stages] == [24, 32, 48, 96, 136, 232, 384]
    assert model.stem[0].out_channels == 40 and model.head[0].out_channels == 1536
    # B1 changes only the depth: ceil(1.1 L)
    assert [len(s) for s in on_meta("efficientnet_b1").stages] == [2, 3, 3, 4, 4, 5, 2]


def test_mbconv_rules():
    model = create("efficientnet_b0")
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == 16
    for i, block in enumerate(blocks):
        c_in = block.depthwise[0].in_channels if isinstance(block.expand, nn.Identity) else block.expand[0].in_channels
        assert block.se.reduce.out_channels == max(1, c_in // 4)  # a quarter of the block's input, not its expansion
        assert isinstance(block.se.act, nn.SiLU) and isinstance(block.depthwise[2], nn.SiLU)
        assert len(block.project) == 2  # linear projection
        stride = block.depthwise[0].stride[0]
        assert block.residual == (stride == 1 and c_in == block.project[0].out_channels)
        if block.residual:
            assert block.drop.p == pytest.approx(0.2 * i / 16)
        else:
            assert isinstance(block.drop, nn.Identity)
    assert sum(b.residual for b in blocks) == 9  # (L - 1) per stage: 0 + 1 + 1 + 2 + 2 + 3 + 0


def test_stochastic_depth():
    layer = StochasticDepth(0.25)
    x = torch.ones(4000, 3, 2, 2)
    torch.manual_seed(0)
    y = layer.train()(x)
    kept = y[:, 0, 0, 0]
    assert torch.equal(kept.unique(), torch.tensor([0.0, 1 / 0.75]))  # whole images dropped or divided by 1 - p
    assert (y == y[:, :1, :1, :1]).all()  # one draw per image
    assert abs((kept == 0).float().mean().item() - 0.25) < 0.03 and abs(y.mean().item() - 1) < 0.05
    torch.manual_seed(0)
    assert torch.equal(layer(x), y)  # repeatable under a seed
    assert torch.equal(layer.eval()(x), x)  # the identity at inference
    # in a block: dropping the branch leaves exactly the input
    block = MBConv(16, 16, kernel=3, stride=1, expand_ratio=6, drop=0.999999).train()
    x = torch.randn(3, 16, 8, 8)
    torch.manual_seed(1)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("call, match", [
    (lambda: create("efficientnet_b0", width_mult=0), r"width multiplier w must be > 0, got 0"),
    (lambda: create("efficientnet_b0", depth_mult=-1.2), r"depth multiplier d must be > 0, got -1.2"),
    (lambda: create("efficientnet_b0", stages=((6, 3, 3, 32, 16, 1),)), r"stride s must be 1 or 2, got 3"),
    (lambda: create("efficientnet_b0", stages=((6, 4, 1, 32, 16, 1),)), r"kernel size k must be odd"),
    (lambda: create("efficientnet_b0", stages=((1, 3, 1, 32, 16, 1), (6, 3, 2, 24, 24, 2))),
     r"takes 24 channels but the previous stage gives 16"),
    (lambda: create("efficientnet_b0", stochastic_depth=1.0), r"stochastic_depth probability must be in \[0, 1\)"),
    (lambda: create("efficientnet_b0", resolution=16), r"resolution 16 is smaller than the network's total stride"),
    (lambda: create("efficientnet_b0")(torch.zeros(1, 3, 16, 40)),
     r"efficientnet: input 16x40 is smaller than 32x32, the network's total stride"),
    (lambda: create("efficientnet_b0")(torch.zeros(1, 3, 64)), r"input must be \[B, 3, H, W\]"),
])
def test_bad_requests(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_forward_shapes():
    torch.manual_seed(0)
    model = create("efficientnet_b0", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
        assert model(torch.randn(1, 3, 45, 33)).shape == (1, 5)
