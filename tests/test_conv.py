"""The from-scratch convolutions of ``visarch.functional.conv`` agree with torch.

What this file proves, each time against a source independent of the code under test:

* ``conv1d`` and ``conv3d`` give the output and gradients of ``torch.nn.functional.conv1d`` and
  ``conv3d`` over random configurations, and their output sizes follow Lemma 1.1 on every axis;
* ``conv2d`` and ``conv2d_loop`` give the output of ``torch.nn.functional.conv2d`` and the
  same gradients with respect to input, weight and bias (torch's autograd through torch's
  convolution), over random configurations with strides, padding, groups and non-square
  shapes, plus hand-picked edge cases; ``conv_nd`` does so both with one matrix product per
  image and with one product for the whole batch (its two layouts of the patches);
* ``conv_output_size`` is the size torch's convolution actually produces (Lemma 1.1);
* ``conv_matrix`` is the Jacobian of torch's convolution with respect to the flattened input
  (Fact 1.2), reproduces the notes' worked 4x9 example entry by entry, and passes gradients
  back to the weight;
* bad arguments raise the documented exception with a message naming the violated condition.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from conv_cases import TOL, conv_cases, make_tensors, nd_cases, with_edge_cases, zeros
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visarch.functional import conv as conv_module
from visarch.functional import conv1d, conv2d, conv2d_loop, conv3d, conv_matrix, conv_nd, conv_output_size

CONV_FNS = [pytest.param(conv2d, id="conv2d"), pytest.param(conv2d_loop, id="conv2d_loop")]


# --------------------------------------------------------------------------- conv2d


def assert_matches_torch(fn, case):
    """``fn`` gives torch's output and torch's gradients for a random upstream gradient."""
    x, weight, bias, gen = make_tensors(case, requires_grad=True)
    leaves = {name: t for name, t in (("input", x), ("weight", weight), ("bias", bias)) if t is not None}

    expected = F.conv2d(x, weight, bias, **case.kwargs)
    actual = fn(x, weight, bias, **case.kwargs)
    assert_close(actual, expected, **TOL)

    grad_out = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    expected_grads = torch.autograd.grad(expected, list(leaves.values()), grad_out)
    actual_grads = torch.autograd.grad(actual, list(leaves.values()), grad_out)
    for name, got, want in zip(leaves, actual_grads, expected_grads, strict=True):
        assert_close(got, want, **TOL, msg=lambda m, name=name: f"gradient wrt {name}: {m}")


@pytest.mark.parametrize("fn", CONV_FNS)
@with_edge_cases
@settings(max_examples=300)
@given(case=conv_cases())
def test_conv2d_matches_torch(fn, case):
    assert_matches_torch(fn, case)


@settings(max_examples=150)
@given(case=conv_cases(), min_columns=st.sampled_from([0, 10**9]))
def test_both_patch_layouts_match_torch(case, min_columns):
    """conv_nd switches layout on the number of output pixels; force each layout in turn."""
    with mock.patch.object(conv_module, "_MIN_COLUMNS_PER_IMAGE", min_columns):
        assert_matches_torch(conv2d, case)


# --------------------------------------------------------------------------- conv1d, conv3d


ND = [pytest.param(conv1d, F.conv1d, 1, 9, id="conv1d"), pytest.param(conv3d, F.conv3d, 3, 5, id="conv3d")]


@pytest.mark.parametrize("ours, theirs, dims, max_size", ND)
@settings(max_examples=250)
@given(data=st.data())
def test_conv1d_conv3d_match_torch(ours, theirs, dims, max_size, data):
    x, weight, bias, kwargs = data.draw(nd_cases(dims, max_size))
    leaves = [t for t in (x, weight, bias) if t is not None]
    expected, actual = theirs(x, weight, bias, **kwargs), ours(x, weight, bias, **kwargs)
    assert_close(actual, expected, **TOL)
    # Lemma 1.1 on every axis, against the size torch produced
    stride, padding = (v if isinstance(v, tuple) else (v,) * dims for v in (kwargs["stride"], kwargs["padding"]))
    sizes = zip(x.shape[-dims:], weight.shape[2:], stride, padding, strict=True)
    assert tuple(expected.shape[-dims:]) == tuple(conv_output_size(*axis) for axis in sizes)
    grad_out = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for got, want in zip(torch.autograd.grad(actual, leaves, grad_out),
                         torch.autograd.grad(expected, leaves, grad_out), strict=True):
        assert_close(got, want, **TOL)


@pytest.mark.parametrize(
    "fn, input_shape, weight_shape, match",
    [
        (conv1d, (1, 2, 3, 4), (2, 2, 3), r"input must have rank 3 \[N, C, L\] \(or 2 \[C, L\]\), got rank 4"),
        (conv1d, (1, 2, 8), (2, 2, 3, 3), r"weight must have rank 3 \[C', C/G, F\], got rank 4"),
        (conv1d, (1, 2, 4), (2, 2, 5), r"filter length F=5 exceeds padded length 4\+2\*0=4"),
        (conv3d, (2, 3, 4), (2, 2, 1, 1, 1), r"input must have rank 5 \[N, C, D, H, W\] \(or 4 .*got rank 3"),
        (conv3d, (1, 2, 3, 4, 4), (2, 2, 4, 3, 3), r"filter depth F=4 exceeds padded depth 3\+2\*0=3"),
    ],
)
def test_conv1d_conv3d_bad_rank_or_size(fn, input_shape, weight_shape, match):
    with pytest.raises(ValueError, match=match):
        fn(zeros(*input_shape), zeros(*weight_shape))


@pytest.mark.parametrize("dims", [0, 4, "2"])
def test_conv_nd_needs_one_to_three_axes(dims):
    with pytest.raises(ValueError, match=r"dims \(number of spatial axes\) must be 1, 2 or 3"):
        conv_nd(zeros(1, 1, 3, 3), zeros(1, 1, 1, 1), dims=dims)


def test_stride_tuple_length_must_match_axes():
    with pytest.raises(TypeError, match=r"stride S must be an int or a triple of ints, got \(1, 1\)"):
        conv3d(zeros(1, 1, 3, 3, 3), zeros(1, 1, 1, 1, 1), stride=(1, 1))


# --------------------------------------------------------------------------- conv_output_size


@st.composite
def axis_configs(draw):
    """(size Z, kernel F, stride S, padding P) with F <= Z + 2P."""
    size, padding = draw(st.integers(1, 40)), draw(st.integers(0, 4))
    kernel = draw(st.integers(1, size + 2 * padding))
    return size, kernel, draw(st.integers(1, 6)), padding


@settings(max_examples=500)
@given(rows=axis_configs(), cols=axis_configs())
def test_conv_output_size_matches_torch(rows, cols):
    (h, fh, sh, ph), (w, fw, sw, pw) = rows, cols
    y = F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, fh, fw), stride=(sh, sw), padding=(ph, pw))
    assert conv_output_size(h, fh, sh, ph) == y.shape[2]
    assert conv_output_size(w, fw, sw, pw) == y.shape[3]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((5, 6, 1, 0), ValueError, r"filter size F=6 exceeds padded size Z\+2P=5"),
        ((3, 8, 1, 2), ValueError, r"filter size F=8 exceeds padded size Z\+2P=7"),
        ((5, 3, 0, 0), ValueError, r"stride S must be >= 1, got 0"),
        ((5, 3, -2, 0), ValueError, r"stride S must be >= 1, got -2"),
        ((5, 3, 1, -1), ValueError, r"padding P must be >= 0, got -1"),
        ((0, 1, 1, 0), ValueError, r"size Z must be >= 1, got 0"),
        ((5, 0, 1, 0), ValueError, r"kernel_size F must be >= 1, got 0"),
        ((5.0, 3, 1, 0), TypeError, r"size Z must be an int, got float"),
        ((5, "3", 1, 0), TypeError, r"kernel_size F must be an int, got str"),
        ((5, 3, 1.5, 0), TypeError, r"stride S must be an int, got float"),
        ((5, 3, 1, None), TypeError, r"padding P must be an int, got NoneType"),
        ((5, 3, True, 0), TypeError, r"stride S must be an int, got bool"),
    ],
)
def test_conv_output_size_raises(args, exc, match):
    with pytest.raises(exc, match=match):
        conv_output_size(*args)


# --------------------------------------------------------------------------- conv_matrix


def torch_conv_of_vector(case, weight):
    """The map vec(x) -> vec(conv2d(x)) computed by torch, for the Jacobian."""
    return lambda v: F.conv2d(v.view(case.input_shape), weight, **case.kwargs).reshape(-1)


@functools.partial(with_edge_cases, unbatched=True)
@settings(max_examples=150)
@given(case=conv_cases(unbatched=True))
def test_conv_matrix_times_vec_is_conv(case):
    x, weight, bias, _ = make_tensors(case)
    expected = F.conv2d(x, weight, bias, **case.kwargs)  # [C', H', W']

    v = conv_matrix(weight, (case.c_in, case.h, case.w), **case.kwargs)
    assert v.shape == (expected.numel(), x.numel())  # [C'H'W', CHW]
    y = (v @ x.reshape(-1)).view(expected.shape)
    if bias is not None:
        y = y + bias.view(-1, 1, 1)
    assert_close(y, expected, **TOL)

    jacobian = torch.autograd.functional.jacobian(
        torch_conv_of_vector(case, weight), x.reshape(-1), vectorize=True
    )
    assert_close(v, jacobian, **TOL)



def test_conv_matrix_worked_example():
    """The notes' example: 3x3 input, one channel, 2x2 filter, stride 1, no padding."""
    w1, w2, w3, w4 = 2.0, 3.0, 5.0, 7.0
    weight = torch.tensor([[[[w1, w2], [w3, w4]]]], dtype=torch.float64)
    expected = torch.tensor(
        [
            [w1, w2, 0, w3, w4, 0, 0, 0, 0],
            [0, w1, w2, 0, w3, w4, 0, 0, 0],
            [0, 0, 0, w1, w2, 0, w3, w4, 0],
            [0, 0, 0, 0, w1, w2, 0, w3, w4],
        ],
        dtype=torch.float64,
    )
    assert_close(conv_matrix(weight, (1, 3, 3)), expected, rtol=0, atol=0)


