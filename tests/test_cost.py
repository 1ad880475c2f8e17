"""The closed-form counts of ``visarch.cost`` agree with what torch builds and counts.

What this file proves, each time against torch and never the other way round:

* ``conv_parameters`` equals ``sum(p.numel() for p in torch.nn.Conv2d(...).parameters())``
  for standard, grouped and depthwise layers (channel multiplier m >= 1), with and
  without bias, square and rectangular filters;
* ``conv_macs`` equals half the FLOPs that ``torch.utils.flop_counter.FlopCounterMode``
  counts for the same layer's forward pass on one image (torch counts a convolution as
  2 FLOPs per multiply-accumulate and ignores the bias: checked on a 1x1 case first);
* ``separable_conv_parameters`` and ``separable_conv_macs`` equal the same torch counts
  for a depthwise layer followed by a pointwise layer, as an ``nn.Sequential``;
* ``model_macs`` of a small network is the sum of its layers' closed forms (elementwise layers
  count nothing), per batch, the same on the meta device as on the CPU;
* ``layer_costs`` records, for the layers one names, the shapes they see when run by hand, torch's
  parameter count and the MACs of the closed forms, in the order of the forward pass;
* the notes' claims hold for the formulas: G times fewer weights and MACs, and the
  separable/standard cost ratio 1/C' + 1/F^2;
* bad arguments raise the documented exception with a message naming the violated condition.

Layers are built on the ``meta`` device: torch allocates no memory and runs no
arithmetic, but shapes, parameter counts and the FLOP counter behave as on the CPU.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from visarch.cost import (
    conv_macs,
    conv_parameters,
    forward_macs,
    layer_costs,
    model_macs,
    parameter_count,
    separable_conv_macs,
    separable_conv_parameters,
)
from visarch.models import create_on_meta

META = torch.device("meta")


def torch_parameters(module):
    return sum(p.numel() for p in module.parameters())


def torch_macs_and_output(module, c_in, h, w):
    """Multiply-accumulates torch's FLOP counter sees for one [1, C, H, W] image, and the output size."""
    with FlopCounterMode(display=False) as counter:
        y = module(torch.empty(1, c_in, h, w, device=META))  # [1, C', H', W']
    flops = counter.get_total_flops()
    assert flops % 2 == 0, "torch counts 2 FLOPs per multiply-accumulate"
    return flops // 2, tuple(y.shape[2:])


def test_torch_counts_two_flops_per_mac_and_no_bias():
    """The convention the other tests rely on, on a layer small enough to count by hand.

    Conv2d(1, 1, 1) with bias on a 1x1 image computes y = w * x + b: one multiply-accumulate
    (plus one bias addition); torch reports 2 FLOPs.  On a 2x3 image it is 6 MACs, 12 FLOPs.
    """
    layer = nn.Conv2d(1, 1, 1, bias=True)
    for h, w, macs in ((1, 1, 1), (2, 3, 6)):
        with FlopCounterMode(display=False) as counter:
            layer(torch.randn(1, 1, h, w))
        assert counter.get_total_flops() == 2 * macs


# --------------------------------------------------------------------------- random layers


@dataclasses.dataclass(frozen=True)
class Layer:
    c_in: int
    c_out: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    h: int
    w: int
    bias: bool

    def module(self):
        return nn.Conv2d(self.c_in, self.c_out, self.kernel, stride=self.stride, padding=self.padding,
                         groups=self.groups, bias=self.bias, device=META)


@st.composite
def layers(draw, kind):
    """Random layers of one kind: 'standard' (G = 1), 'grouped' (any G), 'depthwise' (G = C, C' = mC)."""
    if kind == "standard":
        groups, c_in, c_out = 1, draw(st.integers(1, 16)), draw(st.integers(1, 16))
    elif kind == "grouped":
        groups = draw(st.integers(1, 8))
        c_in, c_out = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    else:
        groups = c_in = draw(st.integers(1, 16))
        c_out = c_in * draw(st.integers(1, 4))  # channel multiplier m
    fh, fw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    return Layer(
        c_in, c_out, groups, (fh, fw),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(ph, pw),
        h=draw(st.integers(max(1, fh - 2 * ph), 40)),
        w=draw(st.integers(max(1, fw - 2 * pw), 40)),
        bias=draw(st.booleans()),
    )


