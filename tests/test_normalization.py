"""The normalization template of ``visarch.functional.normalization`` and its four instances agree with torch.

What this file proves, each time against a source independent of the code under test:

* ``batch_norm`` (training and evaluation), ``layer_norm``, ``instance_norm`` (with and without
  running statistics) and ``group_norm`` give the outputs of their ``torch.nn.functional``
  counterparts and the same gradients for input, weight and bias, in float64, with and without
  affine parameters, over random N, C, spatial shapes, groups, eps and momentum; the running
  statistics they update in place equal torch's; their first and second derivatives equal
  finite differences (``gradcheck``, ``gradgradcheck``);
* the modules ``BatchNorm2d``, ``InstanceNorm2d``, ``LayerNorm`` and ``GroupNorm`` equal torch's
  modules over several training steps (outputs, gradients of input and parameters, running
  statistics, ``num_batches_tracked``, cumulative averaging with ``momentum=None``) and then in
  evaluation mode, starting from the same random state copied with ``load_state_dict``;
* ``normalize`` over any set of axes equals torch's ``layer_norm`` over the same axes moved to
  the end; ``normalize_loop``, the notes' per-entry template, equals torch's four layers;
* a constant input gives a finite output (zero up to rounding); bad arguments raise the documented exception with a
  message naming the violated condition.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

import visarch.nn as vnn
from visarch.functional.normalization import (
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    normalize,
    normalize_loop,
)

TOL = {"rtol": 1e-9, "atol": 1e-10}  # float64; the variance is summed in a different order than torch's
EPSILONS = [1e-5, 1e-3, 0.1, 1.0]


@dataclasses.dataclass(frozen=True)
class NormCase:
    """One configuration: ``[N, C, *spatial]`` input, groups G, eps, momentum, affine on/off, a seed."""

    n: int
    c: int
    spatial: tuple[int, ...]
    groups: int
    eps: float
    momentum: float
    affine: bool
    seed: int

    @property
    def shape(self):
        return (self.n, self.c, *self.spatial)

    def tensors(self, requires_grad=False):
        gen = torch.Generator().manual_seed(self.seed)
        x = (3 * torch.randn(self.shape, generator=gen, dtype=torch.float64) + 2).requires_grad_(requires_grad)
        if not self.affine:
            return x, None, None, gen
        w, b = (torch.randn(self.c, generator=gen, dtype=torch.float64).requires_grad_(requires_grad)
                for _ in range(2))
        return x, w, b, gen


@st.composite
def norm_cases(draw, min_spatial_rank=0, min_count=2):
    """Configurations whose statistics see at least ``min_count`` entries (torch refuses fewer)."""
    c = draw(st.integers(1, 6))
    rank = draw(st.integers(min_spatial_rank, 2))
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    n = draw(st.integers(1, 4))
    if min_spatial_rank and math.prod(spatial) < min_count:  # instance norm: H * W >= 2
        spatial = (*spatial[:-1], spatial[-1] + 1)
    elif n * math.prod(spatial) < min_count:  # batch norm in training: N * H * W >= 2
        n += 1
    return NormCase(n=n, c=c, spatial=spatial, groups=draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0])),
                    eps=draw(st.sampled_from(EPSILONS)), momentum=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
                    affine=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def assert_same_outputs_and_grads(ours, theirs, leaves, gen):
    """Equal outputs, and equal gradients of every leaf for one random upstream gradient."""
    assert ours.shape == theirs.shape
    assert_close(ours, theirs, **TOL)
    grad_out = torch.randn(theirs.shape, generator=gen, dtype=torch.float64)
    for name, got, want in zip(leaves, torch.autograd.grad(ours, list(leaves.values()), grad_out),
                               torch.autograd.grad(theirs, list(leaves.values()), grad_out), strict=True):
        assert_close(got, want, **TOL, msg=lambda m, name=name: f"gradient wrt {name}: {m}")


def leaves_of(x, w, b):
    return {name: t for name, t in (("input", x), ("weight", w), ("bias", b)) if t is not None}


# --------------------------------------------------------------------------- functional, against torch


@settings(max_examples=250)
@given(case=norm_cases(), training=st.booleans())
def test_batch_norm_matches_torch(case, training):
    x, w, b, gen = case.tensors(requires_grad=True)
    stats = (torch.randn(case.c, generator=gen, dtype=torch.float64),
             torch.rand(case.c, generator=gen, dtype=torch.float64) + 0.1)
    ours_stats, torch_stats = [t.clone() for t in stats], [t.clone() for t in stats]
    ours = batch_norm(x, *ours_stats, w, b, training=training, momentum=case.momentum, eps=case.eps)
    theirs = F.batch_norm(x, *torch_stats, w, b, training=training, momentum=case.momentum, eps=case.eps)
    assert_same_outputs_and_grads(ours, theirs, leaves_of(x, w, b), gen)
    for got, want in zip(ours_stats, torch_stats, strict=True):  # updated in training, untouched in eval
        assert_close(got, want, **TOL)


@settings(max_examples=250)
@given(case=norm_cases())
def test_batch_norm_without_running_stats_matches_torch(case):
    x, w, b, gen = case.tensors(requires_grad=True)
    ours = batch_norm(x, None, None, w, b, training=False, eps=case.eps)  # no stored statistics: the batch's own
    theirs = F.batch_norm(x, None, None, w, b, training=True, eps=case.eps)
    assert_same_outputs_and_grads(ours, theirs, leaves_of(x, w, b), gen)


@settings(max_examples=250)
@given(case=norm_cases(), k=st.integers(1, 3))
def test_layer_norm_matches_torch(case, k):
    """Over the last k axes; weight and bias have normalized_shape, as in torch."""
    x, _, _, gen = case.tensors(requires_grad=True)
    k = min(k, x.dim())
    shape = tuple(x.shape[-k:])
    w = b = None
    if case.affine:
        w, b = (torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(2))
    ours, theirs = layer_norm(x, shape, w, b, case.eps), F.layer_norm(x, shape, w, b, case.eps)
    assert_same_outputs_and_grads(ours, theirs, leaves_of(x, w, b), gen)


@settings(max_examples=250)
@given(case=norm_cases(min_spatial_rank=1), running=st.booleans(), use_input_stats=st.booleans())
def test_instance_norm_matches_torch(case, running, use_input_stats):
    x, w, b, gen = case.tensors(requires_grad=True)
    if not running:
        use_input_stats = True  # without running statistics there is nothing else to normalise with
    stats = (torch.randn(case.c, generator=gen, dtype=torch.float64),
             torch.rand(case.c, generator=gen, dtype=torch.float64) + 0.1) if running else (None, None)
    ours_stats = [None if t is None else t.clone() for t in stats]
    torch_stats = [None if t is None else t.clone() for t in stats]
    kw = {"use_input_stats": use_input_stats, "momentum": case.momentum, "eps": case.eps}
    ours = instance_norm(x, *ours_stats, w, b, **kw)
    theirs = F.instance_norm(x, *torch_stats, w, b, **kw)
    assert_same_outputs_and_grads(ours, theirs, leaves_of(x, w, b), gen)
    for got, want in zip(ours_stats, torch_stats, strict=True):
        if want is not None:
            assert_close(got, want, **TOL)


@settings(max_examples=250)
@given(case=norm_cases())
def test_group_norm_matches_torch(case):
    x, w, b, gen = case.tensors(requires_grad=True)
    ours, theirs = group_norm(x, case.groups, w, b, case.eps), F.group_norm(x, case.groups, w, b, case.eps)
    assert_same_outputs_and_grads(ours, theirs, leaves_of(x, w, b), gen)


@settings(max_examples=200)
@given(case=norm_cases(), data=st.data())
def test_normalize_over_any_axes_is_torch_layer_norm_there(case, data):
    """The template over a set of axes = torch's layer_norm after moving those axes to the end."""
    x, _, _, gen = case.tensors(requires_grad=True)
    dims = sorted(data.draw(st.sets(st.integers(0, x.dim() - 1), min_size=1), label="dims"))
    moved = x.movedim(dims, list(range(x.dim() - len(dims), x.dim())))
    theirs = F.layer_norm(moved, moved.shape[-len(dims):], eps=case.eps)
    theirs = theirs.movedim(list(range(x.dim() - len(dims), x.dim())), dims)
    assert_same_outputs_and_grads(normalize(x, tuple(dims), eps=case.eps), theirs, {"input": x}, gen)


