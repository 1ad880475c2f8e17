"""ConvNeXt-T against its published count and cost, the modernisation steps against the paper, bad configs."""

from __future__ import annotations

import pytest
import torch

from visarch.cost import convnext_parameters, model_macs, parameter_count
from visarch.models import create
from visarch.models.convnext import ConvNeXt, ConvNeXtConfig, modernisation_configs


def _meta(config_or_name):
    with torch.device("meta"):
        return create(config_or_name) if isinstance(config_or_name, str) else ConvNeXt(config_or_name)


def convnext_count(depths=(3, 3, 9, 3), widths=(96, 192, 384, 768)):
    """``visarch.cost.convnext_parameters`` (checked layer by layer in tests/test_cost_models.py)."""
    return convnext_parameters(ConvNeXtConfig(depths=depths, widths=widths))


def test_convnext_tiny_published_count_and_cost():
    model = _meta("convnext_tiny")
    assert convnext_count() == 28_589_128  # torchvision's published count for convnext_tiny
    assert parameter_count(model) == 28_589_128
    assert round(model_macs(model, (1, 3, 224, 224)) / 1e9, 3) == 4.456  # torchvision: 4.456 GFLOPS


def test_kernel_is_7x7_depthwise_and_layer_scale_starts_small():
    model = create("convnext_tiny")
    block = model.stages[0][0]
    conv = block.body[0]
    assert conv.kernel_size == (7, 7) and conv.groups == conv.in_channels == 96
    assert torch.all(block.gamma == 1e-6) and block.gamma.shape == (96,)


def test_modernisation_steps_match_the_papers_figure_2():
    # GFLOPs (= GMACs) in Liu et al. (2022), figure 2, to the paper's one decimal
    paper = [4.1, 4.5, 4.4, 2.4, 5.3, 4.6, 4.1, 4.2, 4.2, 4.2, 4.2, 4.2, 4.5, 4.5]
    steps = modernisation_configs()
    assert len(steps) == len(paper)
    for (name, config), gflops in zip(steps, paper, strict=True):
        macs = model_macs(_meta(config), (1, 3, 224, 224)) / 1e9
        assert abs(macs - gflops) <= 0.06, (name, macs)
    assert parameter_count(_meta(steps[0][1])) == 25_557_032  # torchvision's ResNet-50
    assert steps[-1][1] == ConvNeXtConfig()


def test_output_shape_and_minimum_input():
    model = create("convnext_tiny", depths=(1, 1, 1, 1))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)
    with pytest.raises(ValueError, match="smaller than 32x32"):
        model(torch.randn(1, 3, 31, 31))
    with pytest.raises(ValueError, match=r"input must be \[B, 3, H, W\]"):
        model(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(kernel_size=4), "kernel size K must be odd"),
    (dict(hidden_ratio=0), "hidden ratio must be > 0"),
    (dict(hidden_ratio=0.3), "is not a whole number of channels"),
    (dict(depths=(3, 3, 9)), "name the same stages"),
    (dict(widths=(96, 0, 384, 768)), "width C_2 must be >= 1"),
    (dict(norm="group"), "norm must be one of"),
    (dict(layer_scale=0.0), "layer scale gamma init must be > 0"),
    (dict(drop_path=1.0), r"drop path rate must be in \[0, 1\)"),
])
def test_bad_configs(overrides, message):
    with pytest.raises(ValueError, match=message):
        ConvNeXtConfig(**overrides)