@pytest.mark.parametrize("kind", ["standard", "grouped", "depthwise"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_conv_counts_match_torch(kind, data):
    layer = data.draw(layers(kind))
    module = layer.module()
    kernel = layer.kernel[0] if layer.kernel[0] == layer.kernel[1] else layer.kernel  # int or pair
    assert conv_parameters(layer.c_in, layer.c_out, kernel, groups=layer.groups, bias=layer.bias) \
        == torch_parameters(module)
    macs, output_size = torch_macs_and_output(module, layer.c_in, layer.h, layer.w)
    assert conv_macs(layer.c_in, layer.c_out, kernel, output_size, groups=layer.groups) == macs


@settings(max_examples=200, deadline=None)
@given(layer=layers("depthwise"), c_out=st.integers(1, 32))
def test_separable_counts_match_torch(layer, c_out):
    multiplier = layer.c_out // layer.c_in
    module = nn.Sequential(
        layer.module(),  # depthwise: C -> mC, groups = C
        nn.Conv2d(layer.c_out, c_out, 1, bias=layer.bias, device=META),  # pointwise: mC -> C'
    )
    assert separable_conv_parameters(layer.c_in, c_out, layer.kernel, multiplier=multiplier,
                                     bias=layer.bias) == torch_parameters(module)
    macs, output_size = torch_macs_and_output(module, layer.c_in, layer.h, layer.w)
    assert separable_conv_macs(layer.c_in, c_out, layer.kernel, output_size, multiplier=multiplier) == macs


@settings(max_examples=200, deadline=None)
@given(groups=st.integers(1, 64), a=st.integers(1, 64), b=st.integers(1, 64), f=st.integers(1, 7),
       h=st.integers(1, 64))
def test_groups_divide_weights_and_macs_exactly(groups, a, b, f, h):
    """The notes' "G times fewer parameters / FLOPs": exact for weights and MACs."""
    c_in, c_out = groups * a, groups * b
    assert groups * conv_parameters(c_in, c_out, f, groups=groups, bias=False) \
        == conv_parameters(c_in, c_out, f, bias=False)
    assert groups * conv_macs(c_in, c_out, f, h, groups=groups) == conv_macs(c_in, c_out, f, h)
    with_bias = Fraction(conv_parameters(c_in, c_out, f), conv_parameters(c_in, c_out, f, groups=groups, bias=True))
    assert with_bias <= groups and (with_bias == groups) == (groups == 1)  # the bias does not shrink


@settings(max_examples=200, deadline=None)
@given(c_in=st.integers(1, 512), c_out=st.integers(1, 512), f=st.integers(1, 7), h=st.integers(1, 64))
def test_separable_to_standard_ratio(c_in, c_out, f, h):
    """MACs and weights of separable over standard are both 1/C' + 1/F^2 (m = 1, square filter)."""
    expected = Fraction(1, c_out) + Fraction(1, f * f)
    assert Fraction(separable_conv_macs(c_in, c_out, f, h), conv_macs(c_in, c_out, f, h)) == expected
    assert Fraction(separable_conv_parameters(c_in, c_out, f, bias=False),
                    conv_parameters(c_in, c_out, f, bias=False)) == expected


# --------------------------------------------------------------------------- bad input

VALID = {"c_in": 4, "c_out": 6, "kernel_size": 3, "output_size": 5, "groups": 2, "bias": True, "multiplier": 1}
FUNCTIONS = {
    "conv_parameters": (conv_parameters, ("c_in", "c_out", "kernel_size"), ("groups", "bias")),
    "conv_macs": (conv_macs, ("c_in", "c_out", "kernel_size", "output_size"), ("groups",)),
    "separable_conv_parameters": (separable_conv_parameters, ("c_in", "c_out", "kernel_size"),
                                  ("multiplier", "bias")),
    "separable_conv_macs": (separable_conv_macs, ("c_in", "c_out", "kernel_size", "output_size"),
                            ("multiplier",)),
}


def call(name, **changes):
    fn, positional, keywords = FUNCTIONS[name]
    args = {**VALID, **changes}
    return fn(*(args[k] for k in positional), **{k: args[k] for k in keywords})


BAD_CASES = [  # (argument changes, exception, message regex); each applies to every function taking them
    ({"c_in": 5, "groups": 2}, ValueError, r"input channels C=5 are not divisible by groups G=2"),
    ({"c_out": 5, "groups": 2}, ValueError, r"output channels C'=5 are not divisible by groups G=2"),
    ({"groups": 0}, ValueError, r"number of groups G must be >= 1, got 0"),
    ({"groups": 2.0}, TypeError, r"number of groups G must be an int, got float"),
    ({"c_in": 0}, ValueError, r"input channels C must be >= 1, got 0"),
    ({"c_in": -4}, ValueError, r"input channels C must be >= 1, got -4"),
    ({"c_out": 0}, ValueError, r"output channels C' must be >= 1, got 0"),
    ({"c_in": True}, TypeError, r"input channels C must be an int, got bool"),
    ({"c_out": "6"}, TypeError, r"output channels C' must be an int, got str"),
    ({"kernel_size": 0}, ValueError, r"kernel_size F must be >= 1, got 0"),
    ({"kernel_size": (3, 0)}, ValueError, r"kernel_size F must be >= 1, got \(3, 0\)"),
    ({"kernel_size": 3.0}, TypeError, r"kernel_size F must be an int or a pair of ints, got 3\.0"),
    ({"kernel_size": (3, 3, 3)}, TypeError, r"kernel_size F must be an int or a pair of ints, got \(3, 3, 3\)"),
    ({"output_size": 0}, ValueError, r"output_size H' must be >= 1, got 0"),
    ({"output_size": (5, -1)}, ValueError, r"output_size H' must be >= 1, got \(5, -1\)"),
    ({"output_size": None}, TypeError, r"output_size H' must be an int or a pair of ints, got None"),
    ({"bias": 1}, TypeError, r"bias must be a bool, got int"),
    ({"bias": None}, TypeError, r"bias must be a bool, got NoneType"),
    ({"multiplier": 0}, ValueError, r"channel multiplier m must be >= 1, got 0"),
    ({"multiplier": 1.5}, TypeError, r"channel multiplier m must be an int, got float"),
]


def bad_case_params():
    for changes, exc, match in BAD_CASES:
        for name, (_, positional, keywords) in FUNCTIONS.items():
            if set(changes) <= set(positional + keywords):
                yield pytest.param(name, changes, exc, match, id=f"{name}-{changes}")


@pytest.mark.parametrize("name, changes, exc, match", list(bad_case_params()))
def test_bad_input_raises(name, changes, exc, match):
    with pytest.raises(exc, match=match):
        call(name, **changes)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_valid_args_are_valid(name):
    """The base call of the table works, so each case fails for the one change it makes."""
    assert call(name) > 0


def test_parameter_count_counts_entries_once():
    linear = nn.Linear(3, 4)  # 3 x 4 weights and 4 biases
    assert parameter_count(linear) == 16
    assert parameter_count(nn.Sequential(linear, nn.ReLU(), linear)) == 16  # shared, counted once
    with META:
        assert parameter_count(nn.Conv2d(8, 6, 3, groups=2)) == 6 * 4 * 9 + 6
    assert parameter_count(nn.ReLU()) == 0



def small_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 5))