@pytest.mark.parametrize("layer, param_shape", [
    pytest.param(lambda x, w, b: batch_norm(x, None, None, w, b, training=True), (4,), id="batch"),
    pytest.param(lambda x, w, b: layer_norm(x, (4, 3, 2), w, b), (4, 3, 2), id="layer"),
    pytest.param(lambda x, w, b: instance_norm(x, weight=w, bias=b), (4,), id="instance"),
    pytest.param(lambda x, w, b: group_norm(x, 2, w, b), (4,), id="group"),
])
def test_first_and_second_derivatives_match_finite_differences(layer, param_shape):
    """The hand-written backward is right, and differentiable: gradcheck and gradgradcheck compare the
    analytic first and second derivatives (input, weight, bias) with torch's finite differences in float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 3, 2, dtype=torch.float64, generator=gen).requires_grad_()
    w, b = (torch.randn(param_shape, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(2))
    assert torch.autograd.gradcheck(layer, (x, w, b))
    assert torch.autograd.gradgradcheck(layer, (x, w, b))


@settings(max_examples=40)
@given(case=norm_cases(min_spatial_rank=2))
def test_normalize_loop_is_the_four_torch_layers(case):
    """The notes' literal template (one mean and variance per entry over select(k, c, i, j))."""
    x, w, b, _ = case.tensors()
    x = x[:2, :, :3, :3]  # a loop over entries squared: keep it small
    if x[0, 0].numel() < 2:
        return
    per_channel = (lambda y: y) if w is None else (lambda y: y * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1))
    expected = {
        "batch": F.batch_norm(x, None, None, w, b, training=True, eps=case.eps),
        "layer": per_channel(F.layer_norm(x, x.shape[1:], eps=case.eps)),  # the notes' per-channel affine
        "instance": F.instance_norm(x, weight=w, bias=b, eps=case.eps),
        "group": F.group_norm(x, case.groups, w, b, case.eps),
    }
    for select, want in expected.items():
        got = normalize_loop(x, select, num_groups=case.groups, weight=w, bias=b, eps=case.eps)
        assert_close(got, want, **TOL, msg=lambda m, select=select: f"select={select}: {m}")


