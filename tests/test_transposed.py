"""The from-scratch transposed convolution of ``visarch.functional.transposed`` agrees with torch.

What this file proves, each time against a source independent of the code under test:

* ``conv_transpose2d`` gives the output of ``torch.nn.functional.conv_transpose2d`` and the
  same gradients with respect to input, weight and bias (torch's autograd through torch's
  transposed convolution), over random configurations with strides, padding (also beyond the
  notes' bound F - 1), output padding, groups, non-square shapes, batch 1 and unbatched input,
  with both methods: the notes' zero insertion and the sub-pixel form that skips the zeros;
* the notes' steps: ``dilate_and_pad`` has f(t) = t + (t-1)(S-1) + 2(F-1-P) rows (a closed
  form) and, with F = 1 and P = 0, is torch's transposed convolution by a 1x1 unit filter;
  ``flip_weight`` turns torch's transposed-convolution weight into conv2d filters that,
  on that image, give torch's transposed convolution;
* ``conv_transpose_output_size`` is the size torch's transposed convolution actually produces
  (Lemma 1.3 plus output_padding), and torch refuses exactly the sizes it refuses;
* Fact 1.4: for a convolution with weight ``w`` and matrix ``V`` (``conv_matrix``, itself
  tested against torch's Jacobian in test_conv.py), ``V^T vec(y)`` is ``conv_transpose2d(y, w)``
  with the same weight tensor; the adjoint identity <conv2d(x), y> = <x, conv_transpose2d(y)>
  holds; and ``conv_transpose2d(y)`` is torch's gradient of ``(conv2d(x, w) * y).sum()``
  with respect to ``x``;
* bad arguments raise the documented exception with a message naming the violated condition.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from conv_cases import TOL, TRANS_EDGE_CASES, conv_cases, make_tensors, trans_cases, with_edge_cases, zeros
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visarch.functional import conv_matrix
from visarch.functional.transposed import conv_transpose2d, conv_transpose_output_size, dilate_and_pad, flip_weight

# --------------------------------------------------------------------------- against torch


@pytest.mark.parametrize("method", ["subpixel", "zero_insertion"])
@functools.partial(with_edge_cases, cases=TRANS_EDGE_CASES)
@settings(max_examples=250)
@given(case=trans_cases())
def test_conv_transpose2d_matches_torch(method, case):
    x, weight, bias, gen = make_tensors(case, requires_grad=True)
    leaves = {name: t for name, t in (("input", x), ("weight", weight), ("bias", bias)) if t is not None}

    expected = F.conv_transpose2d(x, weight, bias, **case.kwargs)
    actual = conv_transpose2d(x, weight, bias, **case.kwargs, method=method)
    assert actual.shape == expected.shape
    assert_close(actual, expected, **TOL)

    grad_out = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    expected_grads = torch.autograd.grad(expected, list(leaves.values()), grad_out)
    actual_grads = torch.autograd.grad(actual, list(leaves.values()), grad_out)
    for name, got, want in zip(leaves, actual_grads, expected_grads, strict=True):
        assert_close(got, want, **TOL, msg=lambda m, name=name: f"gradient wrt {name}: {m}")


@settings(max_examples=100)
@given(case=trans_cases())
def test_notes_steps(case):
    """Steps 1-2 have the notes' shape f(t); step 1 alone is a 1x1 transposed convolution by 1."""
    x, weight, _, _ = make_tensors(case)
    (sh, sw), (ph, pw), (oh, ow) = (v if isinstance(v, tuple) else (v, v) for v in
                                    (case.stride, case.padding, case.output_padding))
    padded = dilate_and_pad(x, (case.fh, case.fw), stride=case.stride, padding=case.padding,
                            output_padding=case.output_padding)

    def f(t, k, s, p):  # the notes' size of the padded image
        return t + (t - 1) * (s - 1) + 2 * (k - 1 - p)

    assert padded.shape[-2:] == (f(case.h, case.fh, sh, ph) + oh, f(case.w, case.fw, sw, pw) + ow)
    unit = torch.ones(case.c_in, 1, 1, 1, dtype=torch.float64)
    dilated = F.conv_transpose2d(x, unit, stride=case.stride, groups=case.c_in)
    assert_close(dilate_and_pad(x, 1, stride=case.stride), dilated, rtol=0, atol=0)
    y = F.conv2d(padded, flip_weight(weight, case.groups), groups=case.groups)
    assert_close(y, F.conv_transpose2d(x, weight, **case.kwargs), **TOL)