def test_forward_macs_counts_products_of_any_function():
    """A matrix product [n, k] x [k, m] is n k m MACs; two of them add; a module or a plain function, with
    several arguments, real or on the meta device."""
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert forward_macs(torch.matmul, a, b) == 3 * 4 * 5
    assert forward_macs(lambda x, y: (x @ y) @ y.T, a, b) == 3 * 4 * 5 + 3 * 5 * 4
    linear = nn.Linear(4, 6)
    assert forward_macs(linear, a) == 3 * 4 * 6
    with META:
        meta_linear = nn.Linear(4, 6)
    assert forward_macs(meta_linear, torch.empty(7, 4, device="meta")) == 7 * 4 * 6
    with pytest.raises(TypeError, match="fn must be a module or a function, got int"):
        forward_macs(3, a)


def test_model_macs_is_the_closed_form_sum_over_a_network():
    """A small network's MACs: the sum of ``conv_macs`` over its convolutions plus the linear layer's
    in * out, the same on the meta device as on the CPU; ReLU, batch norm and pooling add nothing."""
    expected = conv_macs(3, 8, 3, (8, 8)) + conv_macs(8, 8, 3, (8, 8), groups=4) + 128 * 5
    assert model_macs(small_net(), (1, 3, 16, 16), device="cpu") == expected
    assert model_macs(small_net(), (2, 3, 16, 16), device="cpu") == 2 * expected  # per batch, not per image
    with META:
        meta_net = small_net()
    assert model_macs(meta_net, (1, 3, 16, 16)) == expected
    assert not meta_net.training  # counted in eval mode