@settings(max_examples=100)
@given(case=conv_cases(unbatched=True))
def test_conv_matrix_weight_gradient_counts_taps(case):
    """d(sum V)/dW[o, c, k, l] is the number of outputs whose tap (k, l) lands on the image.

    Independently, that count is d/dW of sum(conv2d(ones)): each such output adds
    W[o, c, k, l] * 1 once, and taps on the zero padding add nothing.
    """
    _, weight, _, _ = make_tensors(case, requires_grad=True)
    conv_matrix(weight, (case.c_in, case.h, case.w), **case.kwargs).sum().backward()

    ones = torch.ones(case.input_shape, dtype=torch.float64)
    (counts,) = torch.autograd.grad(F.conv2d(ones, weight, **case.kwargs).sum(), weight)
    assert_close(weight.grad, counts, rtol=0, atol=0)


def test_conv_matrix_gradcheck():
    """Finite differences agree with autograd through V, with stride, padding and groups."""
    weight = torch.randn(4, 1, 2, 3, dtype=torch.float64, requires_grad=True,
                         generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(
        lambda w: conv_matrix(w, (2, 3, 4), stride=(2, 1), padding=(1, 0), groups=2), (weight,)
    )


# --------------------------------------------------------------------------- bad arguments


# A valid call, which each case below breaks in one way: x [2, 4, 5, 6], W [6, 2, 3, 3], G = 2.
VALID_ARGS = {"input": zeros(2, 4, 5, 6), "weight": zeros(6, 2, 3, 3), "bias": zeros(6),
              "stride": 1, "padding": 0, "groups": 2}


@dataclasses.dataclass(frozen=True)
class BadCase:
    id: str
    changes: dict  # entries of VALID_ARGS to replace
    exc: type[Exception]
    match: str  # regex the message must match
    matrix: bool = True  # whether conv_matrix (which sees only weight and input shape) applies


BAD_CASES = [
    BadCase("filter-taller-than-input", {"weight": zeros(6, 2, 6, 3)},
            ValueError, r"filter height F=6 exceeds padded height 5\+2\*0=5"),
    BadCase("filter-taller-than-padded-input", {"weight": zeros(6, 2, 8, 3), "padding": 1},
            ValueError, r"filter height F=8 exceeds padded height 5\+2\*1=7"),
    BadCase("filter-wider-than-padded-input", {"weight": zeros(6, 2, 3, 9), "padding": (0, 1)},
            ValueError, r"filter width F=9 exceeds padded width 6\+2\*1=8"),
    BadCase("C-not-divisible-by-G", {"input": zeros(2, 5, 5, 6)},
            ValueError, r"input channels C=5 are not divisible by groups G=2"),
    BadCase("C'-not-divisible-by-G", {"weight": zeros(5, 2, 3, 3), "bias": zeros(5)},
            ValueError, r"output channels C'=5 are not divisible by groups G=2"),
    BadCase("weight-channels-not-C/G", {"weight": zeros(6, 4, 3, 3)},
            ValueError, r"weight has 4 input channels per filter, expected C/G=2"),
    BadCase("weight-channels-not-C/G-groups-1", {"groups": 1},
            ValueError, r"weight has 2 input channels per filter, expected C/G=4"),
    BadCase("stride-0", {"stride": 0}, ValueError, r"stride S must be >= 1, got 0"),
    BadCase("stride-negative", {"stride": -1}, ValueError, r"stride S must be >= 1, got -1"),
    BadCase("stride-pair-with-0", {"stride": (1, 0)}, ValueError, r"stride S must be >= 1, got \(1, 0\)"),
    BadCase("padding-negative", {"padding": -1}, ValueError, r"padding P must be >= 0, got -1"),
    BadCase("padding-pair-negative", {"padding": (0, -2)},
            ValueError, r"padding P must be >= 0, got \(0, -2\)"),
    BadCase("groups-0", {"groups": 0}, ValueError, r"number of groups G must be >= 1, got 0"),
    BadCase("groups-negative", {"groups": -2}, ValueError, r"number of groups G must be >= 1, got -2"),
    BadCase("groups-float", {"groups": 2.0}, TypeError, r"number of groups G must be an int, got float 2\.0"),
    BadCase("stride-float", {"stride": 1.0},
            TypeError, r"stride S must be an int or a pair of ints, got 1\.0"),
    BadCase("stride-3-tuple", {"stride": (1, 1, 1)},
            TypeError, r"stride S must be an int or a pair of ints, got \(1, 1, 1\)"),
    BadCase("padding-string", {"padding": "same"},
            TypeError, r"padding P must be an int or a pair of ints, got 'same'"),
    BadCase("input-rank-2", {"input": zeros(5, 6)},
            ValueError, r"input must have rank 4 \[N, C, H, W\] \(or 3 \[C, H, W\]\), got rank 2", matrix=False),
    BadCase("input-rank-5", {"input": zeros(1, 2, 4, 5, 6)},
            ValueError, r"input must have rank 4 .*, got rank 5", matrix=False),
    BadCase("weight-rank-3", {"weight": zeros(6, 2, 3)},
            ValueError, r"weight must have rank 4 \[C', C/G, F_h, F_w\], got rank 3"),
    BadCase("weight-rank-5", {"weight": zeros(6, 2, 3, 3, 1)},
            ValueError, r"weight must have rank 4 .*, got rank 5"),
    BadCase("bias-wrong-length", {"bias": zeros(5)},
            ValueError, r"bias must have shape \(C',\) = \(6,\), got \(5,\)", matrix=False),
    BadCase("bias-wrong-rank", {"bias": zeros(1, 6)},
            ValueError, r"bias must have shape \(C',\) = \(6,\), got \(1, 6\)", matrix=False),
    BadCase("input-float32-weight-float64", {"input": zeros(2, 4, 5, 6, dtype=torch.float32)},
            TypeError, r"dtypes must match \(input: torch.float32, weight: torch.float64", matrix=False),
    BadCase("bias-float32", {"bias": zeros(6, dtype=torch.float32)},
            TypeError, r"dtypes must match \(.*bias: torch.float32\)", matrix=False),
    BadCase("input-integer", {"input": zeros(2, 4, 5, 6, dtype=torch.int64)},
            TypeError, r"input must have a floating-point dtype, got torch.int64", matrix=False),
    BadCase("weight-integer", {"weight": zeros(6, 2, 3, 3, dtype=torch.int64)},
            TypeError, r"weight must have a floating-point dtype, got torch.int64"),
    BadCase("input-list", {"input": [[[[0.0]]]]},
            TypeError, r"input must be a torch.Tensor, got list", matrix=False),
    BadCase("weight-list", {"weight": [[[[0.0]]]]},
            TypeError, r"weight must be a torch.Tensor, got list"),
    BadCase("bias-list", {"bias": [0.0] * 6},
            TypeError, r"bias must be a torch.Tensor, got list", matrix=False),
]


def via_conv_matrix(input, weight, bias=None, **kwargs):
    """Call conv_matrix with the shape of one image of ``input`` (the bias has no part in V)."""
    return conv_matrix(weight, tuple(input.shape[-3:]), **kwargs)


def bad_case_params():
    for case in BAD_CASES:
        for fn in (conv2d, conv2d_loop):
            yield pytest.param(fn, case, id=f"{fn.__name__}-{case.id}")
        if case.matrix:
            yield pytest.param(via_conv_matrix, case, id=f"conv_matrix-{case.id}")


@pytest.mark.parametrize("fn, case", list(bad_case_params()))
def test_bad_input_raises(fn, case):
    args = {**VALID_ARGS, **case.changes}
    with pytest.raises(case.exc, match=case.match):
        fn(args.pop("input"), args.pop("weight"), args.pop("bias"), **args)


@pytest.mark.parametrize("input_size", [(1, 3), (1, 2, 3, 4), (1, 0, 3), (1, -2, 3)])
def test_conv_matrix_input_size_must_be_three_positive_ints(input_size):
    message = f"conv_matrix: input_size (C, H, W) must be a tuple of 3 ints, each >= 1, got {input_size}"
    with pytest.raises(ValueError, match=re.escape(message)):
        conv_matrix(zeros(1, 1, 1, 1), input_size)


@pytest.mark.parametrize("input_size", [(1, 2.0, 3), (True, 2, 3)])
def test_conv_matrix_input_size_must_hold_ints(input_size):
    message = f"conv_matrix: input_size (C, H, W) must be a tuple of 3 ints, got tuple {input_size}"
    with pytest.raises(TypeError, match=re.escape(message)):
        conv_matrix(zeros(1, 1, 1, 1), input_size)


def test_valid_args_are_valid():
    """The base call of the table works, so each case fails for the one change it makes."""
    args = dict(VALID_ARGS)
    expected = F.conv2d(args.pop("input"), args.pop("weight"), args.pop("bias"), **args)
    for fn in (conv2d, conv2d_loop):
        assert_close(fn(**VALID_ARGS), expected)
    conv_matrix(VALID_ARGS["weight"], (4, 5, 6), groups=2)