@st.composite
def axis_configs(draw):
    """(Z, F, S, P, output_padding), any P >= 0 (torch decides whether the size is valid)."""
    stride = draw(st.integers(1, 5))
    return (draw(st.integers(1, 12)), draw(st.integers(1, 6)), stride, draw(st.integers(0, 6)),
            draw(st.integers(0, stride - 1)))


@settings(max_examples=400)
@given(rows=axis_configs(), cols=axis_configs())
def test_conv_transpose_output_size_matches_torch(rows, cols):
    (h, fh, sh, ph, oh), (w, fw, sw, pw, ow) = rows, cols
    x, weight = torch.zeros(1, 1, h, w), torch.zeros(1, 1, fh, fw)
    try:
        y = F.conv_transpose2d(x, weight, stride=(sh, sw), padding=(ph, pw), output_padding=(oh, ow))
    except RuntimeError:  # torch refuses a negative size, and an empty height
        y = None
    if y is None or y.numel() == 0:  # torch returns an empty width; we refuse it too
        with pytest.raises(ValueError, match=r"must be >= 1"):
            conv_transpose_output_size(h, fh, sh, ph, oh)  # one of the two calls raises
            conv_transpose_output_size(w, fw, sw, pw, ow)
        return
    assert conv_transpose_output_size(h, fh, sh, ph, oh) == y.shape[2]
    assert conv_transpose_output_size(w, fw, sw, pw, ow) == y.shape[3]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((1, 2, 1, 1, 0), ValueError, r"output size \(Z-1\)S\+F-2P\+output_padding = \(1-1\)\*1\+2-2\*1\+0 = 0 "
                                      r"must be >= 1"),
        ((3, 1, 1, 2, 0), ValueError, r"= -1 must be >= 1"),
        ((3, 3, 2, 0, 2), ValueError, r"output_padding=2 must be smaller than stride S=2"),
        ((3, 3, 1, 0, 1), ValueError, r"output_padding=1 must be smaller than stride S=1"),
        ((3, 3, 2, 0, -1), ValueError, r"output_padding must be >= 0, got -1"),
        ((3, 3, 0, 0, 0), ValueError, r"stride S must be >= 1, got 0"),
        ((3, 3, 1, -1, 0), ValueError, r"padding P must be >= 0, got -1"),
        ((0, 3, 1, 0, 0), ValueError, r"size Z must be >= 1, got 0"),
        ((3, 0, 1, 0, 0), ValueError, r"kernel_size F must be >= 1, got 0"),
        ((3.0, 3, 1, 0, 0), TypeError, r"size Z must be an int, got float"),
        ((3, 3, True, 0, 0), TypeError, r"stride S must be an int, got bool"),
        ((3, 3, 2, 0, None), TypeError, r"output_padding must be an int, got NoneType"),
    ],
)
def test_conv_transpose_output_size_raises(args, exc, match):
    with pytest.raises(exc, match=match):
        conv_transpose_output_size(*args)


# --------------------------------------------------------------------------- Fact 1.4


def conv_tensors(case):
    """x [C, H, W], weight [C', C/G, F_h, F_w] of an unbatched case, and y with the shape of conv2d(x, weight)."""
    x, weight, _, gen = make_tensors(case)
    y = torch.randn(F.conv2d(x, weight, **case.kwargs).shape, generator=gen, dtype=torch.float64)
    return x, weight, y


def transpose_of(case, y, weight):
    """conv_transpose2d with the same weight tensor, sized back to the convolution's input."""
    return conv_transpose2d(y, weight, stride=case.stride, padding=case.padding,
                            output_padding=case.output_padding, groups=case.groups)