@pytest.mark.parametrize("size", [(1, 3, 0, 4), [1, 3, 2.0, 4], "1x3x16x16", (1, -3, 4, 4)])
def test_model_macs_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="input_size must be a tuple of positive ints"):
        model_macs(small_net(), size, device="cpu")


def test_layer_costs_reads_each_chosen_layer_of_one_pass():
    """Shapes against the layers run by hand, parameters against torch's count, MACs against the closed forms
    of ``conv_macs`` and the linear layer's in * out; batch axis dropped from the shapes, kept in the MACs."""
    with META:
        net = small_net()
    x = torch.empty(1, 3, 16, 16, device=META)
    by_hand = [(tuple(net[:i](x).shape[1:]), tuple(net[:i + 1](x).shape[1:])) for i in (0, 3, 6)]
    rows = layer_costs(net, (1, 3, 16, 16), (nn.Conv2d, nn.Linear))
    assert [r.name for r in rows] == ["0", "3", "6"] and [r.module for r in rows] == [net[0], net[3], net[6]]
    assert [(r.input_shape, r.output_shape) for r in rows] == by_hand == [((3, 16, 16), (8, 8, 8)),
                                                                          ((8, 8, 8), (8, 8, 8)), ((128,), (5,))]
    assert [r.parameters for r in rows] == [torch_parameters(net[i]) for i in (0, 3, 6)]
    assert [r.macs for r in rows] == [conv_macs(3, 8, 3, (8, 8)), conv_macs(8, 8, 3, (8, 8), groups=4), 128 * 5]
    pair = layer_costs(net, (2, 3, 16, 16), [net[6], net[0]])  # the order of the pass, not of the list
    assert [(r.name, r.input_shape, r.macs) for r in pair] == [("0", (3, 16, 16), 2 * rows[0].macs),
                                                                ("6", (128,), 2 * rows[2].macs)]
    whole = layer_costs(net, (1, 3, 16, 16), [net])
    assert [(r.name, r.output_shape, r.macs) for r in whole] == [("", (5,), model_macs(net, (1, 3, 16, 16)))]


def test_layer_costs_of_a_shared_layer_and_of_a_whole_network():
    linear = nn.Linear(3, 3)
    net = nn.Sequential(linear, nn.ReLU(), linear, nn.Linear(3, 2))
    (row,) = layer_costs(net, (4, 3), [linear], device="cpu")  # runs twice: the first call's shapes, both MACs
    assert (row.name, row.input_shape, row.output_shape, row.parameters, row.macs) == ("0", (3,), (3,), 12, 2 * 36)
    model = create_on_meta("resnet18")
    layers = layer_costs(model, (1, 3, 224, 224), (nn.Conv2d, nn.Linear))
    assert sum(r.macs for r in layers) == model_macs(model, (1, 3, 224, 224)) and len(layers) == 21


def test_layer_costs_rejects_bad_arguments():
    net = small_net()
    with pytest.raises(ValueError, match="modules must be submodules of the model; not in it: Linear"):
        layer_costs(net, (1, 3, 16, 16), [nn.Linear(2, 2)], device="cpu")
    with pytest.raises(ValueError, match="input_size must be a tuple of positive ints"):
        layer_costs(net, (1, 3, 0, 16), nn.Conv2d, device="cpu")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        layer_costs(lambda x: x, (1, 3), nn.Conv2d)