# --------------------------------------------------------------------------- modules, against torch's modules


def module_pairs(case):
    """(ours, torch's) module pairs for one configuration, with constructor arguments as in torch."""
    kw = {"eps": case.eps, "affine": case.affine}
    pairs = [
        (vnn.GroupNorm(case.groups, case.c, **kw), nn.GroupNorm(case.groups, case.c, **kw)),
        (vnn.LayerNorm(case.shape[1:], eps=case.eps, elementwise_affine=case.affine),
         nn.LayerNorm(case.shape[1:], eps=case.eps, elementwise_affine=case.affine)),
    ]
    if len(case.spatial) == 2:
        for track in (True, False):
            for momentum in (case.momentum, None):
                run_kw = {**kw, "momentum": momentum, "track_running_stats": track}
                pairs.append((vnn.BatchNorm2d(case.c, **run_kw), nn.BatchNorm2d(case.c, **run_kw)))
                pairs.append((vnn.InstanceNorm2d(case.c, **run_kw), nn.InstanceNorm2d(case.c, **run_kw)))
    return pairs


@settings(max_examples=200)
@given(case=norm_cases(min_spatial_rank=2))
def test_modules_match_torch_over_training_steps_then_eval(case):
    gen = torch.Generator().manual_seed(case.seed)
    for ours, theirs in module_pairs(case):
        theirs.double()
        state = {k: (torch.randn(v.shape, generator=gen, dtype=v.dtype) if v.is_floating_point() else v)
                 for k, v in theirs.state_dict().items()}
        if "running_var" in state:
            state["running_var"] = state["running_var"].abs() + 0.1
        theirs.load_state_dict(state)
        ours.double().load_state_dict(state)
        for step in range(4):  # three training steps, then evaluation
            training = step < 3
            ours.train(training), theirs.train(training)
            x = (2 * torch.randn(case.shape, generator=gen, dtype=torch.float64) + step).requires_grad_()
            leaves = {"input": x, **dict(ours.named_parameters())}
            y_ours, y_theirs = ours(x), theirs(x)
            assert_close(y_ours, y_theirs, **TOL, msg=lambda m, o=ours, s=step: f"{o} step {s}: {m}")
            grad_out = torch.randn(y_theirs.shape, generator=gen, dtype=torch.float64)
            got = torch.autograd.grad(y_ours, list(leaves.values()), grad_out)
            want = torch.autograd.grad(y_theirs, [x, *theirs.parameters()], grad_out)
            for name, g, h in zip(leaves, got, want, strict=True):
                assert_close(g, h, **TOL, msg=lambda m, o=ours, name=name: f"{o}: gradient wrt {name}: {m}")
            for (name, buf), (_, ref) in zip(ours.named_buffers(), theirs.named_buffers(), strict=True):
                assert_close(buf, ref, **TOL, msg=lambda m, o=ours, name=name: f"{o}: buffer {name}: {m}")


def test_state_dicts_are_interchangeable():
    for ours, theirs in [(vnn.BatchNorm2d(3), nn.BatchNorm2d(3)), (vnn.GroupNorm(2, 4), nn.GroupNorm(2, 4)),
                         (vnn.LayerNorm((4, 5)), nn.LayerNorm((4, 5))),
                         (vnn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                          nn.InstanceNorm2d(3, affine=True, track_running_stats=True))]:
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        theirs.load_state_dict(ours.state_dict())
        ours.load_state_dict(theirs.state_dict())