@functools.partial(with_edge_cases, unbatched=True)
@settings(max_examples=150)
@given(case=conv_cases(unbatched=True))
def test_transpose_of_conv_matrix(case):
    """Fact 1.4: V^T vec(y), reshaped, is the transposed convolution of y."""
    _, weight, y = conv_tensors(case)
    v = conv_matrix(weight, (case.c_in, case.h, case.w), **case.kwargs)  # [C'H'W', CHW]
    expected = (v.T @ y.reshape(-1)).view(case.c_in, case.h, case.w)
    assert_close(transpose_of(case, y, weight), expected, **TOL)


@functools.partial(with_edge_cases, unbatched=True)
@settings(max_examples=150)
@given(case=conv_cases(unbatched=True))
def test_adjoint_identity(case):
    """<conv2d(x), y> = <x, conv_transpose2d(y)> with torch's conv2d on the left."""
    x, weight, y = conv_tensors(case)
    left = (F.conv2d(x, weight, **case.kwargs) * y).sum()
    right = (x * transpose_of(case, y, weight)).sum()
    assert_close(right, left, **TOL)


@functools.partial(with_edge_cases, unbatched=True)
@settings(max_examples=150)
@given(case=conv_cases(unbatched=True))
def test_transpose_is_gradient_of_conv2d(case):
    """torch's autograd of (conv2d(x, w) * y).sum() with respect to x is conv_transpose2d(y, w)."""
    x, weight, y = conv_tensors(case)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((F.conv2d(x, weight, **case.kwargs) * y).sum(), x)
    assert_close(transpose_of(case, y, weight), grad, **TOL)


# --------------------------------------------------------------------------- bad arguments


# A valid call, which each case below breaks in one way: x [2, 4, 3, 3], W [4, 3, 3, 3], G = 2, C' = 6.
VALID_ARGS = {"input": zeros(2, 4, 3, 3), "weight": zeros(4, 3, 3, 3), "bias": zeros(6),
              "stride": 2, "padding": 1, "output_padding": 1, "groups": 2}

BAD_CASES = [
    ("C-not-divisible-by-G", {"input": zeros(2, 3, 3, 3), "weight": zeros(3, 3, 3, 3)},
     ValueError, r"input channels C=3 are not divisible by groups G=2"),
    ("weight-first-axis-not-C", {"weight": zeros(6, 3, 3, 3)},
     ValueError, r"weight \[C, C'/G, F_h, F_w\] has 6 filters on its first axis, expected one per input "
                 r"channel, C=4"),
    ("output-padding-equals-stride", {"output_padding": 2},
     ValueError, r"output_padding=2 must be smaller than stride S=2 \(height\)"),
    ("output-padding-stride-1", {"stride": 1},
     ValueError, r"output_padding=1 must be smaller than stride S=1 \(height\)"),
    ("output-padding-width", {"output_padding": (0, 3), "stride": (1, 3)},
     ValueError, r"output_padding=3 must be smaller than stride S=3 \(width\)"),
    ("output-padding-negative", {"output_padding": -1},
     ValueError, r"output_padding must be >= 0, got -1"),
    ("output-empty", {"padding": 4, "output_padding": 0},
     ValueError, r"output height \(H-1\)S\+F-2P\+output_padding = \(3-1\)\*2\+3-2\*4\+0 = -1 must be >= 1"),
    ("output-empty-width", {"padding": (0, 3), "output_padding": 0, "input": zeros(2, 4, 3, 1)},
     ValueError, r"output width \(W-1\)S\+F-2P\+output_padding = \(1-1\)\*2\+3-2\*3\+0 = -3 must be >= 1"),
    ("stride-0", {"stride": 0}, ValueError, r"stride S must be >= 1, got 0"),
    ("stride-negative", {"stride": (2, -1)}, ValueError, r"stride S must be >= 1, got \(2, -1\)"),
    ("padding-negative", {"padding": -1}, ValueError, r"padding P must be >= 0, got -1"),
    ("groups-0", {"groups": 0}, ValueError, r"number of groups G must be >= 1, got 0"),
    ("groups-float", {"groups": 2.0}, TypeError, r"number of groups G must be an int, got float 2\.0"),
    ("stride-float", {"stride": 2.0}, TypeError, r"stride S must be an int or a pair of ints, got 2\.0"),
    ("padding-string", {"padding": "same"},
     TypeError, r"padding P must be an int or a pair of ints, got 'same'"),
    ("output-padding-3-tuple", {"output_padding": (1, 1, 1)},
     TypeError, r"output_padding must be an int or a pair of ints, got \(1, 1, 1\)"),
    ("input-rank-2", {"input": zeros(3, 3)},
     ValueError, r"input must have rank 4 \[N, C, H, W\] \(or 3 \[C, H, W\]\), got rank 2"),
    ("input-rank-5", {"input": zeros(1, 2, 4, 3, 3)}, ValueError, r"input must have rank 4 .*, got rank 5"),
    ("weight-rank-3", {"weight": zeros(4, 3, 3)},
     ValueError, r"weight must have rank 4 \[C, C'/G, F_h, F_w\], got rank 3"),
    ("bias-wrong-length", {"bias": zeros(3)}, ValueError, r"bias must have shape \(C',\) = \(6,\), got \(3,\)"),
    ("input-float32-weight-float64", {"input": zeros(2, 4, 3, 3, dtype=torch.float32)},
     TypeError, r"dtypes must match \(input: torch.float32, weight: torch.float64"),
    ("bias-float32", {"bias": zeros(6, dtype=torch.float32)},
     TypeError, r"dtypes must match \(.*bias: torch.float32\)"),
    ("input-integer", {"input": zeros(2, 4, 3, 3, dtype=torch.int64)},
     TypeError, r"input must have a floating-point dtype, got torch.int64"),
    ("weight-list", {"weight": [[[[0.0]]]]}, TypeError, r"weight must be a torch.Tensor, got list"),
]


@pytest.mark.parametrize(
    "fn, args, exc, match",
    [
        (flip_weight, (zeros(3, 2, 2),), ValueError, r"weight must have rank 4 \[C, C'/G, F_h, F_w\], got rank 3"),
        (flip_weight, (zeros(3, 2, 2, 2), 2), ValueError, r"input channels C=3 are not divisible by groups G=2"),
        (flip_weight, (zeros(4, 2, 2, 2), 0), ValueError, r"flip_weight: number of groups G must be >= 1, got 0"),
        (flip_weight, (zeros(4, 2, 2, 2, dtype=torch.int64),), TypeError, r"floating-point dtype"),
        (dilate_and_pad, (zeros(3, 3), 0), ValueError, r"kernel_size F must be >= 1, got 0"),
        (dilate_and_pad, ([[0.0]], 1), TypeError, r"input must be a torch.Tensor, got list"),
    ],
)
def test_steps_bad_input_raises(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


@pytest.mark.parametrize("changes, exc, match", [pytest.param(*case[1:], id=case[0]) for case in BAD_CASES])
def test_bad_input_raises(changes, exc, match):
    args = {**VALID_ARGS, **changes}
    with pytest.raises(exc, match=match):
        conv_transpose2d(args.pop("input"), args.pop("weight"), args.pop("bias"), **args)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match=r"method must be one of \('subpixel', 'zero_insertion'\), got 'fft'"):
        conv_transpose2d(**VALID_ARGS, method="fft")


def test_valid_args_are_valid():
    """The base call of the table works, so each case fails for the one change it makes."""
    args = dict(VALID_ARGS)
    expected = F.conv_transpose2d(args.pop("input"), args.pop("weight"), args.pop("bias"), **args)
    assert_close(conv_transpose2d(**VALID_ARGS), expected)


# Where we are stricter than torch: it silently casts a bias of another floating dtype.
STRICTER_THAN_TORCH = {"bias-float32"}


@pytest.mark.parametrize("changes", [pytest.param(case[1], id=case[0]) for case in BAD_CASES
                                     if case[0] not in STRICTER_THAN_TORCH])
def test_torch_refuses_them_too(changes):
    """Every other bad case is an error for torch as well, so the checks are not stricter than torch."""
    args = {**VALID_ARGS, **changes}
    with pytest.raises((RuntimeError, TypeError)):
        F.conv_transpose2d(args.pop("input"), args.pop("weight"), args.pop("bias"), **args)