# --------------------------------------------------------------------------- constant input, bad input


@pytest.mark.parametrize("fn", [
    pytest.param(lambda x: batch_norm(x, None, None, training=True), id="batch"),
    pytest.param(lambda x: layer_norm(x, x.shape[1:]), id="layer"),
    pytest.param(lambda x: instance_norm(x), id="instance"),
    pytest.param(lambda x: group_norm(x, 2), id="group"),
])
def test_constant_input_gives_finite_zeros(fn):
    """Variance 0: eps keeps the division finite, and the output is 0 up to rounding (x a - mu a)."""
    x = torch.full((2, 4, 3, 3), 7.5e3, dtype=torch.float64)
    y = fn(x)
    assert torch.isfinite(y).all() and y.abs().max() < 1e-6


def zeros(*shape, dtype=torch.float64):
    return torch.zeros(shape, dtype=dtype)


BAD_CASES = [
    # (id, call, exception, message pattern)
    ("group-not-dividing", lambda: group_norm(zeros(2, 6, 3, 3), 4),
     ValueError, r"channels C=6 are not divisible by the number of groups G=4"),
    ("group-module-not-dividing", lambda: vnn.GroupNorm(4, 6),
     ValueError, r"num_channels C=6 is not divisible by num_groups G=4"),
    ("groups-zero", lambda: group_norm(zeros(2, 6, 3, 3), 0), ValueError, r"number of groups G must be >= 1, got 0"),
    ("eps-zero", lambda: layer_norm(zeros(2, 3), (3,), eps=0.0), ValueError, r"eps must be > 0"),
    ("eps-negative", lambda: batch_norm(zeros(2, 3), None, None, training=True, eps=-1e-5),
     ValueError, r"eps must be > 0"),
    ("eps-module", lambda: vnn.BatchNorm2d(3, eps=0), ValueError, r"eps must be > 0"),
    ("bn-single-value", lambda: batch_norm(zeros(1, 3), None, None, training=True),
     ValueError, r"more than 1 value per channel"),
    ("bn-single-pixel-batch-1", lambda: vnn.BatchNorm2d(3)(zeros(1, 3, 1, 1, dtype=torch.float32)),
     ValueError, r"more than 1 value per channel"),
    ("in-single-pixel", lambda: instance_norm(zeros(2, 3, 1, 1)),
     ValueError, r"more than 1 spatial element per channel"),
    ("bn-rank-1", lambda: batch_norm(zeros(3), None, None, training=True),
     ValueError, r"input must have rank >= 2 \[N, C, \*spatial\], got rank 1"),
    ("bn-module-rank-3", lambda: vnn.BatchNorm2d(3)(zeros(3, 4, 4)),
     ValueError, r"BatchNorm2d expects input of rank 4, got rank 3"),
    ("in-rank-2", lambda: instance_norm(zeros(2, 3)), ValueError, r"input must have rank >= 3"),
    ("ln-shape", lambda: layer_norm(zeros(2, 3, 4), (3,)),
     ValueError, r"the last 1 axes of input \(2, 3, 4\) must have normalized_shape \(3,\)"),
    ("bn-channels", lambda: vnn.BatchNorm2d(3)(zeros(2, 4, 2, 2)),
     ValueError, r"input has 4 channels, expected num_features C=3"),
    ("bn-weight-shape", lambda: batch_norm(zeros(2, 3), None, None, zeros(4), training=True),
     ValueError, r"weight must have shape \(C,\) = \(3,\), got \(4,\)"),
    ("bn-half-stats", lambda: batch_norm(zeros(2, 3), zeros(3), None),
     ValueError, r"running_mean and running_var must be given together"),
    ("momentum-range", lambda: batch_norm(zeros(2, 3), zeros(3), zeros(3) + 1, training=True, momentum=1.5),
     ValueError, r"momentum must be in \[0, 1\], got 1.5"),
    ("integer-input", lambda: group_norm(zeros(2, 4, 2, dtype=torch.int64), 2),
     TypeError, r"input must have a floating-point dtype, got torch.int64"),
    ("dims-repeat", lambda: normalize(zeros(2, 3), (1, -1)), ValueError, r"name an axis twice"),
    ("dims-range", lambda: normalize(zeros(2, 3), (2,)), ValueError, r"out of range for an input of rank 2"),
    ("loop-select", lambda: normalize_loop(zeros(1, 2, 2, 2), "pixel"), ValueError, r"select must be one of"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(*c[1:], id=c[0]) for c in BAD_CASES])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
